package handlers_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/testenv"
)

// diskSandbox is the part of a sandbox's JSON that tells its disk limit (null: none).
type diskSandbox struct {
	ID     string `json:"id"`
	Start  string `json:"start"`
	DiskMB *int64 `json:"disk_mb"`
}

// diskLimited asks GET /api/runtime whether the runtime enforces a disk limit.
func diskLimited(t testing.TB, u sandboxUser) bool {
	t.Helper()
	resp := u.do(t, "GET", "/api/runtime", "")
	var rt struct {
		Capabilities struct {
			DiskLimit bool `json:"disk_limit"`
		} `json:"capabilities"`
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("GET /api/runtime = %d %s", resp.Status, resp.Body)
	}
	mustJSON(t, resp.Body, &rt)
	return rt.Capabilities.DiskLimit
}

func (u sandboxUser) createDisk(t testing.TB, body string) diskSandbox {
	t.Helper()
	var sb diskSandbox
	mustJSON(t, u.do(t, "GET", "/api/sandboxes/"+u.create(t, body).ID, "").Body, &sb)
	return sb
}

// noSpace is what a write past the disk limit fails with: ENOSPC where the engine's storage is
// overlay2 on xfs (project quotas), EDQUOT on btrfs (qgroups).
func noSpace(stderr string) bool {
	return strings.Contains(stderr, "No space left on device") || strings.Contains(stderr, "Disk quota exceeded")
}

// TestDiskLimit: every sandbox has a disk limit where the engine can enforce one (the default when
// the create names none); one that fills its disk gets ENOSPC (EDQUOT on btrfs) while another
// sandbox and the host write on; an engine that cannot enforce one refuses disk_mb with 409 and
// runs sandboxes without a limit.
func TestDiskLimit(t *testing.T) {
	testenv.DockerOnly(t) // reads the container's storage size; Kubernetes: TestPodIsHardened reads the Pod's limit
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_disk")

	if !diskLimited(t, u) {
		resp := u.do(t, "POST", "/api/sandboxes", `{"disk_mb":64}`)
		if resp.Status != http.StatusConflict || errorCode(t, resp) != "not_supported_by_runtime" {
			t.Errorf("disk_mb on an engine without disk limits: %d %s, want 409 not_supported_by_runtime", resp.Status, resp.Body)
		}
		if sb := u.createDisk(t, `{}`); sb.DiskMB != nil {
			t.Errorf("a sandbox without a limit says disk_mb %d, want null", *sb.DiskMB)
		}
		t.Skip("the engine's storage has no per-container size (scripts/stack.sh up test sets one up as root): the limit itself is not tested")
	}

	storageSize := func(t *testing.T, sbID string) string {
		res, err := testenv.Docker(t).ContainerInspect(t.Context(), "sbx-"+sbID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Container.HostConfig.StorageOpt["size"]
	}

	t.Run("the default applies when the create names none", func(t *testing.T) {
		sb := u.createDisk(t, `{}`)
		if sb.DiskMB == nil || *sb.DiskMB != id.cfg.Sandbox.DefaultDiskMB {
			t.Errorf("disk_mb %v, want the default %d", sb.DiskMB, id.cfg.Sandbox.DefaultDiskMB)
		}
		if got, want := storageSize(t, sb.ID), fmt.Sprintf("%dM", id.cfg.Sandbox.DefaultDiskMB); got != want {
			t.Errorf("the container's storage size is %q, want %q", got, want)
		}
	})

	full := u.createDisk(t, `{"disk_mb":64,"command":["sleep","600"]}`)
	other := u.createDisk(t, `{"disk_mb":64,"command":["sleep","600"]}`)
	if full.DiskMB == nil || *full.DiskMB != 64 || storageSize(t, full.ID) != "64M" {
		t.Fatalf("disk_mb %v, storage size %q; want 64 and 64M", full.DiskMB, storageSize(t, full.ID))
	}

	// 100 MB into a 64 MB disk: the write fails part way, inside the sandbox only.
	res := u.exec(t, full.ID, map[string]any{"cmd": []string{"sh", "-c",
		"dd if=/dev/zero of=/fill bs=1M count=100; echo dd=$?; echo more > /more; echo more=$?; stat -c size=%s /fill"}})
	if !noSpace(res.Stderr) || !strings.Contains(res.Stdout, "dd=1") || !strings.Contains(res.Stdout, "more=1") {
		t.Fatalf("writing 100 MB into 64 MB: stdout %q stderr %q; want dd and the next write to fail with no space", res.Stdout, res.Stderr)
	}
	var size int64
	if _, after, ok := strings.Cut(res.Stdout, "size="); ok {
		size, _ = strconv.ParseInt(strings.TrimSpace(after), 10, 64)
	}
	if size == 0 || size > 64<<20 {
		t.Errorf("the sandbox wrote %d bytes, want some and at most 64 MiB: %q", size, res.Stdout)
	}

	t.Run("another sandbox writes on", func(t *testing.T) {
		if out := u.sh(t, other.ID, "dd if=/dev/zero of=/data bs=1M count=32 2>/dev/null && echo ok"); out != "ok\n" {
			t.Errorf("the other sandbox could not write 32 MB: %q", out)
		}
	})
	t.Run("the host writes on", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(t.TempDir(), "host"), make([]byte, 8<<20), 0o600); err != nil {
			t.Errorf("the host could not write 8 MiB: %v", err)
		}
		if sb := u.createDisk(t, `{"disk_mb":32}`); sb.DiskMB == nil || *sb.DiskMB != 32 {
			t.Errorf("a new sandbox after the full one: %+v", sb)
		}
	})
	t.Run("freeing space lets the full sandbox write again", func(t *testing.T) {
		if out := u.sh(t, full.ID, "rm /fill && echo again > /again && cat /again"); out != "again\n" {
			t.Errorf("after rm: %q", out)
		}
	})
}
