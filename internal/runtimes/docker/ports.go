package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/platform/netns"
	"github.com/insien/orchestrator/internal/runtimes"
)

// DialPort connects to port on the container's loopback from inside its network namespace, which
// every container has, even one with no network at all: see runtimes.Ports. It needs the
// privilege to enter another process's namespace (root, or CAP_SYS_ADMIN and CAP_SYS_PTRACE),
// which an orchestrator on the engine's host has.
func (r *Runtime) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	pid, err := r.runningPid(ctx, "dial port", id)
	if err != nil {
		return nil, err
	}
	conn, err := dialInNetns(ctx, fmt.Sprintf("/proc/%d/ns/net", pid), port)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("docker: dial port %d in %s: %w", port, shortID(id), runtimes.ErrPortNotListening)
	}
	if err != nil {
		return nil, fmt.Errorf("docker: dial port %d in %s: %w", port, shortID(id), err)
	}
	return conn, nil
}

// ListeningPorts reads the socket tables of the container's network namespace through its main
// process (/proc/PID/net): see runtimes.Ports.
func (r *Runtime) ListeningPorts(ctx context.Context, id string) ([]int, error) {
	pid, err := r.runningPid(ctx, "list ports", id)
	if err != nil {
		return nil, err
	}
	var tables [][]byte
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil && !errors.Is(err, os.ErrNotExist) { // tcp6 is absent without IPv6
			return nil, fmt.Errorf("docker: list ports in %s: %w", shortID(id), err)
		}
		tables = append(tables, data)
	}
	return runtimes.ListeningTCPPorts(tables...), nil
}

// runningPid is the host pid of a running container's main process.
func (r *Runtime) runningPid(ctx context.Context, op, id string) (int, error) {
	return r.pidIn(ctx, op, id, runtimes.StateRunning)
}

// pidIn is the host pid of the main process of a container in one of states.
func (r *Runtime) pidIn(ctx context.Context, op, id string, states ...runtimes.State) (int, error) {
	ctr, err := r.inspectIn(ctx, op, id, states...)
	if err != nil {
		return 0, err
	}
	if ctr.State.Pid == 0 { // running by its status, yet no process: nothing to enter
		return 0, &runtimes.NotRunningError{State: runtimes.StateRunning}
	}
	return ctr.State.Pid, nil
}

// inspectRunning inspects a container that must be running: a *NotRunningError saying how it
// ended (or that it is paused) when it is not.
func (r *Runtime) inspectRunning(ctx context.Context, op, id string) (container.InspectResponse, error) {
	return r.inspectIn(ctx, op, id, runtimes.StateRunning)
}

// inspectIn inspects a container that must be in one of states: a *NotRunningError saying where
// it is when it is not.
func (r *Runtime) inspectIn(ctx context.Context, op, id string, states ...runtimes.State) (container.InspectResponse, error) {
	if id == "" {
		return container.InspectResponse{}, emptyID(op)
	}
	res, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return container.InspectResponse{}, mapErr(op+": inspect", id, err)
	}
	ctr := res.Container
	if ctr.State == nil || ctr.HostConfig == nil {
		return container.InspectResponse{}, fmt.Errorf("docker: %s %s: the engine reported no state", op, shortID(id))
	}
	if state := mapState(ctr.State.Status); !slices.Contains(states, state) {
		return container.InspectResponse{}, &runtimes.NotRunningError{State: state, ExitCode: ctr.State.ExitCode,
			OOMKilled: killedByOOM(ctr.State.OOMKilled, ctr.State.ExitCode)}
	}
	return ctr, nil
}

// dialInNetns dials 127.0.0.1:port with a socket made inside the network namespace at nsPath.
func dialInNetns(ctx context.Context, nsPath string, port int) (conn net.Conn, err error) {
	err = netns.DoPath(nsPath, func() error {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		return err
	})
	return conn, err
}

// NetNS opens the network namespace of a running or paused container, for the egress policy:
// see runtimes.NetworkNamespaces. A frozen container keeps its namespace, and its policy may
// change meanwhile. The open file keeps the namespace, not the container, alive.
func (r *Runtime) NetNS(ctx context.Context, id string) (*os.File, error) {
	pid, err := r.pidIn(ctx, "open network namespace", id, runtimes.StateRunning, runtimes.StatePaused)
	if err != nil {
		return nil, err
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, fmt.Errorf("docker: open the network namespace of %s: %w", shortID(id), err)
	}
	return ns, nil
}
