package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/netguard"
)

// maxResponseBytes is how much of an answer's body an attempt reads; the rest is never read
// (the connection is closed), so an endpoint answering gigabytes costs 64 KiB.
const maxResponseBytes = 64 << 10

// refusedAddrError is a dial the guard stopped: the name resolved to a refused address.
type refusedAddrError struct {
	addr netip.Addr
	kind string
}

func (e *refusedAddrError) Error() string {
	return fmt.Sprintf("refused to connect to %s: a %s address (webhooks are not sent to loopback, private, link-local or metadata addresses)", e.addr, e.kind)
}

// newClient is the HTTP client of every attempt: one timeout for the whole attempt, redirects
// answered rather than followed, no proxy (the address dialed must be the endpoint's), and a
// dialer that checks the address it is about to connect to, so a name that resolves (or is made
// to resolve, DNS rebinding) to a refused address is caught where it matters.
func newClient(cfg config.Webhooks) *http.Client {
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: func(_, address string, _ syscall.RawConn) error {
		if cfg.AllowPrivateTargets {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("refused to connect to %q: not an IP address", address)
		}
		if kind := netguard.Classify(ap.Addr()); kind != "" {
			return &refusedAddrError{addr: ap.Addr().Unmap(), kind: kind}
		}
		return nil
	}}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: transport, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// result is what one attempt came to.
type result struct {
	at         time.Time
	statusCode int // 0: no answer
	latency    time.Duration
	err        string // "": succeeded
}

// send makes one attempt: the payload POSTed as it is stored, signed per Standard Webhooks
// (webhook-id is the event's id, the same on every attempt and endpoint).
func send(ctx context.Context, client *http.Client, timeout time.Duration, endpoint, secret, msgID string, payload []byte) result {
	r := result{at: time.Now()}
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		r.err = "internal: the endpoint's signing secret is unusable"
		return r
	}
	sig, err := wh.Sign(msgID, r.at, payload)
	if err != nil {
		r.err = "internal: could not sign the payload"
		return r
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(payload))
	if err != nil {
		r.err = "the endpoint's URL is unusable: " + err.Error()
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "insien-webhooks/1")
	req.Header.Set("webhook-id", msgID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(r.at.Unix(), 10))
	req.Header.Set("webhook-signature", sig)

	resp, err := client.Do(req)
	if err != nil {
		r.latency = time.Since(r.at)
		r.err = describe(err, timeout)
		return r
	}
	// The status decides; the body is read (up to the limit) only so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	_ = resp.Body.Close()
	r.latency = time.Since(r.at)
	r.statusCode = resp.StatusCode
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		r.err = fmt.Sprintf("the endpoint answered %d, a redirect (to %q), which is not followed: give the final URL", resp.StatusCode, resp.Header.Get("Location"))
	default:
		r.err = fmt.Sprintf("the endpoint answered %d", resp.StatusCode)
	}
	return r
}

// describe turns a failed request into a line for the delivery's owner.
func describe(err error, timeout time.Duration) string {
	var refused *refusedAddrError
	var netErr net.Error
	switch {
	case errors.As(err, &refused):
		return refused.Error()
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "could not resolve " + dnsErr.Name + ": " + dnsErr.Err
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return "could not connect: " + opErr.Err.Error()
	}
	return "request failed: " + err.Error()
}
