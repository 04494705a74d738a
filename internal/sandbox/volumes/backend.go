package volumes

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
)

// Backend keeps volumes' data where the runtime mounts it from. The runtime decides which: a
// driver that keeps volumes itself (runtimes.VolumeStore: Kubernetes claims) gets runtimeVolumes;
// one that binds host directories (Docker) gets hostVolumes, loop-mounted images on its host. The
// service's rules (ownership, quotas, one live sandbox per volume) are the same for both.
type Backend interface {
	// Create makes a volume's storage; an error leaves none behind and the volume unrecorded.
	Create(ctx context.Context, v model.Volume) error
	// Remove deletes a volume's storage and its data; what is already gone is no error.
	Remove(ctx context.Context, id uuid.UUID) error
	// Mount readies a volume for a sandbox about to start and says how the runtime mounts it.
	Mount(ctx context.Context, m model.VolumeMount) (runtimes.Mount, error)
}

// BackendFor is the backend of volumes on rt: its own volumes where it keeps them, else loop
// images under dir on the engine's host.
func BackendFor(rt runtimes.Runtime, dir string) Backend {
	if store, ok := runtimes.As[runtimes.VolumeStore](rt); ok {
		return runtimeVolumes{store: store}
	}
	return hostVolumes{storage: NewStorage(dir)}
}

// hostVolumes are Storage's images, bound into sandboxes as host directories.
type hostVolumes struct{ storage *Storage }

func (h hostVolumes) Create(ctx context.Context, v model.Volume) error {
	return h.storage.Create(ctx, v.ID, v.SizeMB)
}

func (h hostVolumes) Remove(ctx context.Context, id uuid.UUID) error {
	return h.storage.Remove(ctx, id)
}

// Mount checks the volume is mounted on the host first: binding an unmounted mount point would
// give the sandbox the host's disk, unbounded.
func (h hostVolumes) Mount(ctx context.Context, m model.VolumeMount) (runtimes.Mount, error) {
	if err := h.storage.Mount(ctx, m.VolumeID); err != nil {
		return runtimes.Mount{}, fmt.Errorf("volume %s: %w", m.VolumeID, err)
	}
	return runtimes.Mount{Source: h.storage.MountPath(m.VolumeID), Target: m.Path, ReadOnly: m.ReadOnly}, nil
}

// runtimeVolumes are the runtime's own volumes, named model.VolumeName(id); the runtime's storage
// holds their data and enforces their size.
type runtimeVolumes struct{ store runtimes.VolumeStore }

func (r runtimeVolumes) Create(ctx context.Context, v model.Volume) error {
	return r.store.CreateVolume(ctx, runtimes.VolumeSpec{Name: model.VolumeName(v.ID), SizeMB: int64(v.SizeMB),
		Labels: map[string]string{runtimes.LabelVolumeID: v.ID.String(), runtimes.LabelUserID: v.UserID.String()}})
}

func (r runtimeVolumes) Remove(ctx context.Context, id uuid.UUID) error {
	return r.store.RemoveVolume(ctx, model.VolumeName(id))
}

func (r runtimeVolumes) Mount(_ context.Context, m model.VolumeMount) (runtimes.Mount, error) {
	return runtimes.Mount{Volume: model.VolumeName(m.VolumeID), Target: m.Path, ReadOnly: m.ReadOnly}, nil
}
