package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/testenv"
)

// TestAbuseLeavesNoResidue runs a battery of abusive requests against the real binary (built
// without the race detector, whose shadow memory would hide what the service itself holds) and
// then checks that nothing outlives them: no process the orchestrator started is left in the
// sandbox, the service's RSS comes back to within 20 MB of where it was, and neither the
// sandbox's containerd shim (which relays its streams) nor dockerd keeps burning CPU.
func TestAbuseLeavesNoResidue(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "orchestrator")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cluster := fmt.Sprintf("residue-%d", time.Now().UnixNano())
	testenv.RemoveCluster(t, cluster)
	port := testenv.FreePort(t)
	env := map[string]string{
		"DATABASE_URL":                   testenv.DatabaseURL(t),
		"REDIS_URL":                      testenv.RedisURL(t),
		"PORT":                           fmt.Sprint(port),
		"DOCKER_HOST":                    testenv.Require(t, testenv.EnvDockerHost),
		"JWT_SECRET":                     "residue-test-secret",
		"ORCH_RUNTIME_CLUSTER":           cluster,
		"ORCH_HTTP_DRAIN_DELAY":          "0s",
		"ORCH_LOG_LEVEL":                 "warn",
		"ORCH_SANDBOX_WARM_POOL_ENABLED": "false", // no workloads but the test's own
	}
	run := func(args ...string) string {
		cmd := command(t, env, args...)
		cmd.Path = bin
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	run("migrate", "up")
	key := run("keys", "create", "--email", "residue@example.com", "--name", "residue")

	serve := command(t, env, "serve")
	serve.Path = bin
	var logs bytes.Buffer // one writer for both: exec.Cmd then writes from one goroutine at a time
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = serve.Process.Signal(os.Interrupt)
		_ = serve.Wait()
		if t.Failed() {
			t.Logf("service log:\n%s", logs.String())
		}
	})
	api := &apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), key: key}
	testenv.Eventually(t, "ready", 30*time.Second, func() bool { return api.status("GET", "/ready", "") == http.StatusOK })

	var sb struct{ ID string }
	api.json("POST", "/api/sandboxes", `{"memory_mb":64}`, http.StatusCreated, &sb)
	docker := testenv.Docker(t)
	container := "sbx-" + sb.ID
	idle := processes(t, container)

	battery := func() {
		api.expect("POST", "/api/sandboxes", `{"cpu":1e-9}`, http.StatusBadRequest)
		for _, p := range []string{"/dev/zero", "/dev/urandom"} {
			api.expect("GET", "/api/sandboxes/"+sb.ID+"/files?path="+p, "", http.StatusBadRequest, http.StatusConflict)
		}
		api.expect("GET", "/api/sandboxes/"+sb.ID+"/files?path=/proc/self/status", "", http.StatusOK)
		api.expect("PUT", "/api/sandboxes/"+sb.ID+"/files?path=/proc/nope", "x", http.StatusBadRequest, http.StatusForbidden, http.StatusConflict, http.StatusNotFound)
		api.expect("POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["pwd"],"cwd":"/no/such/dir"}`, http.StatusBadRequest)
		var wg sync.WaitGroup
		for range 4 { // output far past sandbox.exec_output_limit, four at once
			wg.Go(func() {
				api.expect("POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["yes"],"timeout_seconds":3}`, http.StatusOK)
			})
		}
		wg.Go(func() { api.abandon("/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["sleep","300"]}`, "application/json") })
		wg.Go(func() { api.abandon("/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["yes"]}`, "text/event-stream") })
		wg.Wait()
	}
	battery() // warm up: first-use allocations are not residue
	rssBefore := rssOf(t, serve.Process.Pid)
	for range 3 {
		battery()
	}

	testenv.Eventually(t, "the sandbox to hold only its own processes", 20*time.Second, func() bool {
		return slices.Equal(processes(t, container), idle)
	})
	var rssAfter int64
	testenv.Eventually(t, "the service's RSS to come back within 20 MB", 150*time.Second, func() bool {
		rssAfter = rssOf(t, serve.Process.Pid)
		return rssAfter <= rssBefore+20<<20
	})
	t.Logf("service RSS: %d MiB before the battery, %d MiB after", rssBefore>>20, rssAfter>>20)

	inspect, err := docker.ContainerInspect(context.Background(), container, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	shim := shimOf(t, inspect.Container.ID)
	// The shim serves this sandbox only: it must be idle. dockerd serves every test running
	// beside this one, so it gets a looser bound and several tries (a leak kept it near a core).
	testenv.Eventually(t, "the sandbox's shim to be idle", 20*time.Second, func() bool { return cpuShare(t, shim, 2*time.Second) < 0.05 })
	dockerd := dockerdPid(t)
	testenv.Eventually(t, "dockerd to fall back to idle", 30*time.Second, func() bool { return cpuShare(t, dockerd, 2*time.Second) < 0.25 })
}

// apiClient sends authenticated requests to the binary under test.
type apiClient struct {
	t    *testing.T
	base string
	key  string
}

func (a *apiClient) do(method, path, body string, timeout time.Duration) (*http.Response, error) {
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("X-API-Key", a.key)
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	return (&http.Client{Timeout: timeout}).Do(req)
}

func (a *apiClient) status(method, path, body string) int {
	resp, err := a.do(method, path, body, 30*time.Second)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// expect sends a request and fails the test unless one of the statuses comes back.
func (a *apiClient) expect(method, path, body string, statuses ...int) {
	resp, err := a.do(method, path, body, 60*time.Second)
	if err != nil {
		a.t.Errorf("%s %s: %v", method, path, err)
		return
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if !slices.Contains(statuses, resp.StatusCode) {
		a.t.Errorf("%s %s %s = %d, want one of %v: %s", method, path, body, resp.StatusCode, statuses, got)
	}
}

func (a *apiClient) json(method, path, body string, status int, into any) {
	resp, err := a.do(method, path, body, 60*time.Second)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		a.t.Fatalf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, status, got)
	}
	if err := json.Unmarshal(got, into); err != nil {
		a.t.Fatal(err)
	}
}

// abandon starts an exec and hangs up on it after the first bytes (or a second), as a client
// that crashes would.
func (a *apiClient) abandon(path, body, accept string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", a.base+path, strings.NewReader(body))
	req.Header.Set("X-API-Key", a.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	_, _ = resp.Body.Read(make([]byte, 512))
	resp.Body.Close()
}

// processes lists the commands running in a container, sorted (pids differ between samples).
func processes(t *testing.T, container string) []string {
	t.Helper()
	return slices.Sorted(maps.Values(testenv.Processes(t, container)))
}

// rssOf reads a process's resident set size in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// cpuTicks is a process's user plus system CPU time in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime
}

// cpuShare is the share of one core a process used over the window.
func cpuShare(t *testing.T, pid int, window time.Duration) float64 {
	t.Helper()
	const ticksPerSecond = 100 // USER_HZ on Linux
	before := cpuTicks(t, pid)
	time.Sleep(window)
	return float64(cpuTicks(t, pid)-before) / ticksPerSecond / window.Seconds()
}

// shimOf finds the containerd shim that runs a container (its command line names the id).
func shimOf(t *testing.T, containerID string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		if strings.Contains(args[0], "containerd-shim") && slices.Contains(args, containerID) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			return pid
		}
	}
	t.Fatalf("no containerd shim for %s", containerID)
	return 0
}

// dockerdPid reads the pidfile scripts/stack.sh keeps beside the test engine's socket.
func dockerdPid(t *testing.T) int {
	t.Helper()
	sock := strings.TrimPrefix(testenv.Require(t, testenv.EnvDockerHost), "unix://")
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(sock), "docker", "dockerd.pid"))
	if err != nil {
		t.Fatalf("dockerd pidfile (scripts/stack.sh layout): %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
