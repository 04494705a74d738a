// Package client is the idiomatic Go SDK of the Insien sandbox orchestrator: create a sandbox, run
// commands in it (whole or streamed), move files in and out, follow its logs, drive a terminal, and
// manage its lifecycle, with typed errors and retries, on top of the generated low-level client in
// package api.
//
//	c, err := client.New("") // $INSIEN_API_KEY, $INSIEN_API_URL
//	sb, err := c.Sandboxes.Create(ctx, client.CreateSandboxParams{})
//	defer sb.Delete(context.Background())
//	res, err := sb.Exec(ctx, []string{"echo", "hello"})
//	fmt.Print(res.Stdout) // hello
package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/insien/orchestrator/sdk/go/api"
)

// Version is the SDK's version, sent in the default User-Agent.
const Version = "0.1.0"

// DefaultBaseURL is where New points when neither WithBaseURL nor $INSIEN_API_URL says otherwise:
// the service that `go tool task dev` starts.
const DefaultBaseURL = "http://localhost:3000"

// The environment variables New reads when it is not told.
const (
	EnvAPIKey = "INSIEN_API_KEY"
	EnvAPIURL = "INSIEN_API_URL"
)

// DefaultRetries is how many times a retryable request is sent again before its error is returned.
const DefaultRetries = 3

// defaultTransport keeps up to 64 idle connections to the orchestrator (net/http's default keeps
// two): a program that creates or drives many sandboxes at once reuses its connections instead of
// dialling most of them anew for every burst. Shared by every Client without WithHTTPClient.
var defaultTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}()

// Client talks to one orchestrator with one credential. It is safe for concurrent use.
type Client struct {
	// Sandboxes creates, finds and lists sandboxes.
	Sandboxes *SandboxService
	// Keys manages API keys; it needs a Clerk session token as the credential.
	Keys *KeyService
	// API is the generated low-level client, for every operation this package does not wrap. Its
	// requests carry the credential and User-Agent and are retried like this package's.
	API *api.ClientWithResponses

	baseURL   string // without a trailing slash
	token     string
	userAgent string
	http      *http.Client
	retry     retryPolicy
	doer      *retryDoer // http with the retry policy: every request but the terminal's goes through it
}

// Option changes how New builds a Client.
type Option func(*Client)

// WithBaseURL points the client at an orchestrator, e.g. "https://insien.example.com"
// (default $INSIEN_API_URL, else http://localhost:3000).
func WithBaseURL(u string) Option { return func(c *Client) { c.baseURL = u } }

// WithHTTPClient sends every request, WebSockets included, through hc (default a fresh
// http.Client without a timeout: bound calls with their context, since streams last).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithRetries sets how many times a retryable request is sent again (default 3; 0 disables retries).
func WithRetries(max int) Option { return func(c *Client) { c.retry.max = max } }

// WithUserAgent replaces the User-Agent header (default "insien-go/<Version>").
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client that authenticates with apiKey ("" reads $INSIEN_API_KEY). The credential,
// an API key (isk_...) or a Clerk session token, goes as "Authorization: Bearer <token>". It fails
// when there is no credential at all or the base URL is not an http(s) URL; it sends no request.
func New(apiKey string, opts ...Option) (*Client, error) {
	c := &Client{
		token:     apiKey,
		userAgent: "insien-go/" + Version,
		retry:     defaultRetryPolicy(),
	}
	if c.token == "" {
		c.token = os.Getenv(EnvAPIKey)
	}
	c.baseURL = os.Getenv(EnvAPIURL)
	for _, o := range opts {
		o(c)
	}
	if c.token == "" {
		return nil, fmt.Errorf("insien: no credential: pass an API key to client.New or set $%s", EnvAPIKey)
	}
	if c.baseURL == "" {
		c.baseURL = DefaultBaseURL
	}
	c.baseURL = strings.TrimRight(c.baseURL, "/")
	u, err := url.Parse(c.baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("insien: base URL %q: want http(s)://host[:port]", c.baseURL)
	}
	if c.http == nil {
		c.http = &http.Client{Transport: defaultTransport}
	}
	c.doer = &retryDoer{client: c.http, policy: &c.retry}
	c.API, err = api.NewClientWithResponses(c.baseURL,
		api.WithHTTPClient(c.doer),
		api.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			c.authorize(req.Header)
			return nil
		}))
	if err != nil {
		return nil, fmt.Errorf("insien: building the low-level client: %w", err)
	}
	c.Sandboxes = &SandboxService{c: c}
	c.Keys = &KeyService{c: c}
	return c, nil
}

// BaseURL is the orchestrator this client talks to, without a trailing slash.
func (c *Client) BaseURL() string { return c.baseURL }

// Me is the signed-in user's profile, usage counts and limits.
func (c *Client) Me(ctx context.Context) (*api.Me, error) {
	r, err := c.API.GetCurrentUserWithResponse(ctx)
	if err != nil {
		return nil, requestFailed("reading the current user", err)
	}
	if r.JSON200 == nil {
		return nil, responseError(r.HTTPResponse, r.Body)
	}
	return r.JSON200, nil
}

// authorize sets the headers every request carries.
func (c *Client) authorize(h http.Header) {
	h.Set("Authorization", "Bearer "+c.token)
	h.Set("User-Agent", c.userAgent)
}

// do sends a request built by one of api's request builders with the client's credential and
// retry policy; the caller closes the body. A non-2xx answer is returned as *Error.
func (c *Client) do(ctx context.Context, req *http.Request) (*http.Response, error) {
	req = req.WithContext(ctx)
	c.authorize(req.Header)
	resp, err := c.doer.Do(req)
	if err != nil {
		return nil, requestFailed(req.Method+" "+req.URL.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

// requestFailed wraps an error that kept a request from getting an answer, keeping ctx errors
// visible to errors.Is.
func requestFailed(what string, err error) error {
	return fmt.Errorf("insien: %s: %w", what, err)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
