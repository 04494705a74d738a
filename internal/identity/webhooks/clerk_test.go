package webhooks_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/identity/users"
	"github.com/insien/orchestrator/internal/identity/webhooks"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/providers"
)

// gatedApplier counts applications; each announces itself on started, then waits for gate to close.
type gatedApplier struct {
	applied atomic.Int64
	started chan struct{}
	gate    chan struct{}
	fail    atomic.Bool
}

func (a *gatedApplier) Apply(ctx context.Context, _ users.Event) error {
	a.started <- struct{}{}
	<-a.gate
	if a.fail.Load() {
		return errors.New("database down")
	}
	a.applied.Add(1)
	return nil
}

type delivery struct {
	body    []byte
	headers http.Header
}

func newReceiver(t *testing.T, applier webhooks.Applier) (*webhooks.Clerk, func(id string) delivery) {
	t.Helper()
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	rdb, err := providers.NewRedis(config.Redis{URL: config.Secret(testenv.RedisURL(t)), PoolSize: 10,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	clerk, err := webhooks.NewClerk(webhooks.Params{Applier: applier, Clerk: config.Clerk{WebhookSecret: config.Secret(secret), WebhookTolerance: 5 * time.Minute}, Redis: rdb, Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(id string) delivery {
		body := []byte(`{"type":"user.updated","data":{"id":"user_1"}}`)
		now := time.Now()
		sig, err := wh.Sign(id, now, body)
		if err != nil {
			t.Fatal(err)
		}
		return delivery{body: body, headers: http.Header{
			"Svix-Id": {id}, "Svix-Timestamp": {fmt.Sprint(now.Unix())}, "Svix-Signature": {sig},
		}}
	}
	return clerk, sign
}

// TestDeliveryAppliedOnce: copies of one delivery are applied once. A copy that arrives while the
// first is being applied gets 409 webhook_in_progress (svix retries it); copies after that are
// acknowledged as duplicates; a delivery whose application failed is applied by its retry.
func TestDeliveryAppliedOnce(t *testing.T) {
	applier := &gatedApplier{started: make(chan struct{}, 32), gate: make(chan struct{})}
	clerk, sign := newReceiver(t, applier)
	ctx := t.Context()
	d := sign("msg_concurrent")

	first := make(chan error, 1)
	go func() {
		outcome, err := clerk.Receive(ctx, d.body, d.headers)
		if err == nil && outcome != webhooks.Applied {
			err = fmt.Errorf("outcome %s", outcome)
		}
		first <- err
	}()
	<-applier.started

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := clerk.Receive(ctx, d.body, d.headers)
			if apiErr, ok := apierror.As(err); !ok || apiErr.Status != http.StatusConflict || apiErr.Code != "webhook_in_progress" {
				t.Errorf("copy while the first applies: %v", err)
			}
		})
	}
	wg.Wait()
	close(applier.gate)
	if err := <-first; err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	for range 3 {
		if outcome, err := clerk.Receive(ctx, d.body, d.headers); err != nil || outcome != webhooks.Duplicate {
			t.Fatalf("copy after it applied: %s %v", outcome, err)
		}
	}
	if n := applier.applied.Load(); n != 1 {
		t.Fatalf("applied %d times, want 1", n)
	}

	failing := sign("msg_fails_once")
	applier.fail.Store(true)
	if _, err := clerk.Receive(ctx, failing.body, failing.headers); err == nil {
		t.Fatal("a failed application must not be acknowledged")
	}
	applier.fail.Store(false)
	if outcome, err := clerk.Receive(ctx, failing.body, failing.headers); err != nil || outcome != webhooks.Applied {
		t.Fatalf("retry after a failure: %s %v", outcome, err)
	}
	if n := applier.applied.Load(); n != 2 {
		t.Fatalf("applied %d times, want 2", n)
	}
}
