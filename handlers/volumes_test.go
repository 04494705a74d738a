package handlers_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

type volume struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	SizeMB int     `json:"size_mb"`
	UsedBy *string `json:"used_by"`
}

// TestVolumes: a volume's data outlives the sandboxes that mount it, its size is a hard limit
// inside the sandbox (ENOSPC), one live sandbox mounts it at a time, and it is its owner's alone.
// On Docker a volume is the service's own loop-mounted image; on Kubernetes a claim, bound to
// storage the cluster provides (here one local volume of 32 MB: testenv.LocalStorage).
func TestVolumes(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Volumes.MaxPerUser, c.Volumes.MaxTotalMBPerUser = 3, 100
		testenv.UseLocalStorage(t, c, 32)
	})
	u := newSandboxUser(t, id, "user_volumes")
	other := newSandboxUser(t, id, "user_volumes_other")

	vol := created[volume](t, u, "/api/volumes", `{"name":"data","size_mb":32}`)
	if vol.Name != "data" || vol.SizeMB != 32 || vol.UsedBy != nil {
		t.Fatalf("created %+v", vol)
	}

	first := u.create(t, `{"command":["sleep","600"],"volumes":[{"volume":"data","path":"/data"}]}`)
	if out := u.sh(t, first.ID, "echo kept > /data/file && sync && cat /data/file"); out != "kept\n" {
		t.Fatalf("writing to the volume: %q", out)
	}
	blob := make([]byte, 1<<20)
	_, _ = rand.Read(blob)
	if resp, body := u.request(t, "PUT", filesURL(first.ID, "/data/blob"), bytes.NewReader(blob), nil); resp.StatusCode/100 != 2 {
		t.Fatalf("uploading to the volume: %d %s", resp.StatusCode, body)
	}
	// The size is the limit: 32 MB of ext4 takes no more than that, and the writer sees ENOSPC.
	fill := u.exec(t, first.ID, map[string]any{"cmd": []string{"dd", "if=/dev/zero", "of=/data/big", "bs=1M", "count=64"}})
	if fill.ExitCode == 0 || !strings.Contains(fill.Stderr, "No space left on device") {
		t.Errorf("writing 64 MB to a 32 MB volume: exit %d, stderr %q", fill.ExitCode, fill.Stderr)
	}
	u.sh(t, first.ID, "rm /data/big")

	resp := u.do(t, "POST", "/api/sandboxes", `{"command":["sleep","600"],"volumes":[{"volume":"data","path":"/data"}]}`)
	if resp.Status != http.StatusConflict || errorCode(t, resp) != "volume_in_use" {
		t.Errorf("a second sandbox on a mounted volume: %d %s", resp.Status, resp.Body)
	}
	if resp := u.do(t, "DELETE", "/api/volumes/"+vol.ID, ""); resp.Status != http.StatusConflict {
		t.Errorf("delete a mounted volume: %d %s", resp.Status, resp.Body)
	}
	mustJSON(t, u.do(t, "GET", "/api/volumes/"+vol.ID, "").Body, &vol)
	if vol.UsedBy == nil || *vol.UsedBy != first.ID {
		t.Errorf("used_by %v, want %s", vol.UsedBy, first.ID)
	}

	// Data outlives the sandbox; the next one, read-only, sees it.
	u.do(t, "DELETE", "/api/sandboxes/"+first.ID, "")
	second := u.create(t, fmt.Sprintf(`{"command":["sleep","600"],"volumes":[{"volume":%q,"path":"/mnt/in","read_only":true}]}`, vol.ID))
	t.Cleanup(func() { u.do(t, "DELETE", "/api/sandboxes/"+second.ID, "") })
	if out := u.sh(t, second.ID, "cat /mnt/in/file"); out != "kept\n" {
		t.Errorf("the next sandbox reads %q, want the first one's file", out)
	}
	if resp, got := u.request(t, "GET", filesURL(second.ID, "/mnt/in/blob"), nil, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(got, blob) {
		t.Errorf("the next sandbox downloads %d: %d bytes, equal %v", resp.StatusCode, len(got), bytes.Equal(got, blob))
	}
	if res := u.exec(t, second.ID, map[string]any{"cmd": []string{"sh", "-c", "echo x > /mnt/in/other"}}); res.ExitCode == 0 {
		t.Error("wrote to a read-only volume")
	}

	// Another user sees nothing of it.
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/api/volumes/" + vol.ID, ""},
		{"DELETE", "/api/volumes/" + vol.ID, ""},
		{"POST", "/api/sandboxes", `{"volumes":[{"volume":"` + vol.ID + `","path":"/data"}]}`},
	} {
		if resp := other.do(t, req.method, req.path, req.body); resp.Status != http.StatusNotFound {
			t.Errorf("another user's %s %s: %d %s", req.method, req.path, resp.Status, resp.Body)
		}
	}
	var list struct {
		Volumes []volume `json:"volumes"`
	}
	mustJSON(t, other.do(t, "GET", "/api/volumes", "").Body, &list)
	if len(list.Volumes) != 0 {
		t.Errorf("another user lists %v", list.Volumes)
	}

	// Bad input changes nothing.
	bad := []struct {
		path, body, field string
		status            int
	}{
		{"/api/volumes", `{"name":"Bad Name","size_mb":32}`, "name", 400},
		{"/api/volumes", `{"name":"tiny","size_mb":1}`, "size_mb", 400},
		{"/api/volumes", `{"name":"huge","size_mb":99999999}`, "size_mb", 400},
		{"/api/volumes", `{"name":"data","size_mb":32}`, "", 409},
		{"/api/volumes", `{"name":"big","size_mb":80}`, "", 429},
		{"/api/sandboxes", `{"volumes":[{"volume":"data","path":"relative"}]}`, "volumes", 400},
		{"/api/sandboxes", `{"volumes":[{"volume":"data","path":"/proc/x"}]}`, "volumes", 400},
		{"/api/sandboxes", `{"volumes":[{"volume":"data","path":"/"}]}`, "volumes", 400},
		{"/api/sandboxes", `{"volumes":[{"volume":"data","path":"/a/../b"}]}`, "volumes", 400},
		{"/api/sandboxes", `{"volumes":[{"volume":"nope","path":"/data"}]}`, "", 404},
	}
	for _, b := range bad {
		resp := u.do(t, "POST", b.path, b.body)
		var e struct {
			Error struct {
				Field string `json:"field"`
			} `json:"error"`
		}
		mustJSON(t, resp.Body, &e)
		if resp.Status != b.status || e.Error.Field != b.field {
			t.Errorf("POST %s %s: %d %s, want %d (field %q)", b.path, b.body, resp.Status, resp.Body, b.status, b.field)
		}
	}
	mustJSON(t, u.do(t, "GET", "/api/volumes", "").Body, &list)
	if len(list.Volumes) != 1 {
		t.Errorf("after refused creates the user has %d volumes, want 1", len(list.Volumes))
	}

	u.do(t, "DELETE", "/api/sandboxes/"+second.ID, "")
	if resp := u.do(t, "DELETE", "/api/volumes/data", ""); resp.Status != http.StatusNoContent {
		t.Errorf("delete an unused volume by name: %d %s", resp.Status, resp.Body)
	}
	if resp := u.do(t, "GET", "/api/volumes/"+vol.ID, ""); resp.Status != http.StatusNotFound {
		t.Errorf("a deleted volume: %d", resp.Status)
	}
	if id.cfg.Runtime.Driver == "kubernetes" {
		eventually(t, "the deleted volume's claim gone", 30*time.Second, func() bool { return !hasClaim(t, id.cfg, vol.ID) })
	}
}

// hasClaim says whether the Kubernetes claim of volume volumeID exists, read from the API server.
func hasClaim(t testing.TB, cfg *config.Config, volumeID string) bool {
	t.Helper()
	cs, _ := testenv.KubeClient(t)
	_, err := cs.CoreV1().PersistentVolumeClaims(cfg.Runtime.Kubernetes.Namespace).Get(t.Context(), "vol-"+volumeID, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// TestVolumeWithoutStorage: on Kubernetes, a volume is a claim that binds when its first sandbox
// is scheduled; when the cluster's storage has nothing that fits it, that sandbox fails at once
// with the scheduler's reason (409 volume_unavailable; end_reason volume_unavailable), not at the
// start timeout, and the volume stays, deletable.
func TestVolumeWithoutStorage(t *testing.T) {
	if testenv.Driver() != "kubernetes" {
		t.Skip("on Docker a volume's storage is made with the volume; only a cluster binds it later")
	}
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { testenv.UseLocalStorage(t, c, 16) })
	u := newSandboxUser(t, id, "user_volume_storage")
	vol := created[volume](t, u, "/api/volumes", `{"name":"big","size_mb":64}`) // made without waiting for storage

	began := time.Now()
	resp := u.do(t, "POST", "/api/sandboxes", `{"command":["sleep","600"],"volumes":[{"volume":"big","path":"/data"}]}`)
	took := time.Since(began)
	if resp.Status != http.StatusConflict || errorCode(t, resp) != "volume_unavailable" || !strings.Contains(string(resp.Body), "persistent volumes to bind") {
		t.Fatalf("a sandbox on it: %d %s", resp.Status, resp.Body)
	}
	if took > 30*time.Second {
		t.Errorf("the create failed after %s; the scheduler's verdict comes within seconds", took)
	}
	var list struct {
		Sandboxes []sandbox `json:"sandboxes"`
	}
	mustJSON(t, u.do(t, "GET", "/api/sandboxes?status=failed", "").Body, &list)
	if len(list.Sandboxes) != 1 || list.Sandboxes[0].EndReason == nil || *list.Sandboxes[0].EndReason != "volume_unavailable" {
		t.Errorf("the failed sandbox: %+v", list.Sandboxes)
	}
	if w := containers(t, id); len(w) != 0 {
		t.Errorf("left behind: %v", w)
	}
	mustJSON(t, u.do(t, "GET", "/api/volumes/big", "").Body, &vol)
	if vol.UsedBy != nil {
		t.Errorf("used by the failed sandbox: %s", *vol.UsedBy)
	}
	if resp := u.do(t, "DELETE", "/api/volumes/big", ""); resp.Status != http.StatusNoContent {
		t.Errorf("delete the volume: %d %s", resp.Status, resp.Body)
	}
	eventually(t, "the claim gone", 30*time.Second, func() bool { return !hasClaim(t, id.cfg, vol.ID) })
}
