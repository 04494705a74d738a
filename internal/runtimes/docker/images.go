package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Build builds an image with the engine's classic builder (see runtimes.Images): every RUN step
// runs in a container with no network, the build's memory and CPU limits, and the intermediate
// containers are removed whatever happens. Nothing is pulled: FROM must name an image the engine
// has. A step's disk: the engine's default container size where it has one (dockerd
// --storage-opt overlay2.size; the builder API takes no size of its own), and spec.DiskMB, which
// a watch on the step's container enforces by cancelling the build once it has written more (it
// looks twice a second, so a fast writer gets a little past it).
func (r *Runtime) Build(ctx context.Context, spec runtimes.BuildSpec, log io.Writer) (runtimes.Image, error) {
	buildContext, err := tarContext(spec)
	if err != nil {
		return runtimes.Image{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	steps := make(chan string, 1) // the container of the step that runs now
	defer close(steps)
	go r.boundStepDisk(ctx, spec.DiskMB, steps, cancel)

	memory := spec.MemoryMB << 20
	res, err := r.cli.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		Tags: []string{spec.Tag}, Dockerfile: "Dockerfile", Version: build.BuilderV1,
		NetworkMode: "none", Memory: memory, MemorySwap: memory, CPUPeriod: 100000, CPUQuota: int64(spec.CPU * 100000),
		Remove: true, ForceRemove: true, PullParent: false,
	})
	if err != nil {
		return runtimes.Image{}, mapErr("build", spec.Tag, err)
	}
	defer res.Body.Close()
	var step string
	outOfDisk := false // the current step wrote "No space left on device" (or EDQUOT's words)
	dec := json.NewDecoder(res.Body)
	for {
		var msg jsonstream.Message
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if errors.Is(context.Cause(ctx), errStepDiskBound) {
			message := fmt.Sprintf("the step wrote more than %d MB, the most a build step may write", spec.DiskMB)
			_, _ = io.WriteString(log, message+"\n")
			return runtimes.Image{}, &runtimes.BuildError{Step: step, Message: message}
		} else if err != nil {
			return runtimes.Image{}, fmt.Errorf("docker: build %s: reading the builder's output: %w", spec.Tag, err)
		}
		if msg.Stream != "" {
			_, _ = io.WriteString(log, msg.Stream)
			for line := range strings.Lines(msg.Stream) {
				if strings.HasPrefix(line, "Step ") {
					step, outOfDisk = strings.TrimSpace(line), false
				}
				if id, ok := strings.CutPrefix(strings.TrimSpace(line), "---> Running in "); ok {
					steps <- id
				}
				if strings.Contains(line, "No space left on device") || strings.Contains(line, "Disk quota exceeded") {
					outOfDisk = true
				}
			}
		}
		if msg.Error != nil {
			_, _ = io.WriteString(log, msg.Error.Message+"\n")
			message := msg.Error.Message
			if outOfDisk {
				message += " (it ran out of disk: a build step may write at most the engine's container size)"
			}
			return runtimes.Image{}, &runtimes.BuildError{Step: step, Message: message}
		}
	}
	if ctx.Err() != nil {
		return runtimes.Image{}, fmt.Errorf("docker: build %s: %w", spec.Tag, ctx.Err())
	}
	return r.image(ctx, spec.Tag)
}

// errStepDiskBound is why a build is cancelled when a step writes past its bound.
var errStepDiskBound = errors.New("a build step wrote past its disk bound")

// stepDiskPoll is how often the step's container is measured.
const stepDiskPoll = 500 * time.Millisecond

// boundStepDisk measures the writable layer of each step's container (the builder names it in
// its output) and cancels the build once one holds more than limitMB; it reads steps until they
// are closed. No limit: it only drains them.
func (r *Runtime) boundStepDisk(ctx context.Context, limitMB int64, steps <-chan string, cancel context.CancelCauseFunc) {
	tick := time.NewTicker(stepDiskPoll)
	defer tick.Stop()
	var current string
	for {
		select {
		case id, ok := <-steps:
			if !ok {
				return
			}
			current = id
			continue
		case <-tick.C:
		}
		if current == "" || limitMB <= 0 {
			continue
		}
		res, err := r.cli.ContainerInspect(ctx, current, client.ContainerInspectOptions{Size: true})
		if err != nil {
			continue // the step ended (its container is gone), or the engine is busy: next tick
		}
		if size := res.Container.SizeRw; size != nil && *size > limitMB<<20 {
			cancel(errStepDiskBound)
			limitMB = 0 // and keep draining steps: the reader may still name one before it stops
		}
	}
}

// tarContext is the build context: the Dockerfile and the files, in a tar stream.
func tarContext(spec runtimes.BuildSpec) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := maps.Clone(spec.Files)
	if files == nil {
		files = map[string][]byte{}
	}
	files["Dockerfile"] = []byte(spec.Dockerfile)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, fmt.Errorf("docker: build context: %w", err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("docker: build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("docker: build context: %w", err)
	}
	return &buf, nil
}

// Commit makes an image of a container's filesystem; the engine pauses the container for the
// copy and resumes it (see runtimes.Images).
func (r *Runtime) Commit(ctx context.Context, id, tag string, labels map[string]string) (runtimes.Image, error) {
	changes := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		changes = append(changes, fmt.Sprintf("LABEL %q=%q", k, labels[k]))
	}
	if _, err := r.cli.ContainerCommit(ctx, id, client.ContainerCommitOptions{Reference: tag, Changes: changes}); err != nil {
		return runtimes.Image{}, mapErr("commit", id, err)
	}
	return r.image(ctx, tag)
}

func (r *Runtime) image(ctx context.Context, tag string) (runtimes.Image, error) {
	res, err := r.cli.ImageInspect(ctx, tag)
	if err != nil {
		return runtimes.Image{}, mapErr("inspect image", tag, err)
	}
	return runtimes.Image{ID: res.ID, SizeBytes: res.Size}, nil
}

// RemoveImage removes an image by its tag (see runtimes.Images).
func (r *Runtime) RemoveImage(ctx context.Context, tag string) error {
	_, err := r.cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	if err = mapErr("remove image", tag, err); errors.Is(err, runtimes.ErrNotFound) {
		return nil
	}
	return err
}
