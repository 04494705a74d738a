package runtimes

import (
	"context"
	"errors"
	"net"
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
}
