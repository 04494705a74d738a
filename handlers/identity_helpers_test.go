package handlers_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	svix "github.com/svix/svix-webhooks/go"
	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/sandbox/lifecycle"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// identity is a running service wired to a Clerk stand-in.
type identity struct {
	*testenv.App
	cfg     *config.Config
	clerk   *clerkstub.Server
	secret  string // webhook signing secret
	queries *atomic.Int64
	service *lifecycle.Service
}

// reaped is how many sandboxes this replica expired.
func (id *identity) reaped() int64 { return id.service.Reaped() }

// probeRoutes adds routes that accept API keys, standing in for the sandbox routes that use the
// same middleware: one needs the read scope, one the write scope.
func probeRoutes() fx.Option {
	return fx.Invoke(func(e *gin.Engine, a *auth.Authenticator) {
		g := e.Group("/test/keyed", a.Require(auth.KindSession, auth.KindAPIKey))
		handler := func(c *gin.Context) {
			p := auth.From(c)
			c.JSON(http.StatusOK, gin.H{"kind": p.Kind, "user_id": p.UserID})
		}
		g.GET("", auth.RequireScope(apikeys.ScopeSandboxesRead), handler)
		g.POST("", auth.RequireScope(apikeys.ScopeSandboxesWrite), handler)
	})
}

// countQueries counts every SQL statement the service runs.
type countQueries struct{ n *atomic.Int64 }

func (h countQueries) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	h.n.Add(1)
	return ctx
}
func (countQueries) AfterQuery(context.Context, *bun.QueryEvent) {}

// startIdentity starts the service against the stub in JWKS mode (CLERK_SECRET_KEY) unless
// mutate changes it; extra options reach into the graph (hooks on the clients, say).
func startIdentity(t testing.TB, mutate func(*config.Config, *clerkstub.Server), extra ...fx.Option) *identity {
	t.Helper()
	stub := clerkstub.New(t)
	cfg := testenv.Config(t)
	cfg.Clerk.SecretKey = config.Secret(stub.SecretKey())
	cfg.Clerk.APIURL = stub.URL()
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	cfg.Clerk.WebhookSecret = config.Secret(secret)
	if mutate != nil {
		mutate(cfg, stub)
	}
	testenv.Migrate(t, cfg)
	return startIdentityWith(t, cfg, stub, secret, extra...)
}

// startIdentityWith starts another instance with the same configuration (a second replica).
func startIdentityWith(t testing.TB, cfg *config.Config, stub *clerkstub.Server, secret string, extra ...fx.Option) *identity {
	t.Helper()
	queries := new(atomic.Int64)
	var service *lifecycle.Service
	app := testenv.StartApp(t, cfg, append([]fx.Option{probeRoutes(), fx.Populate(&service), fx.Invoke(func(db *bun.DB) {
		db.AddQueryHook(countQueries{n: queries})
	})}, extra...)...)
	return &identity{App: app, cfg: cfg, clerk: stub, secret: secret, queries: queries, service: service}
}

// session returns a valid session token for a Clerk user, registering the user with the stub.
func (id *identity) session(t testing.TB, clerkUserID string) string {
	t.Helper()
	if id.clerk.UserJSON(clerkUserID) == nil {
		id.clerk.SetUser(clerkstub.User{ID: clerkUserID, Email: clerkUserID + "@example.com", FirstName: "Ada", LastName: "Lovelace", Username: clerkUserID})
	}
	return id.clerk.Token(t, clerkstub.TokenOptions{Subject: clerkUserID, SessionID: "sess_" + clerkUserID})
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

type createdKey struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Key       string     `json:"key"`
	Prefix    string     `json:"prefix"`
	LastFour  string     `json:"last_four"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

func (id *identity) createKey(t testing.TB, token, body string) createdKey {
	t.Helper()
	resp := id.Do(t, "POST", "/api/keys", body, bearer(token))
	if resp.Status != http.StatusCreated {
		t.Fatalf("POST /api/keys %s = %d %s", body, resp.Status, resp.Body)
	}
	var k createdKey
	mustJSON(t, resp.Body, &k)
	return k
}

func mustJSON(t testing.TB, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
}

// errorCode asserts the one error shape and returns its code.
func errorCode(t testing.TB, resp testenv.Response) string {
	t.Helper()
	var b apierror.Body
	if err := json.Unmarshal([]byte(resp.Body), &b); err != nil || b.Error.Code == "" || b.Error.Message == "" || b.Error.RequestID == "" {
		t.Fatalf("not the error shape (%d): %s", resp.Status, resp.Body)
	}
	return b.Error.Code
}

// webhook sends a svix-signed delivery; skew moves its timestamp, tamper changes the body after
// signing.
func (id *identity) webhook(t *testing.T, msgID string, event any, skew time.Duration, tamper bool) testenv.Response {
	t.Helper()
	payload, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := svix.NewWebhook(id.secret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(skew)
	sig, err := wh.Sign(msgID, ts, payload)
	if err != nil {
		t.Fatal(err)
	}
	if tamper {
		payload = append(payload[:len(payload)-1], []byte(`,"x":1}`)...)
	}
	return id.Do(t, "POST", "/api/webhooks/clerk", string(payload), map[string]string{
		"svix-id": msgID, "svix-timestamp": fmt.Sprint(ts.Unix()), "svix-signature": sig,
	})
}
