package handlers_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// TestConnectionLimit: a sandbox holds at most sandbox.max_connections live execs, terminals and
// log streams; one more gets 429 too_many_connections, and a slot frees when one ends.
func TestConnectionLimit(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Sandbox.MaxConnections = 2 })
	u := newSandboxUser(t, id, "user_conn_limit")
	sb := u.create(t, `{}`)
	ctx := t.Context()
	var terms []*websocket.Conn
	for range 2 {
		conn, _, err := u.terminal(t, ctx, sb.ID, "?"+url.Values{"cmd": {"sh", "-c", "echo up; sleep 300"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		readUntil(t, ctx, conn, "up")
		terms = append(terms, conn)
	}
	resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["true"]}`)
	if resp.Status != http.StatusTooManyRequests || errorCode(t, resp) != "too_many_connections" {
		t.Fatalf("third connection: %d %s", resp.Status, resp.Body)
	}
	if _, resp, err := u.terminal(t, ctx, sb.ID, ""); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third terminal: %v %v", err, resp)
	}
	terms[0].Close(websocket.StatusNormalClosure, "done")
	eventually(t, "a slot to free", 5*time.Second, func() bool {
		return u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["true"]}`).Status == http.StatusOK
	})
}
