package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
)

// listTimeout bounds reading a Pod's socket tables.
const listTimeout = 10 * time.Second

// ListeningPorts reads the Pod's socket tables from inside it (its /proc/net, which is the Pod's
// network namespace): see runtimes.Ports. A container without cat (an image without a shell's
// tools) lists none.
func (r *Runtime) ListeningPorts(ctx context.Context, id string) ([]int, error) {
	var tables bytes.Buffer
	res, err := r.Exec(ctx, id, runtimes.ExecSpec{Cmd: []string{"cat", "/proc/net/tcp", "/proc/net/tcp6"}}, &tables, io.Discard, listTimeout, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: list ports in %s: %w", id, err)
	}
	if res.TimedOut {
		return nil, fmt.Errorf("kubernetes: list ports in %s: no answer within %s", id, listTimeout)
	}
	return runtimes.ListeningTCPPorts(tables.Bytes()), nil
}
