package handlers_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

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
func TestVolumes(t *testing.T) {
	testenv.DockerOnly(t)
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Volumes.MaxPerUser, c.Volumes.MaxTotalMBPerUser = 3, 100
	})
	u := newSandboxUser(t, id, "user_volumes")
	other := newSandboxUser(t, id, "user_volumes_other")

	resp := u.do(t, "POST", "/api/volumes", `{"name":"data","size_mb":32}`)
	if resp.Status != http.StatusCreated {
		t.Fatalf("create a volume: %d %s", resp.Status, resp.Body)
	}
	var vol volume
	mustJSON(t, resp.Body, &vol)
	if vol.Name != "data" || vol.SizeMB != 32 || vol.UsedBy != nil {
		t.Fatalf("created %+v", vol)
	}

	first := u.create(t, `{"command":["sleep","600"],"volumes":[{"volume":"data","path":"/data"}]}`)
	if out := u.sh(t, first.ID, "echo kept > /data/file && sync && cat /data/file"); out != "kept\n" {
		t.Fatalf("writing to the volume: %q", out)
	}
	// The size is the limit: 32 MB of ext4 takes no more than that, and the writer sees ENOSPC.
	fill := u.exec(t, first.ID, map[string]any{"cmd": []string{"dd", "if=/dev/zero", "of=/data/big", "bs=1M", "count=64"}})
	if fill.ExitCode == 0 || !strings.Contains(fill.Stderr, "No space left on device") {
		t.Errorf("writing 64 MB to a 32 MB volume: exit %d, stderr %q", fill.ExitCode, fill.Stderr)
	}
	u.sh(t, first.ID, "rm /data/big")

	resp = u.do(t, "POST", "/api/sandboxes", `{"command":["sleep","600"],"volumes":[{"volume":"data","path":"/data"}]}`)
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
}
