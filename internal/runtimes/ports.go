package runtimes

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ErrPortNotListening: nothing inside the workload accepts connections on that port (the dial
// was refused), as opposed to the workload being unreachable or not running.
var ErrPortNotListening = errors.New("runtime: nothing listens on that port")

// Ports reaches TCP ports inside a workload without giving it any network: the orchestrator
// reaches in, the sandbox gains no route out.
type Ports interface {
	// DialPort opens a TCP connection to port on the workload's own loopback (what an app listening
	// on 127.0.0.1 or on every address accepts). A workload that is not running is a
	// *NotRunningError, a missing one ErrNotFound, a refused dial ErrPortNotListening.
	DialPort(ctx context.Context, id string, port int) (net.Conn, error)
	// ListeningPorts returns the TCP ports something listens on inside the running workload id,
	// sorted; a workload that is not running is a *NotRunningError.
	ListeningPorts(ctx context.Context, id string) ([]int, error)
}

// ListeningTCPPorts reads the TCP ports something listens on from the kernel's socket tables
// (the content of /proc/net/tcp and /proc/net/tcp6 of a network namespace), sorted, each once.
func ListeningTCPPorts(tables ...[]byte) []int {
	seen := map[int]bool{}
	for _, table := range tables {
		for line := range strings.Lines(string(table)) {
			// sl local_address rem_address st ...; local_address is ADDR:PORT in hex, st 0A is LISTEN.
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" {
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if ok && err == nil && port > 0 {
				seen[int(port)] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// NetworkNamespaces is implemented by drivers whose workloads' network namespaces this process
// can enter (Docker on the same host), which is how a sandbox's egress policy is enforced.
type NetworkNamespaces interface {
	// NetNS opens the network namespace of the running workload id. The open file keeps the
	// namespace (not the workload) alive until it is closed.
	NetNS(ctx context.Context, id string) (*os.File, error)
}

// EgressRules is what a workload may reach, by address alone: each Allow prefix minus the Except
// prefixes inside it.
type EgressRules struct {
	Allow  []netip.Prefix
	Except []netip.Prefix
}

// EgressPolicies is implemented by drivers that enforce egress by address in the platform's own
// network (Kubernetes NetworkPolicies, which the cluster's network plugin enforces).
type EgressPolicies interface {
	// SetEgress lets the workload id reach what rules allow, on top of its isolation; nil takes
	// that away again.
	SetEgress(ctx context.Context, id string, rules *EgressRules) error
}
