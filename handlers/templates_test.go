package handlers_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

type template struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	Public     bool    `json:"public"`
	Source     string  `json:"source"`
	Status     string  `json:"status"`
	Error      *string `json:"error"`
	FailedStep *string `json:"failed_step"`
	SizeBytes  int64   `json:"size_bytes"`
}

// build posts a template and follows its log to the end: the template as it ended, and the log.
func (u sandboxUser) build(t *testing.T, name, dockerfile string, files map[string]string) (template, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "dockerfile": dockerfile, "files": files})
	resp := u.do(t, "POST", "/api/templates", string(body))
	if resp.Status != http.StatusAccepted {
		t.Fatalf("POST /api/templates %s: %d %s", name, resp.Status, resp.Body)
	}
	var tpl template
	mustJSON(t, resp.Body, &tpl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, evs := u.stream(t, ctx, "GET", "/api/templates/"+tpl.ID+"/logs?follow=true", "")
	var log strings.Builder
	for ev := range evs {
		switch ev.name {
		case "log":
			var chunk struct{ Data string }
			mustJSON(t, ev.data, &chunk)
			log.WriteString(chunk.Data)
		case "end":
			mustJSON(t, ev.data, &tpl)
			return tpl, log.String()
		}
	}
	t.Fatalf("the log of %s ended without an end event:\n%s", name, log.String())
	return tpl, ""
}

// TestTemplates: a Dockerfile builds on the engine with no network into a template that
// sandboxes start from; its log streams while it builds and is kept; the same build again is
// the cached result at once; a failing, endless or forbidden build fails with its reason; a
// snapshot of a sandbox holds its files byte for byte; templates are their owner's alone.
func TestTemplates(t *testing.T) {
	testenv.DockerOnly(t)
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Templates.BuildTimeout = 8 * time.Second })
	u := newSandboxUser(t, id, "user_templates")
	other := newSandboxUser(t, id, "user_templates_other")
	image := testenv.Image(t)
	files := map[string]string{"hello.txt": base64.StdEncoding.EncodeToString([]byte("hello from the context\n"))}
	dockerfile := "FROM " + image + "\nCOPY hello.txt /hello.txt\n" +
		// The build has no network: its only interface is the loopback.
		`RUN test "$(ls /sys/class/net)" = lo && echo built > /built` + "\n"

	tpl, log := u.build(t, "base", dockerfile, files)
	if tpl.Status != "ready" || tpl.SizeBytes == 0 || !strings.Contains(log, "Step 3/3") || !strings.Contains(log, "Successfully tagged") {
		t.Fatalf("build: %+v\n%s", tpl, log)
	}
	if kept := u.do(t, "GET", "/api/templates/"+tpl.ID+"/logs", ""); kept.Status != http.StatusOK || kept.Body != log {
		t.Errorf("the kept log differs from the streamed one: %d %q", kept.Status, kept.Body)
	}
	sb := u.create(t, `{"template":"base","command":["sleep","600"]}`)
	if out := u.sh(t, sb.ID, "cat /hello.txt /built"); out != "hello from the context\nbuilt\n" {
		t.Errorf("a sandbox from the template reads %q", out)
	}

	// The same Dockerfile and files again: the cached result, ready at once.
	body, _ := json.Marshal(map[string]any{"name": "again", "dockerfile": dockerfile, "files": files})
	start := time.Now()
	resp := u.do(t, "POST", "/api/templates", string(body))
	var cached template
	mustJSON(t, resp.Body, &cached)
	if resp.Status != http.StatusAccepted || cached.Status != "ready" {
		t.Errorf("an identical build: %d %s, want ready at once", resp.Status, resp.Body)
	}
	t.Logf("build from cache: %s", time.Since(start))

	// A tar build context (gzip-compressed here), the name in the query.
	archive := func(entries ...*tar.Header) *bytes.Buffer {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		for _, h := range entries {
			content := h.Linkname
			if h.Typeflag == tar.TypeReg {
				h.Linkname, h.Size = "", int64(len(content))
			}
			_ = tw.WriteHeader(h)
			_, _ = tw.Write([]byte(content))
		}
		_ = tw.Close()
		_ = gz.Close()
		return &buf
	}
	file := func(name, content string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Linkname: content} // Linkname carries the content
	}
	tarResp, raw := u.request(t, "POST", "/api/templates?name=fromtar", archive(
		file("Dockerfile", "FROM "+image+"\nCOPY dir/data.txt /data.txt\n"), file("dir/data.txt", "from a tar\n")),
		map[string]string{"Content-Type": "application/gzip"})
	if tarResp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST a tar context: %d %s", tarResp.StatusCode, raw)
	}
	eventually(t, "the tar build to be ready", time.Minute, func() bool {
		return strings.Contains(u.do(t, "GET", "/api/templates/fromtar", "").Body, `"ready"`)
	})
	fromTar := u.create(t, `{"template":"fromtar","command":["sleep","600"]}`)
	if out := u.sh(t, fromTar.ID, "cat /data.txt"); out != "from a tar\n" {
		t.Errorf("a sandbox from the tar-built template reads %q", out)
	}
	u.do(t, "DELETE", "/api/sandboxes/"+fromTar.ID, "")
	tarResp, raw = u.request(t, "POST", "/api/templates?name=badtar", archive(
		file("Dockerfile", "FROM "+image+"\n"), &tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}),
		map[string]string{"Content-Type": "application/gzip"})
	if tarResp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), `"context"`) {
		t.Errorf("a tar context with a symlink: %d %s", tarResp.StatusCode, raw)
	}

	// FROM one of the caller's templates, by name.
	child, _ := u.build(t, "child", "FROM base\nRUN cat /hello.txt > /copied\n", nil)
	if child.Status != "ready" {
		t.Errorf("FROM a template: %+v", child)
	}

	failing := []struct{ name, dockerfile, step, reason string }{
		{"exits", "FROM " + image + "\nRUN echo going\nRUN exit 3\n", "RUN exit 3", "returned a non-zero code: 3"},
		{"loops", "FROM " + image + "\nRUN sleep 600\n", "", "longer than 8s"},
	}
	for _, f := range failing {
		got, log := u.build(t, f.name, f.dockerfile, nil)
		if got.Status != "failed" || got.Error == nil || !strings.Contains(*got.Error, f.reason) ||
			(f.step != "" && (got.FailedStep == nil || !strings.Contains(*got.FailedStep, f.step))) {
			t.Errorf("%s: %+v (error %v, step %v)\n%s", f.name, got, derefString(got.Error), derefString(got.FailedStep), log)
		}
		if resp := u.do(t, "POST", "/api/sandboxes", `{"template":"`+f.name+`"}`); resp.Status != http.StatusConflict {
			t.Errorf("a sandbox from the failed %s: %d %s", f.name, resp.Status, resp.Body)
		}
	}

	bad := []struct{ body, field string }{
		{`{"name":"x","dockerfile":"FROM debian:12\n"}`, "dockerfile"},
		{`{"name":"x","dockerfile":"RUN true\n"}`, "dockerfile"},
		{`{"name":"Bad","dockerfile":"FROM scratch\n"}`, "name"},
		{`{"name":"x","dockerfile":"FROM scratch\n","files":{"../etc":"eA=="}}`, "files"},
		{`{"name":"x","dockerfile":"FROM scratch\n","files":{"a":"not base64!"}}`, "files"},
	}
	for _, b := range bad {
		resp := u.do(t, "POST", "/api/templates", b.body)
		var e struct {
			Error struct{ Field string } `json:"error"`
		}
		mustJSON(t, resp.Body, &e)
		if resp.Status != http.StatusBadRequest || e.Error.Field != b.field {
			t.Errorf("POST %s: %d %s, want 400 %s", b.body, resp.Status, resp.Body, b.field)
		}
	}
	if resp := u.do(t, "POST", "/api/templates", string(body)); resp.Status != http.StatusConflict {
		t.Errorf("a taken name: %d %s", resp.Status, resp.Body)
	}

	// A snapshot holds the sandbox's files as they were.
	u.sh(t, sb.ID, "head -c 1048576 /dev/urandom > /data.bin && echo note > /root/note && md5sum /data.bin > /sum")
	want := u.sh(t, sb.ID, "cat /sum")
	start = time.Now()
	resp = u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/snapshot", `{"name":"snap"}`)
	var snap template
	mustJSON(t, resp.Body, &snap)
	if resp.Status != http.StatusCreated || snap.Status != "ready" || snap.Source != "snapshot" {
		t.Fatalf("snapshot: %d %s", resp.Status, resp.Body)
	}
	t.Logf("snapshot of a sandbox with 1 MiB written: %s", time.Since(start))
	if out := u.sh(t, sb.ID, "echo still running"); out != "still running\n" {
		t.Errorf("the snapshotted sandbox after: %q", out)
	}
	restored := u.create(t, `{"template":"`+snap.ID+`","command":["sleep","600"]}`)
	t.Cleanup(func() { u.do(t, "DELETE", "/api/sandboxes/"+restored.ID, "") })
	if got := u.sh(t, restored.ID, "md5sum /data.bin; cat /root/note"); got != want+"note\n" {
		t.Errorf("the sandbox from the snapshot reads %q, want %q", got, want+"note\n")
	}

	var list struct {
		Templates []template `json:"templates"`
	}
	mustJSON(t, u.do(t, "GET", "/api/templates", "").Body, &list)
	names := map[string]bool{}
	for _, tpl := range list.Templates {
		names[fmt.Sprintf("%s/%v", tpl.Name, tpl.Public)] = true
	}
	for _, want := range []string{image + "/true", "base/false", "again/false", "child/false", "snap/false", "exits/false"} {
		if !names[want] {
			t.Errorf("the list lacks %s: %v", want, names)
		}
	}
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/api/templates/" + tpl.ID, ""}, {"DELETE", "/api/templates/" + tpl.ID, ""},
		{"POST", "/api/sandboxes", `{"template":"` + tpl.ID + `"}`},
	} {
		if resp := other.do(t, req.method, req.path, req.body); resp.Status != http.StatusNotFound {
			t.Errorf("another user's %s %s: %d %s", req.method, req.path, resp.Status, resp.Body)
		}
	}

	if resp := u.do(t, "DELETE", "/api/templates/base", ""); resp.Status != http.StatusConflict {
		t.Errorf("delete a template a sandbox runs: %d %s", resp.Status, resp.Body)
	}
	u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, "")
	if resp := u.do(t, "DELETE", "/api/templates/base", ""); resp.Status != http.StatusNoContent {
		t.Errorf("delete an unused template: %d %s", resp.Status, resp.Body)
	}
	// "again" shares base's image: it still starts sandboxes.
	again := u.create(t, `{"template":"again","command":["sleep","600"]}`)
	u.do(t, "DELETE", "/api/sandboxes/"+again.ID, "")
}

func derefString(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestInterruptedBuildFails: a build cut off by the orchestrator's end (a crash, or a stop in the
// middle) is failed when that instance starts again, never building forever, and its image is
// gone.
func TestInterruptedBuildFails(t *testing.T) {
	testenv.DockerOnly(t)
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_templates_crash")
	resp := u.do(t, "POST", "/api/templates", `{"name":"slow","dockerfile":"FROM `+testenv.Image(t)+`\nRUN sleep 600\n"}`)
	if resp.Status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", resp.Status, resp.Body)
	}
	var tpl template
	mustJSON(t, resp.Body, &tpl)
	eventually(t, "the build to start", 10*time.Second, func() bool {
		return strings.Contains(u.do(t, "GET", "/api/templates/"+tpl.ID+"/logs", "").Body, "Step 2/2")
	})
	id.App.Stop(t)

	next := startIdentityWith(t, id.cfg, id.clerk, id.secret)
	u = sandboxUser{id: next, key: u.key}
	mustJSON(t, u.do(t, "GET", "/api/templates/"+tpl.ID, "").Body, &tpl)
	if tpl.Status != "failed" || tpl.Error == nil || !strings.Contains(*tpl.Error, "interrupted") {
		t.Errorf("after a restart: %+v (%s)", tpl, derefString(tpl.Error))
	}
	docker := testenv.Docker(t)
	if _, err := docker.ImageInspect(context.Background(), "insien/template:"+tpl.ID); err == nil {
		t.Error("the interrupted build's image is still there")
	}
}

// TestTemplateSizeQuota: once a user's template images take templates.max_total_mb_per_user,
// they build and snapshot no more until they delete some.
func TestTemplateSizeQuota(t *testing.T) {
	testenv.DockerOnly(t)
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Templates.MaxTotalMBPerUser = 1 })
	u := newSandboxUser(t, id, "user_templates_size")
	first, _ := u.build(t, "first", "FROM "+testenv.Image(t)+"\nRUN echo one > /one\n", nil) // the busybox image: about 2 MB
	if first.Status != "ready" {
		t.Fatalf("the first build: %+v", first)
	}
	resp := u.do(t, "POST", "/api/templates", `{"name":"second","dockerfile":"FROM `+testenv.Image(t)+`\nRUN echo two > /two\n"}`)
	if resp.Status != http.StatusTooManyRequests || errorCode(t, resp) != "quota_exceeded" {
		t.Errorf("a build past the size quota: %d %s", resp.Status, resp.Body)
	}
	u.do(t, "DELETE", "/api/templates/first", "")
	second, _ := u.build(t, "second", "FROM "+testenv.Image(t)+"\nRUN echo two > /two\n", nil)
	if second.Status != "ready" {
		t.Errorf("a build after deleting: %+v", second)
	}
}

// TestTemplateBuildDiskBound: a build step that writes without end fails once it has written
// more than templates.build_disk_mb, with a reason that says so, and leaves no container or image.
func TestTemplateBuildDiskBound(t *testing.T) {
	testenv.DockerOnly(t)
	const mb = 64
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Templates.BuildTimeout, c.Templates.BuildDiskMB = 2*time.Minute, mb
	})
	u := newSandboxUser(t, id, "user_build_disk")
	docker := testenv.Docker(t)
	count := func() (containers, images int) {
		cs, err := docker.ContainerList(t.Context(), client.ContainerListOptions{All: true})
		if err != nil {
			t.Fatal(err)
		}
		is, err := docker.ImageList(t.Context(), client.ImageListOptions{All: true})
		if err != nil {
			t.Fatal(err)
		}
		return len(cs.Items), len(is.Items)
	}
	containersBefore, imagesBefore := count()

	// A step that writes 100 GB, a MB at a time with a pause, as a slow endless writer would (at
	// full speed it would pass the bound by what a disk writes in half a second).
	dockerfile := fmt.Sprintf("FROM %s\nRUN i=0; while [ $i -lt 102400 ]; do dd if=/dev/zero of=/fill.$i bs=1M count=1 2>/dev/null; i=$((i+1)); usleep 2000; done\n", testenv.Image(t))
	tpl, log := u.build(t, "filler", dockerfile, nil)
	if tpl.Status != "failed" || tpl.Error == nil || !strings.Contains(*tpl.Error, fmt.Sprintf("wrote more than %d MB", mb)) ||
		tpl.FailedStep == nil || !strings.Contains(*tpl.FailedStep, "RUN i=0") {
		t.Fatalf("a step writing past a %d MB bound: %+v (error %v)\n%s", mb, tpl, derefString(tpl.Error), log)
	}
	eventually(t, "the failed build's container and image to be gone", 30*time.Second, func() bool {
		containers, images := count()
		return containers == containersBefore && images == imagesBefore
	})
}

// TestTemplateDeleteWaitsForCreatesFromIt: a delete waits for a create from the template that is
// between resolving it and inserting its sandbox (it holds the image's lock), then counts that
// sandbox and refuses: the image is never removed under a sandbox about to start from it.
func TestTemplateDeleteWaitsForCreatesFromIt(t *testing.T) {
	testenv.DockerOnly(t)
	var db *bun.DB
	id := startIdentity(t, nil, fx.Populate(&db))
	u := newSandboxUser(t, id, "user_templates_race")
	tpl, _ := u.build(t, "held", "FROM "+testenv.Image(t)+"\nRUN echo held > /held\n", nil)
	if tpl.Status != "ready" {
		t.Fatalf("build: %+v", tpl)
	}
	var image string
	if err := db.QueryRow("SELECT image FROM templates WHERE id = ?", tpl.ID).Scan(&image); err != nil {
		t.Fatal(err)
	}
	// A create from it, stopped between holding the template and inserting its row.
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock_shared(hashtextextended('template image ' || ?, 0))", image); err != nil {
		t.Fatal(err)
	}
	deleted := make(chan testenv.Response, 1)
	go func() { deleted <- u.do(t, "DELETE", "/api/templates/"+tpl.ID, "") }()
	select {
	case resp := <-deleted:
		t.Fatalf("the delete did not wait for the create: %d %s", resp.Status, resp.Body)
	case <-time.After(500 * time.Millisecond):
	}
	var owner string
	if err := tx.QueryRowContext(ctx, "SELECT user_id FROM templates WHERE id = ?", tpl.ID).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sandboxes (user_id, image, status, cpu, memory_mb, timeout_seconds, expires_at)
		VALUES (?, ?, 'pending', 1, 64, 60, now() + interval '1 minute')`, owner, image); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if resp := <-deleted; resp.Status != http.StatusConflict || errorCode(t, resp) != "template_in_use" {
		t.Errorf("a delete after the create committed: %d %s, want 409 template_in_use", resp.Status, resp.Body)
	}
}
