package client

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/sdk/go/api"
)

// KeyService manages the user's API keys. The service accepts only a Clerk session token for these
// routes (an API key cannot mint or revoke keys): build the Client with one.
type KeyService struct{ c *Client }

// KeyOption changes a key being created.
type KeyOption func(*api.CreateAPIKeyRequest)

// WithScopes limits the key to these scopes ("sandboxes:read", "sandboxes:write"; default both).
func WithScopes(scopes ...string) KeyOption {
	return func(r *api.CreateAPIKeyRequest) {
		s := make([]api.CreateAPIKeyRequestScopes, len(scopes))
		for i, v := range scopes {
			s[i] = api.CreateAPIKeyRequestScopes(v)
		}
		r.Scopes = &s
	}
}

// WithExpiry makes the key stop working at t (default: never).
func WithExpiry(t time.Time) KeyOption {
	return func(r *api.CreateAPIKeyRequest) { r.ExpiresAt = &t }
}

// Create makes a key named name. The answer is the only one that carries the full key (Key).
// It is sent once: a retried create could make two keys.
func (k *KeyService) Create(ctx context.Context, name string, opts ...KeyOption) (*api.APIKey, error) {
	body := api.CreateAPIKeyRequest{Name: name}
	for _, o := range opts {
		o(&body)
	}
	r, err := k.c.API.CreateApiKeyWithResponse(ctx, body)
	if err != nil {
		return nil, requestFailed("creating an API key", err)
	}
	if r.JSON201 == nil {
		return nil, responseError(r.HTTPResponse, r.Body)
	}
	return r.JSON201, nil
}

// List returns the user's keys, newest first, masked (Prefix and LastFour, never Key).
func (k *KeyService) List(ctx context.Context) ([]api.APIKey, error) {
	r, err := k.c.API.ListApiKeysWithResponse(ctx)
	if err != nil {
		return nil, requestFailed("listing API keys", err)
	}
	if r.JSON200 == nil {
		return nil, responseError(r.HTTPResponse, r.Body)
	}
	return deref(r.JSON200.Keys), nil
}

// Revoke makes the key with this id stop working at once; revoking a revoked key is not an error,
// an unknown one is 404 not_found.
func (k *KeyService) Revoke(ctx context.Context, id string) error {
	uid, err := uuid.Parse(id)
	if err != nil {
		return &Error{StatusCode: http.StatusNotFound, Code: "not_found",
			Message: "API key not found: " + id + " is not a key id (no request was sent)"}
	}
	r, err := k.c.API.RevokeApiKeyWithResponse(ctx, uid)
	if err != nil {
		return requestFailed("revoking API key "+id, err)
	}
	if r.StatusCode() != http.StatusNoContent {
		return responseError(r.HTTPResponse, r.Body)
	}
	return nil
}
