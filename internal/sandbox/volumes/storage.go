package volumes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/google/uuid"
	"github.com/moby/sys/mountinfo"
)

// Storage keeps each volume as an ext4 filesystem of exactly its size in an image file, loop
// mounted on the engine's host: a sandbox writing past the size gets ENOSPC from the kernel, and
// the host's disk never sees more than the image. Needs root (mount) and e2fsprogs (mkfs.ext4).
type Storage struct{ dir string }

// NewStorage keeps volumes under dir (images/ and mounts/).
func NewStorage(dir string) *Storage { return &Storage{dir: dir} }

func (s *Storage) image(id uuid.UUID) string {
	return filepath.Join(s.dir, "images", id.String()+".img")
}

// MountPath is where a volume's filesystem is mounted on the host: what sandboxes bind.
func (s *Storage) MountPath(id uuid.UUID) string { return filepath.Join(s.dir, "mounts", id.String()) }

// Create makes a volume's filesystem and mounts it.
func (s *Storage) Create(ctx context.Context, id uuid.UUID, sizeMB int) (err error) {
	if err := os.MkdirAll(filepath.Dir(s.image(id)), 0o700); err != nil {
		return fmt.Errorf("create the volumes directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = s.Remove(context.WithoutCancel(ctx), id)
		}
	}()
	f, err := os.OpenFile(s.image(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create the volume's image: %w", err)
	}
	err = f.Truncate(int64(sizeMB) << 20) // sparse: the host's disk holds only what is written
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size the volume's image: %w", err)
	}
	// -m 0: no blocks reserved for root (a sandbox runs as root; the size is the user's); the
	// root directory is root's, as a fresh directory in a sandbox would be.
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-E", "root_owner=0:0", s.image(id)).CombinedOutput(); err != nil {
		return fmt.Errorf("make the volume's filesystem: %w: %s", err, out)
	}
	return s.Mount(ctx, id)
}

// Mount mounts a volume's filesystem unless it is mounted (after a host restart, say).
func (s *Storage) Mount(ctx context.Context, id uuid.UUID) error {
	path := s.MountPath(id)
	if mounted, err := mountinfo.Mounted(path); err == nil && mounted {
		return nil
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("create the volume's mount point: %w", err)
	}
	// nosuid, nodev: a file a sandbox leaves in its volume gives nothing to the host or the next one.
	if out, err := exec.CommandContext(ctx, "mount", "-o", "loop,nosuid,nodev", s.image(id), path).CombinedOutput(); err != nil {
		return fmt.Errorf("mount the volume: %w: %s", err, out)
	}
	return nil
}

// Remove unmounts a volume and deletes its filesystem; what is already gone is no error.
func (s *Storage) Remove(ctx context.Context, id uuid.UUID) error {
	path := s.MountPath(id)
	if mounted, err := mountinfo.Mounted(path); err == nil && mounted {
		if out, err := exec.CommandContext(ctx, "umount", path).CombinedOutput(); err != nil {
			return fmt.Errorf("unmount the volume: %w: %s", err, out)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the volume's mount point: %w", err)
	}
	if err := os.Remove(s.image(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the volume's image: %w", err)
	}
	return nil
}
