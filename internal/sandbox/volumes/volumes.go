// Package volumes keeps users' persistent volumes: filesystems of a fixed size that outlive the
// sandboxes mounting them, one live sandbox at a time.
package volumes

import (
	"context"
	"errors"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/repositories"
)

// systemPaths are where no volume may be mounted: the sandbox's root and the kernel's filesystems.
var systemPaths = []string{"/", "/proc", "/sys", "/dev"}

// Request is a volume a create asks to mount.
type Request struct {
	Volume   string `json:"volume"` // id or name
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only"`
}

// Service manages volumes.
type Service struct {
	rows      *repositories.Sandboxes
	backend   Backend
	cfg       config.Volumes
	supported bool
	log       *zap.Logger
}

// Params are the service's dependencies.
type Params struct {
	fx.In
	Sandboxes *repositories.Sandboxes
	Config    config.Volumes
	Runtime   runtimes.Runtime
	Log       *zap.Logger
}

// NewService builds the service on the volume backend of the runtime (BackendFor); a runtime
// that cannot mount volumes gets none.
func NewService(p Params) *Service {
	return &Service{rows: p.Sandboxes, backend: BackendFor(p.Runtime, p.Config.Dir), cfg: p.Config,
		supported: p.Runtime.Capabilities().Volumes, log: p.Log.Named("volumes")}
}

func (s *Service) unsupported() error {
	if s.supported {
		return nil
	}
	return apierror.Conflict("not_supported_by_runtime", "this server's runtime cannot mount volumes")
}

// Create makes a volume of sizeMB for a user, within their quota.
func (s *Service) Create(ctx context.Context, userID uuid.UUID, volumeName string, sizeMB int) (*model.Volume, error) {
	if err := s.unsupported(); err != nil {
		return nil, err
	}
	if !model.NamePattern.MatchString(volumeName) {
		return nil, apierror.Invalid("name", model.NameRule)
	}
	if sizeMB < s.cfg.MinSizeMB || sizeMB > s.cfg.MaxSizeMB {
		return nil, apierror.Invalid("size_mb", "size_mb must be between %d and %d", s.cfg.MinSizeMB, s.cfg.MaxSizeMB)
	}
	v := &model.Volume{ID: uuid.New(), UserID: userID, Name: volumeName, SizeMB: sizeMB}
	err := s.rows.InTx(ctx, func(ctx context.Context, rows *repositories.Sandboxes) error {
		if err := rows.LockOwner(ctx, userID); errors.Is(err, repositories.ErrNotFound) {
			return apierror.AccountDeleted()
		} else if err != nil {
			return err
		}
		count, total, err := rows.Volumes().Usage(ctx, userID)
		if err != nil {
			return err
		}
		if count >= s.cfg.MaxPerUser {
			return apierror.TooManyRequests("quota_exceeded", "you have %d volumes, the maximum", count)
		}
		if total+sizeMB > s.cfg.MaxTotalMBPerUser {
			return apierror.TooManyRequests("quota_exceeded", "your volumes would total %d MB; at most %d are allowed", total+sizeMB, s.cfg.MaxTotalMBPerUser)
		}
		if err := rows.Volumes().Insert(ctx, v); errors.Is(err, repositories.ErrConflict) {
			return apierror.Conflict("volume_name_taken", "you already have a volume named %q", volumeName)
		} else if err != nil {
			return err
		}
		// Made within the transaction: a volume whose storage cannot be made is not recorded.
		return s.backend.Create(ctx, *v)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Volume is a volume and the live sandbox that mounts it, if any.
type Volume struct {
	model.Volume
	UsedBy *uuid.UUID
}

// List returns a user's volumes.
func (s *Service) List(ctx context.Context, userID uuid.UUID) ([]Volume, error) {
	vols, err := s.rows.Volumes().List(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]Volume, len(vols))
	for i, v := range vols {
		if out[i], err = s.withUser(ctx, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Get returns a user's volume by id or name: 404 when it is not theirs.
func (s *Service) Get(ctx context.Context, userID uuid.UUID, idOrName string) (Volume, error) {
	v, err := s.rows.Volumes().Find(ctx, userID, idOrName, false)
	if errors.Is(err, repositories.ErrNotFound) {
		return Volume{}, apierror.NotFound("volume")
	}
	if err != nil {
		return Volume{}, err
	}
	return s.withUser(ctx, *v)
}

func (s *Service) withUser(ctx context.Context, v model.Volume) (Volume, error) {
	by, err := s.rows.Volumes().UsedBy(ctx, v.ID)
	switch {
	case errors.Is(err, repositories.ErrNotFound):
		return Volume{Volume: v}, nil
	case err != nil:
		return Volume{}, err
	}
	return Volume{Volume: v, UsedBy: &by}, nil
}

// Delete removes a user's volume and its data: 409 while a live sandbox mounts it.
func (s *Service) Delete(ctx context.Context, userID uuid.UUID, idOrName string) error {
	return s.rows.InTx(ctx, func(ctx context.Context, rows *repositories.Sandboxes) error {
		v, err := rows.Volumes().Find(ctx, userID, idOrName, true)
		if errors.Is(err, repositories.ErrNotFound) {
			return apierror.NotFound("volume")
		}
		if err != nil {
			return err
		}
		if err := inUse(ctx, rows, v); err != nil {
			return err
		}
		if err := rows.Volumes().Delete(ctx, userID, v.ID); err != nil {
			return err
		}
		return s.backend.Remove(ctx, v.ID)
	})
}

// inUse refuses a volume a live sandbox mounts. Called with the volume locked, so no sandbox
// starts using it meanwhile.
func inUse(ctx context.Context, rows *repositories.Sandboxes, v *model.Volume) error {
	by, err := rows.Volumes().UsedBy(ctx, v.ID)
	switch {
	case errors.Is(err, repositories.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	return apierror.Conflict("volume_in_use", "volume %q is mounted by sandbox %s; delete or wait for that sandbox first", v.Name, by)
}

// Validate checks a create's volume requests before any transaction.
func (s *Service) Validate(reqs []Request) error {
	if len(reqs) == 0 {
		return nil
	}
	if err := s.unsupported(); err != nil {
		return err
	}
	if len(reqs) > s.cfg.MaxPerSandbox {
		return apierror.Invalid("volumes", "a sandbox mounts at most %d volumes", s.cfg.MaxPerSandbox)
	}
	var paths []string
	for i, r := range reqs {
		p := r.Path
		switch {
		case r.Volume == "":
			return apierror.Invalid("volumes", "volumes[%d].volume is required (an id or a name)", i)
		case !strings.HasPrefix(p, "/") || path.Clean(p) != p || len(p) > 1024 || !utf8.ValidString(p) || strings.ContainsRune(p, 0):
			return apierror.Invalid("volumes", "volumes[%d].path must be an absolute, clean path (got %q)", i, p)
		case slices.ContainsFunc(systemPaths, func(sys string) bool { return p == sys || (sys != "/" && strings.HasPrefix(p, sys+"/")) }):
			return apierror.Invalid("volumes", "volumes[%d].path %q is a system path (/, /proc, /sys, /dev)", i, p)
		case slices.Contains(paths, p):
			return apierror.Invalid("volumes", "volumes[%d].path %q is mounted twice", i, p)
		}
		paths = append(paths, p)
	}
	return nil
}

// Attach resolves a create's volume requests within its transaction: each must be the user's
// (404 otherwise), listed once, and mounted by no live sandbox (409). The volumes stay locked
// until the transaction ends, by when the new sandbox's row lists them.
func (s *Service) Attach(ctx context.Context, rows *repositories.Sandboxes, userID uuid.UUID, reqs []Request) ([]model.VolumeMount, error) {
	mounts := []model.VolumeMount{}
	for _, r := range reqs {
		v, err := rows.Volumes().Find(ctx, userID, r.Volume, true)
		if errors.Is(err, repositories.ErrNotFound) {
			return nil, apierror.NotFound("volume")
		}
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(mounts, func(m model.VolumeMount) bool { return m.VolumeID == v.ID }) {
			return nil, apierror.Invalid("volumes", "volume %q is listed twice: a volume is mounted at one path", v.Name)
		}
		if err := inUse(ctx, rows, v); err != nil {
			return nil, err
		}
		mounts = append(mounts, model.VolumeMount{VolumeID: v.ID, Path: r.Path, ReadOnly: r.ReadOnly})
	}
	return mounts, nil
}

// Mounts are a sandbox's volumes as the runtime mounts them, each readied by the backend first.
func (s *Service) Mounts(ctx context.Context, vms []model.VolumeMount) ([]runtimes.Mount, error) {
	out := make([]runtimes.Mount, len(vms))
	for i, m := range vms {
		var err error
		if out[i], err = s.backend.Mount(ctx, m); err != nil {
			return nil, err
		}
	}
	return out, nil
}
