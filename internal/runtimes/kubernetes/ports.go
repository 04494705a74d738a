package kubernetes

import (
	"context"
	"fmt"
	"net"

	"github.com/insien/orchestrator/internal/runtimes"
)

// DialPort is not offered by this driver yet: see runtimes.Ports.
func (r *Runtime) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	return nil, fmt.Errorf("kubernetes: dial port %d in %s: %w", port, id, runtimes.ErrNotSupported)
}
