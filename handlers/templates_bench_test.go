package handlers_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// BenchmarkTemplates measures, alternating with the engine doing the same in the same run:
//   - a template built from a Dockerfile already built (the orchestrator's cache: ready at once)
//     ÷ the engine's own cached build of the same context (every step a cache hit), 20 samples;
//   - a snapshot of a sandbox with 100 MB written to its filesystem through the API ÷ a commit of
//     the same container straight through the Engine API, 3 samples.
func BenchmarkTemplates(b *testing.B) {
	testenv.DockerOnly(b)
	id := startIdentity(b, func(c *config.Config, _ *clerkstub.Server) { c.Templates.MaxPerUser = 1000 })
	u := newSandboxUser(b, id, "user_bench_templates")
	docker := testenv.Docker(b)
	ctx := context.Background()
	dockerfile := "FROM " + testenv.Image(b) + "\nRUN echo built > /built\n"
	post := func(name string) (time.Duration, string) {
		body, _ := json.Marshal(map[string]any{"name": name, "dockerfile": dockerfile})
		start := time.Now()
		resp := u.do(b, "POST", "/api/templates", string(body))
		took := time.Since(start)
		var tpl struct{ ID, Status string }
		mustJSON(b, resp.Body, &tpl)
		if resp.Status != http.StatusAccepted {
			b.Fatalf("POST /api/templates: %d %s", resp.Status, resp.Body)
		}
		return took, tpl.Status
	}
	post("first")
	eventually(b, "the first build", time.Minute, func() bool {
		return bytes.Contains([]byte(u.do(b, "GET", "/api/templates/first", "").Body), []byte(`"ready"`))
	})
	engineBuild := func() time.Duration {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))})
		_, _ = tw.Write([]byte(dockerfile))
		_ = tw.Close()
		start := time.Now()
		res, err := docker.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{"insien-bench-cached:1"}, Version: build.BuilderV1, NetworkMode: "none"})
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return time.Since(start)
	}
	engineBuild() // fills the engine's cache
	b.Cleanup(func() { _, _ = docker.ImageRemove(ctx, "insien-bench-cached:1", client.ImageRemoveOptions{}) })

	sb := u.create(b, `{"command":["sleep","3600"],"memory_mb":512}`)
	b.Cleanup(func() { u.do(b, "DELETE", "/api/sandboxes/"+sb.ID, "") })
	u.sh(b, sb.ID, "head -c 104857600 /dev/urandom > /big")

	for b.Loop() {
		var ours, engines []time.Duration
		for i := range 20 {
			took, status := post("cached-" + time.Now().Format("150405.000000") + "-" + string(rune('a'+i)))
			if status != "ready" {
				b.Fatalf("an identical build is %s, not ready at once", status)
			}
			ours = append(ours, took)
			engines = append(engines, engineBuild())
		}
		report(b, "cached-build", ours, engines)

		var snaps, commits []time.Duration
		for i := range 3 {
			start := time.Now()
			resp := u.do(b, "POST", "/api/sandboxes/"+sb.ID+"/snapshot", `{"name":"snap-`+string(rune('a'+i))+time.Now().Format("150405.000")+`"}`)
			snaps = append(snaps, time.Since(start))
			var tpl struct{ ID string }
			mustJSON(b, resp.Body, &tpl)
			if resp.Status != http.StatusCreated {
				b.Fatalf("snapshot: %d %s", resp.Status, resp.Body)
			}
			u.do(b, "DELETE", "/api/templates/"+tpl.ID, "")
			start = time.Now()
			if _, err := docker.ContainerCommit(ctx, "sbx-"+sb.ID, client.ContainerCommitOptions{Reference: "insien-bench-commit:1"}); err != nil {
				b.Fatal(err)
			}
			commits = append(commits, time.Since(start))
			_, _ = docker.ImageRemove(ctx, "insien-bench-commit:1", client.ImageRemoveOptions{Force: true})
		}
		report(b, "snapshot-100MB", snaps, commits)
	}
}

// report records the p50 of ours and of the engine's, and their ratio.
func report(b *testing.B, what string, ours, engines []time.Duration) {
	slices.Sort(ours)
	slices.Sort(engines)
	o, e := ours[len(ours)/2], engines[len(engines)/2]
	b.ReportMetric(float64(o.Microseconds())/1000, what+"-p50-ms")
	b.ReportMetric(float64(e.Microseconds())/1000, what+"-engine-p50-ms")
	b.ReportMetric(float64(o)/float64(e), what+"/engine")
}
