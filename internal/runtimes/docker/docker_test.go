package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
)

// These tests drive a real Docker engine. `go tool task test` starts one and sets the variables.

const defaultTestImage = "insien/sandbox:busybox"

// wantCaps is the documented capability set (see capAdd in hardening.go), as the engine reports it.
var wantCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"}

// wantCapMask is wantCaps as the kernel's bitmask (bits 0,1,3,4,5,6,7), read from /proc/self/status.
const wantCapMask = "00000000000000fb"

type harness struct {
	t       *testing.T
	host    string
	image   string
	cluster string
	engine  *client.Client
}

// newHarness connects to the test engine and removes, at the end of the test, every container
// labelled with the test's own cluster label.
func newHarness(t *testing.T) *harness {
	t.Helper()
	host := os.Getenv("ORCH_TEST_DOCKER_HOST")
	if host == "" {
		t.Fatal("ORCH_TEST_DOCKER_HOST is not set: these tests need a Docker engine; run `go tool task test`, which starts one and sets it")
	}
	image := os.Getenv("ORCH_TEST_IMAGE")
	if image == "" {
		image = defaultTestImage
	}
	engine, err := client.New(client.WithHost(host))
	if err != nil {
		t.Fatalf("moby client: %v", err)
	}
	h := &harness{t: t, host: host, image: image, cluster: "test-" + randHex(6), engine: engine}
	t.Cleanup(func() {
		defer engine.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := client.Filters{}
		f.Add("label", runtimes.LabelCluster+"="+h.cluster)
		res, err := engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		if err != nil {
			t.Errorf("cleanup: list: %v", err)
			return
		}
		for _, c := range res.Items {
			if _, err := engine.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				t.Errorf("cleanup: remove %s: %v", c.ID, err)
			}
		}
	})
	return h
}

func (h *harness) runtime(opts docker.Options) *docker.Runtime {
	return h.runtimeWithLog(opts, zap.NewNop())
}

func (h *harness) runtimeWithLog(opts docker.Options, log *zap.Logger) *docker.Runtime {
	h.t.Helper()
	opts.Host = h.host
	rt, err := docker.New(opts, log)
	if err != nil {
		h.t.Fatalf("docker.New: %v", err)
	}
	h.t.Cleanup(func() { _ = rt.Close() })
	if err := rt.Ping(h.ctx()); err != nil {
		h.t.Fatalf("Ping %s: %v", h.host, err)
	}
	return rt
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(h.t.Context(), 60*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// spec is a small sandbox in the test's cluster with a fresh name and sandbox id.
func (h *harness) spec() runtimes.Spec {
	id := randHex(8)
	return runtimes.Spec{
		Name:  "sbx-test-" + id,
		Image: h.image,
		Labels: map[string]string{
			runtimes.LabelCluster:   h.cluster,
			runtimes.LabelSandboxID: id,
			runtimes.LabelUserID:    "user-1",
		},
		CPU:       0.5,
		MemoryMB:  64,
		PidsLimit: 64,
	}
}

func (h *harness) mustCreate(rt *docker.Runtime, spec runtimes.Spec) string {
	h.t.Helper()
	id, err := rt.Create(h.ctx(), spec)
	if err != nil {
		h.t.Fatalf("Create %s: %v", spec.Name, err)
	}
	return id
}

func (h *harness) mustStart(rt *docker.Runtime, spec runtimes.Spec) string {
	h.t.Helper()
	id := h.mustCreate(rt, spec)
	if err := rt.Start(h.ctx(), id); err != nil {
		h.t.Fatalf("Start %s: %v", id, err)
	}
	return id
}

func (h *harness) wantState(rt *docker.Runtime, id string, want runtimes.State) runtimes.Info {
	h.t.Helper()
	info, err := rt.Inspect(h.ctx(), id)
	if err != nil {
		h.t.Fatalf("Inspect %s: %v", id, err)
	}
	if info.State != want {
		h.t.Fatalf("state of %s = %q, want %q", id, info.State, want)
	}
	return info
}

// exec runs cmd in the container through the engine directly and returns its exit code and output.
// It takes the (sub)test's t so that a failure stops the right goroutine.
func (h *harness) exec(t *testing.T, id string, cmd ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ex, err := h.engine.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec create %v: %v", cmd, err)
	}
	att, err := h.engine.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec attach %v: %v", cmd, err)
	}
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, att.Reader)
	att.Close()
	if err != nil {
		t.Fatalf("exec read %v: %v", cmd, err)
	}
	for {
		res, err := h.engine.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			t.Fatalf("exec inspect %v: %v", cmd, err)
		}
		if !res.Running {
			return res.ExitCode, out.String()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestLifecycle(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{StopGrace: 5 * time.Second})
	spec := h.spec()

	id := h.mustCreate(rt, spec)
	info := h.wantState(rt, id, runtimes.StateCreated)
	if info.ID != id || info.Name != spec.Name {
		t.Errorf("Inspect = {ID:%q Name:%q}, want {%q %q}", info.ID, info.Name, id, spec.Name)
	}
	if !info.StartedAt.IsZero() {
		t.Errorf("created container has StartedAt %v, want zero", info.StartedAt)
	}

	if err := rt.Start(h.ctx(), id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := rt.Start(h.ctx(), id); err != nil {
		t.Errorf("Start of a running container: %v, want nil", err)
	}
	info = h.wantState(rt, id, runtimes.StateRunning)
	if info.StartedAt.IsZero() || time.Since(info.StartedAt) > time.Minute {
		t.Errorf("StartedAt = %v, want about now", info.StartedAt)
	}
	for k, v := range spec.Labels {
		if info.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, info.Labels[k], v)
		}
	}
	if info.Labels[runtimes.LabelManagedBy] != "true" {
		t.Errorf("label %s = %q, want \"true\"", runtimes.LabelManagedBy, info.Labels[runtimes.LabelManagedBy])
	}

	// The image's command traps SIGTERM and exits 0: a clean exit proves the signal reached it
	// through the init process, well before the grace period ran out.
	start := time.Now()
	if err := rt.Stop(h.ctx(), id, 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Stop took %v: SIGTERM was not handled, the engine had to SIGKILL", took)
	}
	info = h.wantState(rt, id, runtimes.StateExited)
	if info.ExitCode != 0 || info.Error != "" {
		t.Errorf("after Stop: ExitCode=%d Error=%q, want 0 and empty", info.ExitCode, info.Error)
	}
	if info.FinishedAt.Before(info.StartedAt) {
		t.Errorf("FinishedAt %v before StartedAt %v", info.FinishedAt, info.StartedAt)
	}
	if err := rt.Stop(h.ctx(), id, time.Second); err != nil {
		t.Errorf("Stop of a stopped container: %v, want nil", err)
	}

	for i := range 2 {
		if err := rt.Remove(h.ctx(), id); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, err := rt.Inspect(h.ctx(), id); !errors.Is(err, runtimes.ErrNotFound) {
		t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
	}
}

func TestExitCodeAndCommand(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	spec := h.spec()
	spec.Command = []string{"/bin/sh", "-c", "exit 7"}
	id := h.mustStart(rt, spec)

	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := rt.Inspect(h.ctx(), id)
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if info.State == runtimes.StateExited {
			if info.ExitCode != 7 {
				t.Errorf("ExitCode = %d, want 7", info.ExitCode)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container still %s after 20s", info.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHardening(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	spec := h.spec()
	spec.Env = map[string]string{"GREETING": "hello"}
	id := h.mustStart(rt, spec)

	res, err := h.engine.ContainerInspect(h.ctx(), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("engine inspect: %v", err)
	}
	hc, cfg := res.Container.HostConfig, res.Container.Config
	pids := int64(-1)
	if hc.PidsLimit != nil {
		pids = *hc.PidsLimit
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Privileged", hc.Privileged, false},
		{"CapDrop", hc.CapDrop, []string{"ALL"}},
		{"CapAdd", sorted(hc.CapAdd), wantCaps},
		{"SecurityOpt", hc.SecurityOpt, []string{"no-new-privileges=true"}},
		{"PidsLimit", pids, int64(64)},
		{"Memory", hc.Memory, int64(64 << 20)},
		{"MemorySwap", hc.MemorySwap, int64(64 << 20)},
		{"NanoCPUs", hc.NanoCPUs, int64(500_000_000)},
		{"NetworkMode", string(hc.NetworkMode), "none"},
		{"Init", hc.Init != nil && *hc.Init, true},
		{"ReadonlyRootfs", hc.ReadonlyRootfs, false},
		{"AutoRemove", hc.AutoRemove, false},
		{"RestartPolicy", string(hc.RestartPolicy.Name), "no"},
		{"ShmSize", hc.ShmSize, int64(64 << 20)},
		{"LogConfig.Type", hc.LogConfig.Type, "json-file"},
		{"LogConfig.max-size", hc.LogConfig.Config["max-size"], "10m"},
		{"LogConfig.max-file", hc.LogConfig.Config["max-file"], "1"},
		{"Hostname", cfg.Hostname, spec.Name},
		{"WorkingDir", cfg.WorkingDir, "/workspace"},
		{"Env has GREETING", slices.Contains(cfg.Env, "GREETING=hello"), true},
		{"label cluster", cfg.Labels[runtimes.LabelCluster], h.cluster},
		{"label sandbox", cfg.Labels[runtimes.LabelSandboxID], spec.Labels[runtimes.LabelSandboxID]},
		{"label managed-by", cfg.Labels[runtimes.LabelManagedBy], "true"},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// What the kernel enforces, seen from inside the sandbox.
	_, status := h.exec(t, id, "cat", "/proc/self/status")
	for _, c := range []struct{ field, want string }{
		{"NoNewPrivs", "1"},
		{"CapEff", wantCapMask},
		{"CapBnd", wantCapMask},
		{"CapAmb", "0000000000000000"},
	} {
		if got := statusField(status, c.field); got != c.want {
			t.Errorf("/proc/self/status %s = %q, want %q", c.field, got, c.want)
		}
	}
	if _, cmdline := h.exec(t, id, "cat", "/proc/1/cmdline"); !strings.Contains(cmdline, "init") {
		t.Errorf("PID 1 is %q, want the engine's init", cmdline)
	}
	if _, out := h.exec(t, id, "ls", "/sys/class/net"); strings.TrimSpace(out) != "lo" {
		t.Errorf("network interfaces = %q, want only lo", out)
	}
}

// statusField returns the value of one "Field:\tvalue" line of /proc/<pid>/status.
func statusField(status, field string) string {
	for line := range strings.SplitSeq(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestReadOnlyRoot(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{ReadOnlyRoot: true, TmpfsSizeMB: 16})
	id := h.mustStart(rt, h.spec())

	res, err := h.engine.ContainerInspect(h.ctx(), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("engine inspect: %v", err)
	}
	if !res.Container.HostConfig.ReadonlyRootfs {
		t.Errorf("ReadonlyRootfs = false, want true")
	}

	cases := []struct {
		name     string
		cmd      []string
		wantExit bool // true: must succeed
	}{
		{"rootfs is read-only", []string{"touch", "/rootfile"}, false},
		{"bin is read-only", []string{"touch", "/bin/x"}, false},
		{"tmp is writable", []string{"touch", "/tmp/x"}, true},
		{"workspace is writable", []string{"touch", "/workspace/x"}, true},
		{"scripts run from workspace", sh(`echo 'echo ran' > /workspace/s.sh && $(tool chmod) +x /workspace/s.sh && /workspace/s.sh`), true},
		{"tmpfs holds less than its size", sh(`$(tool dd) if=/dev/zero of=/tmp/small bs=1M count=8`), true},
		{"tmpfs size is capped", sh(`$(tool dd) if=/dev/zero of=/tmp/big bs=1M count=32`), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := h.exec(t, id, c.cmd...)
			if (code == 0) != c.wantExit {
				t.Errorf("%v: exit %d (%q), want success=%v", c.cmd, code, out, c.wantExit)
			}
		})
	}

	_, mounts := h.exec(t, id, "cat", "/proc/mounts")
	for _, dir := range []string{"/tmp", "/workspace"} {
		line := mountLine(mounts, dir)
		for _, opt := range []string{"tmpfs", "nosuid", "nodev", "size=16384k"} {
			if !strings.Contains(line, opt) {
				t.Errorf("mount %s = %q, want %s", dir, line, opt)
			}
		}
	}
	if root := mountLine(mounts, "/"); !strings.Contains(root, " ro,") {
		t.Errorf("root mount = %q, want ro", root)
	}
}

// sh wraps a script for exec. $(tool X) is X when the image has it, else the busybox applet, so the
// tests run on the minimal busybox image (few symlinks) as well as on a Debian one.
func sh(script string) []string {
	return []string{"sh", "-c", `tool() { command -v "$1" >/dev/null 2>&1 && echo "$1" || echo "busybox $1"; }; ` + script}
}

func mountLine(mounts, dir string) string {
	for line := range strings.SplitSeq(mounts, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return line
		}
	}
	return ""
}

func TestPauseResume(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{StopGrace: 5 * time.Second})
	id := h.mustStart(rt, h.spec())

	steps := []struct {
		name string
		op   func(context.Context, string) error
		want runtimes.State
	}{
		{"pause", rt.Pause, runtimes.StatePaused},
		{"pause again", rt.Pause, runtimes.StatePaused},
		{"resume", rt.Resume, runtimes.StateRunning},
		{"resume again", rt.Resume, runtimes.StateRunning},
		{"pause before stop", rt.Pause, runtimes.StatePaused},
	}
	for _, s := range steps {
		if err := s.op(h.ctx(), id); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		h.wantState(rt, id, s.want)
	}

	if err := rt.Stop(h.ctx(), id, 2*time.Second); err != nil {
		t.Fatalf("Stop of a paused container: %v", err)
	}
	h.wantState(rt, id, runtimes.StateExited)
	if err := rt.Pause(h.ctx(), id); !errors.Is(err, runtimes.ErrNotRunning) {
		t.Errorf("Pause of an exited container: %v, want ErrNotRunning", err)
	}
	if err := rt.Resume(h.ctx(), id); !errors.Is(err, runtimes.ErrNotRunning) {
		t.Errorf("Resume of an exited container: %v, want ErrNotRunning", err)
	}
}

// TestUnenforceableLimits: limits the engine would not enforce are refused before the engine sees
// them. A CPU under runtimes.MinCPU maps to a CFS quota of 0 (no limit: 1e-9 core burned whole
// cores) or under the kernel's 1 ms minimum (the start fails with runc's text).
func TestUnenforceableLimits(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	for _, c := range []struct {
		name string
		edit func(*runtimes.Spec)
	}{
		{"cpu 1e-9", func(s *runtimes.Spec) { s.CPU = 1e-9 }},
		{"cpu 1e-5", func(s *runtimes.Spec) { s.CPU = 1e-5 }},
		{"cpu 0.0099", func(s *runtimes.Spec) { s.CPU = 0.0099 }},
		{"memory 5 MiB", func(s *runtimes.Spec) { s.MemoryMB = 5 }},
		{"memory that overflows bytes", func(s *runtimes.Spec) { s.MemoryMB = 1 << 60 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := h.spec()
			c.edit(&spec)
			if id, err := rt.Create(h.ctx(), spec); err == nil || errors.Is(err, runtimes.ErrUnavailable) {
				t.Fatalf("Create = (%q, %v), want a refusal", id, err)
			}
			if got, err := rt.List(h.ctx(), map[string]string{runtimes.LabelSandboxID: spec.Labels[runtimes.LabelSandboxID]}); err != nil || len(got) != 0 {
				t.Errorf("List after a refused create = %v, %v; want nothing", got, err)
			}
		})
	}

	t.Run("the minimum is enforced as a real quota", func(t *testing.T) {
		spec := h.spec()
		spec.CPU = runtimes.MinCPU
		id := h.mustStart(rt, spec)
		res, err := h.engine.ContainerInspect(h.ctx(), id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Container.HostConfig.NanoCPUs; got != 10_000_000 {
			t.Errorf("NanoCPUs = %d, want 10000000 (a 1 ms quota per 100 ms period)", got)
		}
		h.wantState(rt, id, runtimes.StateRunning)
	})

	t.Run("more CPUs than the host has is ErrSpecRefused", func(t *testing.T) {
		spec := h.spec()
		spec.CPU = 4096
		if _, err := rt.Create(h.ctx(), spec); !errors.Is(err, runtimes.ErrSpecRefused) {
			t.Errorf("Create with 4096 CPUs: %v, want ErrSpecRefused", err)
		}
	})
}

func TestMissingContainer(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	const missing = "sbx-test-does-not-exist"

	cases := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"Inspect", func(ctx context.Context) error { _, err := rt.Inspect(ctx, missing); return err }},
		{"Start", func(ctx context.Context) error { return rt.Start(ctx, missing) }},
		{"Stop", func(ctx context.Context) error { return rt.Stop(ctx, missing, time.Second) }},
		{"Pause", func(ctx context.Context) error { return rt.Pause(ctx, missing) }},
		{"Resume", func(ctx context.Context) error { return rt.Resume(ctx, missing) }},
		{"Inspect empty id", func(ctx context.Context) error { _, err := rt.Inspect(ctx, ""); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.op(h.ctx()); !errors.Is(err, runtimes.ErrNotFound) {
				t.Errorf("%s of a missing container: %v, want ErrNotFound", c.name, err)
			}
		})
	}
	if err := rt.Remove(h.ctx(), missing); err != nil {
		t.Errorf("Remove of a missing container: %v, want nil", err)
	}
}

func TestMissingImage(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name  string
		pull  bool
		image string
	}{
		{"pull disabled", false, "insien/does-not-exist:v0"},
		// Nothing listens on port 1: the pull fails at once, and the image still cannot be had.
		{"pull fails", true, "127.0.0.1:1/insien/does-not-exist:v0"},
	}
	for _, c := range cases {
		rt := h.runtime(docker.Options{PullImages: c.pull})
		t.Run(c.name, func(t *testing.T) {
			spec := h.spec()
			spec.Image = c.image
			id, err := rt.Create(h.ctx(), spec)
			if !errors.Is(err, runtimes.ErrImageNotFound) {
				t.Fatalf("Create with image %s = (%q, %v), want ErrImageNotFound", c.image, id, err)
			}
			if !strings.Contains(err.Error(), c.image) {
				t.Errorf("error %q does not name the image %q", err, c.image)
			}
			if got, err := rt.List(h.ctx(), map[string]string{runtimes.LabelSandboxID: spec.Labels[runtimes.LabelSandboxID]}); err != nil || len(got) != 0 {
				t.Errorf("List after failed create = %v, %v; want nothing", got, err)
			}
		})
	}
}

func TestList(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})

	running := h.spec()
	created := h.spec()
	runningID := h.mustStart(rt, running)
	createdID := h.mustCreate(rt, created)

	// Another cluster on the same engine must stay invisible.
	other := newHarness(t)
	other.mustCreate(rt, other.spec())

	cases := []struct {
		name   string
		labels map[string]string
		want   map[string]runtimes.State
	}{
		{"cluster", map[string]string{runtimes.LabelCluster: h.cluster},
			map[string]runtimes.State{runningID: runtimes.StateRunning, createdID: runtimes.StateCreated}},
		{"cluster and sandbox", map[string]string{runtimes.LabelCluster: h.cluster, runtimes.LabelSandboxID: created.Labels[runtimes.LabelSandboxID]},
			map[string]runtimes.State{createdID: runtimes.StateCreated}},
		{"all labels must match", map[string]string{runtimes.LabelCluster: other.cluster, runtimes.LabelSandboxID: created.Labels[runtimes.LabelSandboxID]},
			map[string]runtimes.State{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			infos, err := rt.List(h.ctx(), c.labels)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			got := map[string]runtimes.State{}
			for _, in := range infos {
				got[in.ID] = in.State
				if in.Name == "" || in.Labels[runtimes.LabelManagedBy] != "true" {
					t.Errorf("List item %+v lacks a name or the managed-by label", in)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("List(%v) = %v, want %v", c.labels, got, c.want)
			}
		})
	}
}

func TestCreateSameName(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	spec := h.spec()
	id := h.mustCreate(rt, spec)

	again, err := rt.Create(h.ctx(), spec)
	if err != nil || again != id {
		t.Fatalf("retried Create = (%q, %v), want (%q, nil)", again, err, id)
	}

	intruder := h.spec()
	intruder.Name = spec.Name
	if got, err := rt.Create(h.ctx(), intruder); err == nil {
		t.Fatalf("Create of another sandbox under a taken name = %q, want an error", got)
	}
}

func TestEnvValuesAreNotLogged(t *testing.T) {
	h := newHarness(t)
	core, logs := observer.New(zapcore.DebugLevel)
	rt := h.runtimeWithLog(docker.Options{}, zap.New(core))
	const secret = "s3cr3t-value-that-must-not-leak"
	spec := h.spec()
	spec.Env = map[string]string{"API_TOKEN": secret}
	h.mustStart(rt, spec)
	h.mustCreate(rt, spec) // the retried-create path logs too

	if logs.Len() == 0 {
		t.Fatal("no log entries captured: the test would not see a leak")
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), secret) {
			t.Errorf("log entry leaks an env value: %s %v", e.Message, e.ContextMap())
		}
	}
}

func TestUnavailable(t *testing.T) {
	rt, err := docker.New(docker.Options{Host: "unix:///nonexistent/docker.sock"}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := rt.Ping(ctx); !errors.Is(err, runtimes.ErrUnavailable) {
		t.Errorf("Ping: %v, want ErrUnavailable", err)
	}
	if _, err := rt.Inspect(ctx, "x"); !errors.Is(err, runtimes.ErrUnavailable) {
		t.Errorf("Inspect: %v, want ErrUnavailable", err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
