package providers

import (
	"context"
	"sync"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/health"
	"github.com/insien/orchestrator/internal/platform/loop"
)

// dependencyWatch checks a dependency once on start within health.check_timeout. If it does not
// answer, the process keeps running (readiness reports it) and a goroutine retries every
// health.retry_interval until it does, then calls onReady; if onReady fails there, onLateFailure
// runs. Stop ends the retries.
type dependencyWatch struct {
	check         health.Check
	onReady       func(context.Context) error // nil: nothing to do
	onLateFailure func()                      // nil: nothing to do
	timeout       time.Duration
	interval      time.Duration
	log           *zap.Logger

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// watchDependency starts watching check with the application and closes the client on stop.
// Fx stops hooks in reverse order: the client closes after the watch and after every user
// started later.
func watchDependency(lc fx.Lifecycle, check health.Check, closeClient func() error, h config.Health, log *zap.Logger) *dependencyWatch {
	w := &dependencyWatch{check: check, timeout: h.CheckTimeout, interval: h.RetryInterval, log: log}
	lc.Append(fx.StopHook(closeClient))
	lc.Append(fx.StartStopHook(w.start, w.stop))
	return w
}

func (w *dependencyWatch) start(ctx context.Context) error {
	err := w.probe(ctx)
	if err == nil {
		w.log.Info("dependency ready", zap.String("dependency", w.check.Name))
		return w.ready(ctx)
	}
	w.log.Warn("dependency unavailable at start; retrying in the background",
		zap.String("dependency", w.check.Name), zap.Error(err))
	bg, stop := context.WithCancel(context.Background())
	w.cancel = stop
	w.done.Add(1)
	go w.retry(bg)
	return nil
}

func (w *dependencyWatch) stop(context.Context) error {
	if w.cancel != nil {
		w.cancel()
		w.done.Wait()
	}
	return nil
}

func (w *dependencyWatch) retry(ctx context.Context) {
	defer w.done.Done()
	loop.Every(ctx, w.interval, w.retryOnce)
}

// retryOnce probes the dependency; once it answers, it runs onReady and reports the watch done.
func (w *dependencyWatch) retryOnce(ctx context.Context) (done bool) {
	if w.probe(ctx) != nil {
		return false
	}
	w.log.Info("dependency ready", zap.String("dependency", w.check.Name))
	if err := w.ready(ctx); err != nil {
		w.log.Error("dependency unusable", zap.String("dependency", w.check.Name), zap.Error(err))
		if w.onLateFailure != nil {
			w.onLateFailure()
		}
	}
	return true
}

func (w *dependencyWatch) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	return w.check.Probe(ctx)
}

func (w *dependencyWatch) ready(ctx context.Context) error {
	if w.onReady == nil {
		return nil
	}
	return w.onReady(ctx)
}
