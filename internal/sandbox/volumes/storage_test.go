package volumes_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/uuid"
	"github.com/moby/sys/mountinfo"

	"github.com/insien/orchestrator/internal/sandbox/volumes"
)

// TestStorageEnforcesTheSize: a volume keeps its data across an unmount (a host restart), holds
// its size and not a byte more (ENOSPC), and leaves nothing behind when removed.
func TestStorageEnforcesTheSize(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("volumes are loop mounts: root only")
	}
	s := volumes.NewStorage(t.TempDir())
	ctx := context.Background()
	id := uuid.New()
	if err := s.Create(ctx, id, 16); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Remove(ctx, id) })
	kept := filepath.Join(s.MountPath(id), "kept")
	if err := os.WriteFile(kept, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("umount", s.MountPath(id)).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if err := s.Mount(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(kept); err != nil || string(got) != "data" {
		t.Fatalf("after a remount: %q, %v", got, err)
	}
	f, err := os.Create(filepath.Join(s.MountPath(id), "fill"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	written := 0
	for ; written < 64; written++ {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if err == nil {
		err = f.Sync()
	}
	_ = f.Close()
	if !errors.Is(err, syscall.ENOSPC) || written > 16 || written < 12 {
		t.Fatalf("wrote %d MiB to a 16 MiB volume, then %v; want ENOSPC near 16", written, err)
	}
	if err := s.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if mounted, _ := mountinfo.Mounted(s.MountPath(id)); mounted {
		t.Error("still mounted after Remove")
	}
	if _, err := os.Stat(s.MountPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point left: %v", err)
	}
}
