package clerkauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/user"

	"github.com/insien/orchestrator/internal/platform/config"
)

var (
	// ErrUserNotFound means Clerk has no user with that ID (deleted, or never existed).
	ErrUserNotFound = errors.New("clerk: user not found")
	// ErrUnavailable means Clerk's Backend API did not answer usefully (network, timeout, 5xx,
	// 429): retry later and keep serving what is stored.
	ErrUnavailable = errors.New("clerk: backend API unavailable")
	// ErrNotConfigured means clerk.secret_key is empty, so the Backend API cannot be called.
	ErrNotConfigured = errors.New("clerk: clerk.secret_key is not configured")
)

// userIDPattern is a conservative shape for Clerk IDs (user_ + base62): anything else cannot be
// a user and must not be spliced into a request path.
var userIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Profile is the part of a Clerk user this service stores.
type Profile struct {
	ClerkUserID string
	Email       string // the primary email address
	FirstName   string
	LastName    string
	Username    string
	ImageURL    string
}

// ProfileFromUser flattens Clerk's user object: the primary email is the address whose ID is
// PrimaryEmailAddressID (else the first one), and null fields become "".
func ProfileFromUser(u *clerk.User) Profile {
	if u == nil {
		return Profile{}
	}
	p := Profile{
		ClerkUserID: u.ID,
		FirstName:   deref(u.FirstName),
		LastName:    deref(u.LastName),
		Username:    deref(u.Username),
		ImageURL:    deref(u.ImageURL),
	}
	primary := deref(u.PrimaryEmailAddressID)
	for _, e := range u.EmailAddresses {
		if e == nil {
			continue
		}
		if p.Email == "" {
			p.Email = e.EmailAddress
		}
		if primary != "" && e.ID == primary {
			p.Email = e.EmailAddress
			break
		}
	}
	return p
}

// ParseUserPayload reads the data object of user.created / user.updated webhooks, which is the
// Backend API's user object.
func ParseUserPayload(data []byte) (Profile, error) {
	var u clerk.User
	if err := json.Unmarshal(data, &u); err != nil {
		return Profile{}, fmt.Errorf("clerk: user payload: %w", err)
	}
	return ProfileFromUser(&u), nil
}

// Users reads profiles from Clerk's Backend API.
type Users struct {
	client  *user.Client
	enabled bool
}

// NewUsers builds the Backend API client from clerk.api_url, clerk.secret_key and
// clerk.request_timeout. It does no I/O.
func NewUsers(cfg config.Clerk) *Users {
	return &Users{
		client:  user.NewClient(backendConfig(cfg)),
		enabled: cfg.SecretKey != "",
	}
}

// Enabled reports whether the Backend API can be called (a secret key is configured).
func (u *Users) Enabled() bool { return u.enabled }

// Get fetches a user's profile. Errors wrap ErrUserNotFound, ErrUnavailable or ErrNotConfigured;
// anything else (Clerk refusing our secret key, say) is a plain error that retrying won't fix.
func (u *Users) Get(ctx context.Context, clerkUserID string) (Profile, error) {
	if !u.enabled {
		return Profile{}, ErrNotConfigured
	}
	if !userIDPattern.MatchString(clerkUserID) {
		return Profile{}, fmt.Errorf("%w: malformed user ID", ErrUserNotFound)
	}
	cu, err := u.client.Get(ctx, clerkUserID)
	if err != nil {
		return Profile{}, classifyAPIError(err)
	}
	if cu.ID == "" {
		return Profile{}, fmt.Errorf("%w: Clerk answered without a user", ErrUnavailable)
	}
	return ProfileFromUser(cu), nil
}

// classifyAPIError maps the SDK's errors: *clerk.APIErrorResponse for answers in Clerk's error
// shape (with the status), anything else for transport failures, timeouts and error bodies that
// are not Clerk's JSON (a proxy's 502 page, say).
func classifyAPIError(err error) error {
	var apiErr *clerk.APIErrorResponse
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	status := apiErr.HTTPStatusCode
	switch {
	case status == http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrUserNotFound, err)
	case status == http.StatusTooManyRequests || status >= 500:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	default:
		return fmt.Errorf("clerk: get user: status %d: %w", status, err)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
