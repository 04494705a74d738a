package webhooks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/loop"
	"github.com/insien/orchestrator/internal/platform/tracing"
	"github.com/insien/orchestrator/internal/sandbox/envcrypt"
	"github.com/insien/orchestrator/repositories"
)

// leaseMargin is added to the attempt timeout to make a claim's lease: a delivery is not due to
// another replica before its attempt has certainly ended.
const leaseMargin = 30 * time.Second

// Worker sends due deliveries, on every replica at once: each claims rows no other holds (SKIP
// LOCKED) with a lease, so a delivery is attempted by one replica at a time and taken over when
// that replica dies mid-attempt. Postgres alone holds the outbox: Redis plays no part.
type Worker struct {
	rows     *repositories.Webhooks
	sealer   *envcrypt.Sealer
	cfg      config.Webhooks
	client   *http.Client
	outcomes *prometheus.CounterVec
	log      *zap.Logger

	slots    chan struct{} // attempts in flight, at most cfg.Concurrency
	stop     context.CancelFunc
	done     sync.WaitGroup
	inFlight sync.WaitGroup
	tracer   trace.Tracer
}

// WorkerParams are the worker's dependencies.
type WorkerParams struct {
	fx.In
	Webhooks *repositories.Webhooks
	Sealer   *envcrypt.Sealer
	Config   config.Webhooks
	Log      *zap.Logger
	Metrics  prometheus.Registerer `optional:"true"` // nil: nothing exported
	Tracing  *tracing.Tracing      `optional:"true"` // nil: no spans
}

// NewWorker builds the worker; it sends from Start to Stop.
func NewWorker(p WorkerParams) *Worker {
	tracer := noop.NewTracerProvider().Tracer(tracing.Scope)
	if p.Tracing != nil {
		tracer = p.Tracing.Tracer()
	}
	return &Worker{rows: p.Webhooks, sealer: p.Sealer, cfg: p.Config, client: newClient(p.Config),
		outcomes: newDeliveryCounter(p.Metrics), log: p.Log.Named("webhooks"), slots: make(chan struct{}, p.Config.Concurrency),
		tracer: tracer}
}

// Start polls for due deliveries every webhooks.poll_interval until Stop.
func (w *Worker) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.done.Go(func() {
		loop.Every(ctx, w.cfg.PollInterval, func(ctx context.Context) bool {
			w.poll(ctx)
			return false
		})
	})
	return nil
}

// Stop ends polling and cuts the attempts in flight short; their deliveries are released, due
// at once for whichever replica polls next.
func (w *Worker) Stop(context.Context) error {
	if w.stop != nil {
		w.stop()
		w.done.Wait()
		w.inFlight.Wait()
	}
	return nil
}

// poll claims as many due deliveries as there are free slots and attempts each in its own
// goroutine.
func (w *Worker) poll(ctx context.Context) {
	free := cap(w.slots) - len(w.slots)
	if free == 0 {
		return
	}
	claimed, err := w.rows.Claim(ctx, free, w.cfg.Timeout+leaseMargin)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not claim due webhook deliveries; trying again", zap.Error(err))
		}
		return
	}
	for _, d := range claimed {
		w.slots <- struct{}{}
		w.inFlight.Go(func() {
			defer func() { <-w.slots }()
			w.deliver(ctx, d)
		})
	}
}

// deliver makes one attempt at a claimed delivery and records it, in a span of its own (a
// delivery runs in the background: it begins a trace).
func (w *Worker) deliver(ctx context.Context, d repositories.ClaimedDelivery) {
	ctx, span := w.tracer.Start(ctx, "webhook.deliver", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("webhook.event_type", d.EventType), attribute.Int("webhook.attempt", d.Attempts+1)))
	var r result
	defer func() {
		if r.statusCode != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", r.statusCode))
		}
		if r.err != "" {
			span.SetStatus(codes.Error, r.err)
		}
		span.End()
	}()
	secret, err := w.sealer.Open(d.Secret, secretContext(d.EndpointID))
	if err != nil {
		w.log.Error("could not open a webhook endpoint's secret", zap.Stringer("endpoint", d.EndpointID), zap.Error(err))
		r = result{at: time.Now(), err: "internal: the endpoint's signing secret could not be read"}
	} else {
		r = send(ctx, w.client, w.cfg.Timeout, d.URL, string(secret), d.EventID.String(), d.Payload)
	}
	// Cut short by shutdown: not the endpoint's failure. Release it for the next poll.
	bg := context.WithoutCancel(ctx)
	if ctx.Err() != nil {
		if err := w.rows.Release(bg, d.ID); err != nil {
			w.log.Warn("could not release a webhook delivery at shutdown; it is due again when its lease ends", zap.Error(err))
		}
		return
	}
	if err := w.record(bg, d, r); err != nil {
		w.log.Warn("could not record a webhook attempt; the delivery is retried when its lease ends",
			zap.Stringer("delivery", d.ID), zap.Error(err))
	}
}

// record stores an attempt, moves its delivery on (succeeded, due again after a backoff, or
// failed once its window has closed) and keeps the endpoint's failing streak, disabling an
// endpoint that has failed for webhooks.disable_after.
func (w *Worker) record(ctx context.Context, d repositories.ClaimedDelivery, r result) error {
	latency := int(r.latency.Milliseconds())
	o := repositories.AttemptOutcome{
		Attempt: repositories.WebhookAttempt{DeliveryID: d.ID, AttemptedAt: r.at, LatencyMS: latency},
		Status:  repositories.DeliverySucceeded, NextAttemptAt: time.Now(),
	}
	if r.statusCode != 0 {
		o.Attempt.StatusCode = &r.statusCode
	}
	outcome := outcomeSucceeded
	if r.err != "" {
		o.Attempt.Error = &r.err
		now, deadline := time.Now(), d.RetryFrom.Add(w.cfg.MaxAttemptWindow)
		if now.Before(deadline) { // the last attempt falls on the deadline
			next := now.Add(Backoff(w.cfg, d.Attempts+1))
			o.Status, o.NextAttemptAt, outcome = repositories.DeliveryPending, minTime(next, deadline), outcomeFailedAttempt
		} else {
			o.Status, outcome = repositories.DeliveryFailed, outcomeFailed
		}
	}
	err := w.rows.InTx(ctx, func(ctx context.Context, rows *repositories.Webhooks) error {
		if err := rows.RecordAttempt(ctx, o); err != nil {
			return err
		}
		if r.err == "" {
			return rows.EndpointSucceeded(ctx, d.EndpointID)
		}
		since, err := rows.EndpointFailed(ctx, d.EndpointID, r.at)
		if err != nil || r.at.Sub(since) < w.cfg.DisableAfter {
			return err
		}
		reason := fmt.Sprintf("every attempt failed for %s, since %s; the last: %s", w.cfg.DisableAfter, since.UTC().Format(time.RFC3339), r.err)
		if _, err := rows.DisableEndpoint(ctx, d.EndpointID, reason); err != nil {
			return err
		}
		w.log.Info("disabled a failing webhook endpoint", zap.Stringer("endpoint", d.EndpointID), zap.String("reason", reason))
		return nil
	})
	if errors.Is(err, repositories.ErrNotFound) {
		return nil // the endpoint was deleted or disabled meanwhile: nothing left to record
	}
	if err != nil {
		return err
	}
	w.outcomes.WithLabelValues(outcome).Inc()
	return nil
}

// Backoff is the wait before attempt n+1 after n failed attempts: webhooks.backoff_base doubled
// per attempt up to webhooks.backoff_max, of which the second half is random ("equal jitter":
// replicas and endpoints spread out, yet no retry comes sooner than half the step).
func Backoff(cfg config.Webhooks, failed int) time.Duration {
	step := cfg.BackoffMax
	if failed < 40 {
		step = min(cfg.BackoffBase<<(failed-1), cfg.BackoffMax)
	}
	if step <= 0 {
		step = cfg.BackoffMax
	}
	half := step / 2
	return half + rand.N(step-half+1)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
