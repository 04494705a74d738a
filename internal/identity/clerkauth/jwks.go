package clerkauth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
)

// defaultMinRefresh is the least time between two JWKS fetches, so tokens naming made-up key IDs
// cannot turn into a stream of requests to Clerk.
const defaultMinRefresh = 5 * time.Second

// keySet caches Clerk's JWKS by kid. It is fetched on first use and again when a token names an
// unknown kid (key rotation), at most once per minRefresh; concurrent refreshes share one fetch.
// It is our own cache, not the SDK middleware's package-level one, so instances never share keys.
type keySet struct {
	client     *jwks.Client
	timeout    time.Duration
	minRefresh time.Duration
	log        *zap.Logger

	mu        sync.Mutex
	keys      map[string]*clerk.JSONWebKey
	fetchedAt time.Time // last attempt, successful or not
	lastErr   error     // error of the last attempt
	inflight  chan struct{}
}

func newKeySet(cfg config.Clerk, log *zap.Logger) *keySet {
	c := httpClient(cfg)
	return &keySet{
		client:     jwks.NewClient(backendConfig(cfg)),
		timeout:    c.Timeout,
		minRefresh: defaultMinRefresh,
		log:        log,
	}
}

// get returns the key for kid, refreshing the set when kid is unknown and the last fetch is
// older than minRefresh. The fetch runs on its own goroutine: every caller, including the one
// that started it, waits for it only as long as its own context allows.
func (s *keySet) get(ctx context.Context, kid string) (*clerk.JSONWebKey, *apierror.Error) {
	waited := false
	for {
		s.mu.Lock()
		if key, ok := s.keys[kid]; ok {
			s.mu.Unlock()
			return key, nil
		}
		wait := s.inflight
		if wait == nil && !waited && (s.fetchedAt.IsZero() || time.Since(s.fetchedAt) >= s.minRefresh) {
			wait = make(chan struct{})
			s.inflight = wait
			go s.refresh(ctx, wait)
		}
		if wait == nil {
			// Fetched recently (or we just waited for a fetch): answer from what it found.
			err := s.lastErr
			s.mu.Unlock()
			if err != nil {
				return nil, unavailable(err)
			}
			return nil, unknownKid(kid)
		}
		s.mu.Unlock()
		select {
		case <-wait:
			waited = true
		case <-ctx.Done():
			return nil, unavailable(ctx.Err())
		}
	}
}

// refresh fetches the JWKS and replaces the cache (keys Clerk no longer serves are dropped). The
// fetch is detached from the caller's cancellation because other requests may be waiting on it.
func (s *keySet) refresh(ctx context.Context, done chan struct{}) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	set, err := s.client.Get(fctx, &jwks.GetParams{})

	keys := map[string]*clerk.JSONWebKey{}
	if err == nil && set != nil {
		for _, k := range set.Keys {
			if k != nil && k.KeyID != "" {
				keys[k.KeyID] = k
			}
		}
	}
	if err == nil && len(keys) == 0 {
		err = errors.New("Clerk's JWKS has no keys")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetchedAt = time.Now()
	s.lastErr = err
	if err == nil {
		s.keys = keys
		s.log.Debug("fetched Clerk's JWKS", zap.Int("keys", len(keys)))
	} else {
		// Keep the keys we had: tokens signed with them still verify while Clerk is away.
		s.log.Warn("fetching Clerk's JWKS failed", zap.Error(err))
	}
	s.inflight = nil
	close(done)
}

func unavailable(cause error) *apierror.Error {
	return apierror.Unavailable("auth_unavailable", "session tokens cannot be verified right now: Clerk's signing keys are unreachable").WithCause(cause)
}

func unknownKid(kid string) *apierror.Error {
	if len(kid) > 64 {
		kid = kid[:64] + "..."
	}
	return invalidToken("the session token is signed with a key Clerk does not publish", fmt.Errorf("unknown kid %q", kid))
}
