package testenv

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// Service is the orchestrator as its clients (the SDKs, the CLI) meet it: the whole service on a
// loopback port, Clerk stood in for by a stub, and one signed-in user holding an API key.
type Service struct {
	*App
	Config *config.Config
	Clerk  *clerkstub.Server
	// APIKey is the user's key, with both scopes.
	APIKey string
	// UserID is the user's Clerk id: Session signs tokens for it.
	UserID string
}

// StartService starts the service for a client's tests; mutate (may be nil) changes the
// configuration first. The user and key are made through the API, with a Clerk session token.
func StartService(t testing.TB, mutate func(*config.Config)) *Service {
	t.Helper()
	stub := clerkstub.New(t)
	cfg := Config(t)
	cfg.Clerk.SecretKey = config.Secret(stub.SecretKey())
	cfg.Clerk.APIURL = stub.URL()
	if mutate != nil {
		mutate(cfg)
	}
	Migrate(t, cfg)
	s := &Service{App: StartApp(t, cfg), Config: cfg, Clerk: stub, UserID: "user_client_" + randomHex(4)}
	stub.SetUser(clerkstub.User{ID: s.UserID, Email: s.UserID + "@example.com", FirstName: "Ada", LastName: "Lovelace", Username: s.UserID})
	resp := s.Do(t, "POST", "/api/keys", `{"name":"client tests"}`, map[string]string{"Authorization": "Bearer " + s.Session(t)})
	if resp.Status != http.StatusCreated {
		t.Fatalf("POST /api/keys = %d %s", resp.Status, resp.Body)
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &key); err != nil || key.Key == "" {
		t.Fatalf("POST /api/keys answered %s (%v)", resp.Body, err)
	}
	s.APIKey = key.Key
	return s
}

// Session is a Clerk session token for the service's user (what a signed-in browser holds). It
// lives half an hour, not Clerk's minute: a client's test run holds one token throughout, where a
// browser would have Clerk's script refresh it.
func (s *Service) Session(t testing.TB) string {
	t.Helper()
	return s.Clerk.Token(t, clerkstub.TokenOptions{Subject: s.UserID, SessionID: "sess_" + s.UserID, ExpiresIn: 30 * time.Minute})
}

// ClientEnv is the environment the clients read their endpoint and credentials from.
func (s *Service) ClientEnv() []string {
	return []string{"INSIEN_API_URL=" + s.URL, "INSIEN_API_KEY=" + s.APIKey}
}
