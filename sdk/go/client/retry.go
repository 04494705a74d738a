package client

import (
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/insien/orchestrator/sdk/go/api"
)

// retryPolicy says how often and how long to wait before a retryable request is sent again.
type retryPolicy struct {
	max      int           // retries after the first attempt; 0: none
	base     time.Duration // the first backoff
	cap      time.Duration // no backoff longer than this (Retry-After aside)
	maxAfter time.Duration // the longest Retry-After honoured; longer ones return the 429
}

func defaultRetryPolicy() retryPolicy {
	return retryPolicy{max: DefaultRetries, base: 250 * time.Millisecond, cap: 8 * time.Second, maxAfter: time.Minute}
}

// backoff is the wait before retry n (0-based): exponential, capped, with "equal jitter" (half
// fixed, half random) so clients that failed together do not come back together.
func (p *retryPolicy) backoff(n int) time.Duration {
	d := p.base << min(n, 16)
	if d > p.cap || d <= 0 {
		d = p.cap
	}
	half := d / 2
	return half + rand.N(half+1)
}

// retryDoer sends a request again on a connection error, 429 (after its Retry-After) and
// 502/503/504, when sending it twice is safe: GET, HEAD, OPTIONS, PUT and DELETE are idempotent by
// HTTP's definition (and the API keeps them so), and a POST with an Idempotency-Key is made so by
// the service. Other POSTs (exec, pause, ...) are sent once.
type retryDoer struct {
	client *http.Client
	policy *retryPolicy
}

// retryable says whether req may be sent more than once.
func retryable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false // a body that cannot be rewound (a streamed upload) goes once
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

// retryStatus says whether an answer is worth trying again.
func retryStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Do sends req, retrying as the policy allows; the last answer or error is returned.
func (d *retryDoer) Do(req *http.Request) (*http.Response, error) {
	if d.policy.max <= 0 || !retryable(req) {
		return d.client.Do(req)
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		if attempt > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(ctx)
			req.Body = body
		}
		resp, err := d.client.Do(req)
		if attempt >= d.policy.max || ctx.Err() != nil {
			return resp, err
		}
		var wait time.Duration
		switch {
		case err != nil:
			wait = d.policy.backoff(attempt)
		case retryStatus(resp.StatusCode):
			wait = d.policy.backoff(attempt)
			if after, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
				if after > d.policy.maxAfter {
					return resp, nil
				}
				wait = max(after, wait/2)
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
			resp.Body.Close()
		default:
			return resp, nil
		}
		if serr := sleep(ctx, wait); serr != nil {
			return nil, errors.Join(serr, err)
		}
	}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

var _ api.HttpRequestDoer = (*retryDoer)(nil)
