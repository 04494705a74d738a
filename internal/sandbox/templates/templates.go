// Package templates keeps users' own images: built on the engine from a Dockerfile (with no
// network and within limits), or snapshots of a running sandbox's filesystem.
package templates

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/repositories"
)

var errNoFrom = apierror.Invalid("dockerfile", "the Dockerfile has no FROM")

// ImagePrefix names the engine's images of templates: <prefix>:<template id>.
const ImagePrefix = "insien/template"

// Service builds and keeps templates.
type Service struct {
	rows     *repositories.Sandboxes
	images   runtimes.Images // nil: the runtime keeps no images of ours (Kubernetes)
	cfg      config.Templates
	allowed  []string
	cluster  string
	instance string
	started  time.Time
	slots    chan struct{}
	log      *zap.Logger

	builds    sync.WaitGroup
	buildCtx  context.Context
	stopBuild context.CancelFunc
}

// Params are the service's dependencies.
type Params struct {
	fx.In
	Sandboxes     *repositories.Sandboxes
	Runtime       runtimes.Runtime
	Config        config.Templates
	Sandbox       config.Sandbox
	RuntimeConfig config.Runtime
	App           config.App
	Log           *zap.Logger
}

// NewService builds the service.
func NewService(p Params) *Service {
	images, _ := runtimes.As[runtimes.Images](p.Runtime)
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{rows: p.Sandboxes, images: images, cfg: p.Config, allowed: p.Sandbox.AllowedImages,
		cluster: p.RuntimeConfig.Cluster, instance: p.App.InstanceName(), started: time.Now(),
		slots: make(chan struct{}, p.Config.MaxConcurrentBuilds), log: p.Log.Named("templates"),
		buildCtx: ctx, stopBuild: cancel}
}

func (s *Service) unsupported() error {
	if s.images != nil {
		return nil
	}
	return apierror.Conflict("not_supported_by_runtime", "this server's runtime keeps no images of its own (Kubernetes): no templates or snapshots")
}

// CreateInput is a template to build: a Dockerfile and the files it copies (base64).
type CreateInput struct {
	Name       string            `json:"name"`
	Dockerfile string            `json:"dockerfile"`
	Files      map[string]string `json:"files"`
}

// Create starts building a template and returns it (building), or a ready copy at once when the
// caller already built the same Dockerfile and files.
func (s *Service) Create(ctx context.Context, userID uuid.UUID, in CreateInput) (*model.Template, error) {
	files := make(map[string][]byte, len(in.Files))
	for p, b64 := range in.Files {
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, apierror.Invalid("files", "files[%q] is not base64", p)
		}
		files[p] = data
	}
	return s.create(ctx, userID, in.Name, in.Dockerfile, files)
}

// CreateFromTar is Create from a tar stream (gzip-compressed or not) holding the Dockerfile at
// its root and the files it copies; at most templates.max_context_bytes are read.
func (s *Service) CreateFromTar(ctx context.Context, userID uuid.UUID, templateName string, r io.Reader) (*model.Template, error) {
	buffered := bufio.NewReader(r)
	if magic, _ := buffered.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(buffered)
		if err != nil {
			return nil, apierror.Invalid("context", "the build context is not a valid gzip stream")
		}
		r = gz
	} else {
		r = buffered
	}
	files := map[string][]byte{}
	used := 0
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, apierror.Invalid("context", "the build context is not a valid tar stream")
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, apierror.Invalid("context", "%q: a build context holds regular files and directories only", h.Name)
		}
		if used += int(h.Size); h.Size < 0 || used > s.cfg.MaxContextBytes {
			return nil, apierror.Invalid("context", "the build context is larger than %d bytes", s.cfg.MaxContextBytes)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, apierror.Invalid("context", "the build context is not a valid tar stream")
		}
		files[name] = data
	}
	dockerfile, ok := files["Dockerfile"]
	if !ok {
		return nil, apierror.Invalid("context", "the build context has no Dockerfile at its root")
	}
	delete(files, "Dockerfile")
	return s.create(ctx, userID, templateName, string(dockerfile), files)
}

// create checks a build and starts it (or answers it from the cache).
func (s *Service) create(ctx context.Context, userID uuid.UUID, templateName, dockerfile string, files map[string][]byte) (*model.Template, error) {
	if err := s.unsupported(); err != nil {
		return nil, err
	}
	if !model.NamePattern.MatchString(templateName) {
		return nil, apierror.Invalid("name", model.NameRule)
	}
	if dockerfile == "" || len(dockerfile) > s.cfg.MaxContextBytes {
		return nil, apierror.Invalid("dockerfile", "dockerfile is required, at most %d bytes", s.cfg.MaxContextBytes)
	}
	if err := s.checkFiles(files, len(dockerfile)); err != nil {
		return nil, err
	}
	dockerfile, err := rewriteFrom(dockerfile, s.allowed, func(ref string) (string, error) {
		t, err := s.rows.Templates().Find(ctx, userID, ref)
		if err != nil || t.Status != model.TemplateReady {
			return "", apierror.Invalid("dockerfile", "FROM %q: not an allowed image (%s) nor one of your ready templates", ref, strings.Join(s.allowed, ", "))
		}
		return t.Image, nil
	})
	if err != nil {
		return nil, err
	}
	t := &model.Template{ID: uuid.New(), UserID: userID, Name: templateName, Source: model.TemplateFromDockerfile,
		Status: model.TemplateBuilding, ContextHash: contextHash(dockerfile, files), Instance: s.instance}
	t.Image = ImagePrefix + ":" + t.ID.String()
	if cached, err := s.rows.Templates().Cached(ctx, userID, t.ContextHash); err == nil {
		now := time.Now()
		t.Status, t.Image, t.SizeBytes, t.FinishedAt = model.TemplateReady, cached.Image, cached.SizeBytes, &now
	} else if !errors.Is(err, repositories.ErrNotFound) {
		return nil, err
	}
	if err := s.insert(ctx, t); err != nil {
		return nil, err
	}
	if t.Status == model.TemplateBuilding {
		s.builds.Add(1)
		go s.build(t, runtimes.BuildSpec{Tag: t.Image, Dockerfile: dockerfile, Files: files,
			MemoryMB: s.cfg.BuildMemoryMB, CPU: s.cfg.BuildCPU, DiskMB: s.cfg.BuildDiskMB})
	}
	return t, nil
}

// checkFiles checks the build context's paths and its total size (used: the Dockerfile's).
func (s *Service) checkFiles(files map[string][]byte, used int) error {
	for p, data := range files {
		if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.HasPrefix(p, "../") || p == ".." || p == "Dockerfile" {
			return apierror.Invalid("files", "files: %q must be a clean relative path inside the context (and not Dockerfile)", p)
		}
		if used += len(data); used > s.cfg.MaxContextBytes {
			return apierror.Invalid("files", "the build context is larger than %d bytes", s.cfg.MaxContextBytes)
		}
	}
	return nil
}

// insert records a new template within the user's quota.
func (s *Service) insert(ctx context.Context, t *model.Template) error {
	return s.rows.InTx(ctx, func(ctx context.Context, rows *repositories.Sandboxes) error {
		if err := rows.LockOwner(ctx, t.UserID); errors.Is(err, repositories.ErrNotFound) {
			return apierror.AccountDeleted()
		} else if err != nil {
			return err
		}
		n, size, err := rows.Templates().Usage(ctx, t.UserID)
		if err != nil {
			return err
		}
		if n >= s.cfg.MaxPerUser {
			return apierror.TooManyRequests("quota_exceeded", "you have %d templates, the maximum", n)
		}
		// The size of a build is known only once it is built: the limit stops the next one.
		if size >= s.cfg.MaxTotalMBPerUser<<20 {
			return apierror.TooManyRequests("quota_exceeded", "your templates' images take %d MB, at least the maximum %d; delete some first",
				size>>20, s.cfg.MaxTotalMBPerUser)
		}
		if err := rows.Templates().Insert(ctx, t); errors.Is(err, repositories.ErrConflict) {
			return apierror.Conflict("template_name_taken", "you already have a template named %q", t.Name)
		} else if err != nil {
			return err
		}
		return nil
	})
}

func (s *Service) labels(t *model.Template) map[string]string {
	return map[string]string{runtimes.LabelManagedBy: "true", runtimes.LabelCluster: s.cluster,
		runtimes.LabelInstance: s.instance, runtimes.LabelUserID: t.UserID.String()}
}

// build runs one build, waiting for a slot (templates.max_concurrent_builds), and records how it
// ended; a failed build leaves no image.
func (s *Service) build(t *model.Template, spec runtimes.BuildSpec) {
	defer s.builds.Done()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-s.buildCtx.Done():
		return // stopping: the next start fails it as interrupted
	}
	ctx, cancel := context.WithTimeout(s.buildCtx, s.cfg.BuildTimeout)
	defer cancel()
	log := &buildLog{ctx: context.WithoutCancel(ctx), rows: s.rows.Templates(), id: t.ID, limit: s.cfg.MaxLogBytes}
	img, err := s.images.Build(ctx, spec, log)
	if s.buildCtx.Err() != nil {
		return // stopping mid-build: the next start fails it as interrupted and removes the image
	}
	finish := context.WithoutCancel(ctx)
	if err == nil {
		if err := s.rows.Templates().Finish(finish, t.ID, model.TemplateReady, img.SizeBytes, nil, nil); err != nil {
			s.log.Error("recording a finished build", zap.Stringer("template", t.ID), zap.Error(err))
		}
		return
	}
	var failed *runtimes.BuildError
	msg, step := "the engine failed the build (its reason is in the server log)", (*string)(nil)
	switch {
	case errors.As(err, &failed):
		msg, step = failed.Message, &failed.Step
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("the build took longer than %s (templates.build_timeout)", s.cfg.BuildTimeout)
	default:
		s.log.Warn("a build failed in the engine", zap.Stringer("template", t.ID), zap.Error(err))
	}
	_ = s.images.RemoveImage(finish, t.Image)
	if err := s.rows.Templates().Finish(finish, t.ID, model.TemplateFailed, 0, &msg, step); err != nil {
		s.log.Error("recording a failed build", zap.Stringer("template", t.ID), zap.Error(err))
	}
}

// buildLog appends the builder's output to the template's log, up to limit bytes.
type buildLog struct {
	ctx     context.Context
	rows    *repositories.Templates
	id      uuid.UUID
	limit   int
	written int
}

func (l *buildLog) Write(p []byte) (int, error) {
	chunk := string(p)
	switch {
	case l.written >= l.limit:
		return len(p), nil
	case l.written+len(chunk) > l.limit:
		chunk = chunk[:l.limit-l.written] + "\n[the build log is cut here: templates.max_log_bytes]\n"
	}
	l.written += len(chunk)
	if err := l.rows.AppendLog(l.ctx, l.id, strings.ToValidUTF8(chunk, "\uFFFD")); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Get returns a user's template by id or name: 404 when it is not theirs.
func (s *Service) Get(ctx context.Context, userID uuid.UUID, idOrName string) (*model.Template, error) {
	t, err := s.rows.Templates().Find(ctx, userID, idOrName)
	if errors.Is(err, repositories.ErrNotFound) {
		return nil, apierror.NotFound("template")
	}
	return t, err
}

// List returns a user's templates.
func (s *Service) List(ctx context.Context, userID uuid.UUID) ([]model.Template, error) {
	return s.rows.Templates().List(ctx, userID)
}

// Public are the operator's allowed images, which every user may start from.
func (s *Service) Public() []string { return s.allowed }

// Log returns a template's build log from offset and whether the build is over.
func (s *Service) Log(ctx context.Context, userID uuid.UUID, idOrName string, offset int) (string, bool, error) {
	t, err := s.Get(ctx, userID, idOrName)
	if err != nil {
		return "", false, err
	}
	rest, status, err := s.rows.Templates().Log(ctx, t.ID, offset)
	return rest, status != model.TemplateBuilding, err
}

// Delete removes a user's template, and its image once no other template shares it: 409 while a
// live sandbox runs it.
func (s *Service) Delete(ctx context.Context, userID uuid.UUID, idOrName string) error {
	t, err := s.Get(ctx, userID, idOrName)
	if err != nil {
		return err
	}
	// Under the image's lock, which every create from a template holds until its sandbox's row
	// exists: a sandbox counted here, or a create that finds the template gone; never a sandbox
	// whose image is removed under it.
	var shared int64
	err = s.rows.InTx(ctx, func(ctx context.Context, rows *repositories.Sandboxes) error {
		if err := rows.Templates().LockImage(ctx, t.Image); err != nil {
			return err
		}
		others, running, err := rows.Templates().ImageUsers(ctx, t.ID, t.Image)
		if err != nil {
			return err
		}
		if running > 0 {
			return apierror.Conflict("template_in_use", "template %q runs in %d live sandboxes; delete them first", t.Name, running)
		}
		shared = others
		return rows.Templates().Delete(ctx, userID, t.ID)
	})
	if err != nil {
		return err
	}
	if shared == 0 && t.Status != model.TemplateBuilding {
		if err := s.images.RemoveImage(ctx, t.Image); err != nil {
			s.log.Warn("removing a deleted template's image", zap.String("image", t.Image), zap.Error(err))
		}
	}
	return nil
}

// Resolve is the template a sandbox starts from for the template ref (id or name) of its user:
// 404 when there is none, 409 until it is ready. The create's transaction then holds it with
// Hold, so that a delete cannot take its image away before the sandbox's row exists.
func (s *Service) Resolve(ctx context.Context, userID uuid.UUID, ref string) (*model.Template, error) {
	if err := s.unsupported(); err != nil {
		return nil, err
	}
	t, err := s.Get(ctx, userID, ref)
	if err != nil {
		return nil, err
	}
	if t.Status != model.TemplateReady {
		return nil, apierror.Conflict("template_not_ready", "template %q is %s", t.Name, t.Status)
	}
	return t, nil
}

// Hold keeps a resolved template's image from being removed until rows' transaction ends, and
// checks the template is still there (404 when a delete came first).
func Hold(ctx context.Context, rows *repositories.Sandboxes, t *model.Template) error {
	err := rows.Templates().HoldImage(ctx, t.UserID, t.ID, t.Image)
	if errors.Is(err, repositories.ErrNotFound) {
		return apierror.NotFound("template")
	}
	return err
}

// Snapshot makes a template of a user's running sandbox's filesystem as it is now (volumes are
// not part of it). The engine pauses the sandbox for the copy and resumes it.
func (s *Service) Snapshot(ctx context.Context, userID, sandboxID uuid.UUID, templateName string) (*model.Template, error) {
	if err := s.unsupported(); err != nil {
		return nil, err
	}
	if !model.NamePattern.MatchString(templateName) {
		return nil, apierror.Invalid("name", model.NameRule)
	}
	sb, err := s.rows.Get(ctx, userID, sandboxID)
	if errors.Is(err, repositories.ErrNotFound) {
		return nil, apierror.NotFound("sandbox")
	}
	if err != nil {
		return nil, err
	}
	if sb.Status != model.StatusRunning || sb.RuntimeID == nil {
		return nil, apierror.Conflict("sandbox_not_running", "sandbox is %s; only a running sandbox can be snapshotted", sb.Status)
	}
	t := &model.Template{ID: uuid.New(), UserID: userID, Name: templateName, Source: model.TemplateFromSnapshot,
		Status: model.TemplateBuilding, Instance: s.instance}
	t.Image = ImagePrefix + ":" + t.ID.String()
	if err := s.insert(ctx, t); err != nil {
		return nil, err
	}
	done := context.WithoutCancel(ctx)
	img, err := s.images.Commit(done, *sb.RuntimeID, t.Image, s.labels(t))
	if err != nil {
		msg := "the engine could not snapshot the sandbox (its reason is in the server log)"
		s.log.Warn("a snapshot failed", zap.Stringer("sandbox", sandboxID), zap.Error(err))
		_ = s.images.RemoveImage(done, t.Image)
		_ = s.rows.Templates().Finish(done, t.ID, model.TemplateFailed, 0, &msg, nil)
		return nil, apierror.BadGateway("snapshot_failed", "%s", msg).WithCause(err)
	}
	if err := s.rows.Templates().Finish(done, t.ID, model.TemplateReady, img.SizeBytes, nil, nil); err != nil {
		return nil, err
	}
	return s.Get(done, userID, t.ID.String())
}

// Start fails the builds and snapshots this instance left when it died, and removes their images.
func (s *Service) Start(ctx context.Context) error {
	if s.images == nil {
		return nil
	}
	left, err := s.rows.Templates().FailInterrupted(ctx, s.instance, s.started)
	if err != nil {
		s.log.Warn("failing interrupted builds", zap.Error(err))
		return nil
	}
	for _, t := range left {
		if err := s.images.RemoveImage(ctx, t.Image); err != nil {
			s.log.Warn("removing an interrupted build's image", zap.String("image", t.Image), zap.Error(err))
		}
	}
	return nil
}

// Stop cancels the builds under way and waits for them.
func (s *Service) Stop(context.Context) error {
	s.stopBuild()
	s.builds.Wait()
	return nil
}
