package docker_test

import (
	"bytes"
	"context"
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

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
	"github.com/insien/orchestrator/internal/runtimes/runtimetest"
)

// These tests drive a real Docker engine. `go tool task test` starts one and sets the variables.
// What every driver must do is runtimetest's suite (TestSuite); what follows is what only the
// Docker driver does, checked as the engine reports it.

const defaultTestImage = "insien/sandbox:busybox"

// wantCaps is the documented capability set (runtimes.SandboxCapabilities), as the engine reports it.
var wantCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"}

// wantCapMask is wantCaps as the kernel's bitmask (bits 0,1,3,4,5,6,7), read from /proc/self/status.
const wantCapMask = "00000000000000fb"

// TestSuite runs the driver-neutral suite against the Docker driver.
func TestSuite(t *testing.T) {
	runtimetest.Run(t, newHarness(t).suite())
}

// harness is the test engine: its address, the sandbox image and a client of its own.
type harness struct {
	host   string
	image  string
	engine *client.Client
}

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
	t.Cleanup(func() { engine.Close() })
	return &harness{host: host, image: image, engine: engine}
}

// suite plugs the Docker driver into runtimetest.
func (h *harness) suite() runtimetest.Harness {
	return runtimetest.Harness{
		New: func(t *testing.T, o runtimetest.Options) runtimetest.Driver {
			// The Docker driver reads a sandbox's cluster from its Spec's labels: o.Cluster is not needed.
			return h.runtime(t, docker.Options{StopGrace: o.StopGrace, ReadOnlyRoot: o.ReadOnlyRoot, TmpfsSizeMB: o.TmpfsSizeMB}, o.Log)
		},
		Image: h.image,
		Run:   h.exec,
	}
}

// env is a runtimetest.Env on this engine, for the Docker-only tests.
func (h *harness) env(t *testing.T) *runtimetest.Env { return runtimetest.NewEnv(t, h.suite()) }

// runtime builds a driver for the test engine (log nil: none), closed at the test's end.
func (h *harness) runtime(t *testing.T, opts docker.Options, log *zap.Logger) *docker.Runtime {
	t.Helper()
	if log == nil {
		log = zap.NewNop()
	}
	opts.Host = h.host
	rt, err := docker.New(opts, log)
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := rt.Ping(ctx); err != nil {
		t.Fatalf("Ping %s: %v", h.host, err)
	}
	return rt
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

func TestHardening(t *testing.T) {
	h := newHarness(t)
	e := h.env(t)
	rt := h.runtime(t, docker.Options{}, nil)
	spec := e.Spec()
	spec.Env = map[string]string{"GREETING": "hello"}
	id := e.MustStart(rt, spec)

	res, err := h.engine.ContainerInspect(e.Ctx(), id, client.ContainerInspectOptions{})
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
		{"label cluster", cfg.Labels[runtimes.LabelCluster], e.Cluster},
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
	e := h.env(t)
	rt := h.runtime(t, docker.Options{ReadOnlyRoot: true, TmpfsSizeMB: 16}, nil)
	id := e.MustStart(rt, e.Spec())

	res, err := h.engine.ContainerInspect(e.Ctx(), id, client.ContainerInspectOptions{})
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
		{"scripts run from workspace", runtimetest.Script(`echo 'echo ran' > /workspace/s.sh && $(tool chmod) +x /workspace/s.sh && /workspace/s.sh`), true},
		{"tmpfs holds less than its size", runtimetest.Script(`$(tool dd) if=/dev/zero of=/tmp/small bs=1M count=8`), true},
		{"tmpfs size is capped", runtimetest.Script(`$(tool dd) if=/dev/zero of=/tmp/big bs=1M count=32`), false},
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

func mountLine(mounts, dir string) string {
	for line := range strings.SplitSeq(mounts, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return line
		}
	}
	return ""
}

// TestCPULimits: what the engine makes of the CPU limits the suite only sees from outside (see
// runtimetest's UnenforceableLimits): the minimum becomes a real CFS quota, and more CPUs than the
// host has is the engine's refusal, told apart.
func TestCPULimits(t *testing.T) {
	h := newHarness(t)
	e := h.env(t)
	rt := h.runtime(t, docker.Options{}, nil)
	t.Run("the minimum is enforced as a real quota", func(t *testing.T) {
		spec := e.Spec()
		spec.CPU = runtimes.MinCPU
		id := e.MustStart(rt, spec)
		res, err := h.engine.ContainerInspect(e.Ctx(), id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Container.HostConfig.NanoCPUs; got != 10_000_000 {
			t.Errorf("NanoCPUs = %d, want 10000000 (a 1 ms quota per 100 ms period)", got)
		}
		e.WantState(rt, id, runtimes.StateRunning)
	})

	t.Run("more CPUs than the host has is ErrSpecRefused", func(t *testing.T) {
		spec := e.Spec()
		spec.CPU = 4096
		if _, err := rt.Create(e.Ctx(), spec); !errors.Is(err, runtimes.ErrSpecRefused) {
			t.Errorf("Create with 4096 CPUs: %v, want ErrSpecRefused", err)
		}
	})
}

// TestVolumeMounts: the driver binds host directories and keeps no volumes of its own
// (runtimes.VolumeStore), so a Mount naming a driver volume is refused before anything is made.
func TestVolumeMounts(t *testing.T) {
	h := newHarness(t)
	e := h.env(t)
	rt := h.runtime(t, docker.Options{}, nil)
	if _, ok := any(rt).(runtimes.VolumeStore); ok {
		t.Fatal("the Docker driver claims to keep volumes")
	}
	spec := e.Spec()
	spec.Mounts = []runtimes.Mount{{Volume: "vol-1", Target: "/data"}}
	if _, err := rt.Create(e.Ctx(), spec); !errors.Is(err, runtimes.ErrNotSupported) {
		t.Errorf("Create with a driver volume: %v, want ErrNotSupported", err)
	}
	if got, err := rt.List(e.Ctx(), map[string]string{runtimes.LabelSandboxID: spec.Labels[runtimes.LabelSandboxID]}); err != nil || len(got) != 0 {
		t.Errorf("List after the refused create = %v, %v; want nothing", got, err)
	}
}

func TestMissingImage(t *testing.T) {
	h := newHarness(t)
	e := h.env(t)
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
		rt := h.runtime(t, docker.Options{PullImages: c.pull}, nil)
		t.Run(c.name, func(t *testing.T) {
			spec := e.Spec()
			spec.Image = c.image
			id, err := rt.Create(e.Ctx(), spec)
			if !errors.Is(err, runtimes.ErrImageNotFound) {
				t.Fatalf("Create with image %s = (%q, %v), want ErrImageNotFound", c.image, id, err)
			}
			if !strings.Contains(err.Error(), c.image) {
				t.Errorf("error %q does not name the image %q", err, c.image)
			}
			if got, err := rt.List(e.Ctx(), map[string]string{runtimes.LabelSandboxID: spec.Labels[runtimes.LabelSandboxID]}); err != nil || len(got) != 0 {
				t.Errorf("List after failed create = %v, %v; want nothing", got, err)
			}
		})
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
