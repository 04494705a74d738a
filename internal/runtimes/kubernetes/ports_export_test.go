package kubernetes

import (
	"context"
	"net"
)

// DialPortOverSPDY is DialPort over plain SPDY, the fallback for an API server (or a proxy in
// front of it) that does not upgrade the request to a WebSocket.
func (r *Runtime) DialPortOverSPDY(ctx context.Context, id string, port int) (net.Conn, error) {
	return r.dialPort(ctx, id, port, false)
}
