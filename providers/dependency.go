package providers

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// watchDependency checks a dependency once on start within timeout. If it does not answer, the
// process keeps running (readiness reports it) and a goroutine retries every interval until it
// does, then calls onReady; if onReady fails there, onLateFailure runs. Stop ends the retries.
type watchDependency struct {
	name          string
	probe         func(context.Context) error
	onReady       func(context.Context) error
	onLateFailure func()
	timeout       time.Duration
	interval      time.Duration
	log           *zap.Logger

	cancel context.CancelFunc
	done   sync.WaitGroup
}

func (w *watchDependency) Start(ctx context.Context) error {
	probeCtx, cancel := context.WithTimeout(ctx, w.timeout)
	err := w.probe(probeCtx)
	cancel()
	if err == nil {
		w.log.Info("dependency ready", zap.String("dependency", w.name))
		return w.ready(ctx)
	}
	w.log.Warn("dependency unavailable at start; retrying in the background",
		zap.String("dependency", w.name), zap.Error(err))
	bg, stop := context.WithCancel(context.Background())
	w.cancel = stop
	w.done.Add(1)
	go w.retry(bg)
	return nil
}

func (w *watchDependency) Stop(context.Context) error {
	if w.cancel != nil {
		w.cancel()
		w.done.Wait()
	}
	return nil
}

func (w *watchDependency) retry(ctx context.Context) {
	defer w.done.Done()
	ticker := time.NewTicker(w.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		probeCtx, cancel := context.WithTimeout(ctx, w.timeout)
		err := w.probe(probeCtx)
		cancel()
		if err != nil {
			continue
		}
		w.log.Info("dependency ready", zap.String("dependency", w.name))
		if err := w.ready(ctx); err != nil {
			w.log.Error("dependency unusable", zap.String("dependency", w.name), zap.Error(err))
			if w.onLateFailure != nil {
				w.onLateFailure()
			}
		}
		return
	}
}

func (w *watchDependency) ready(ctx context.Context) error {
	if w.onReady == nil {
		return nil
	}
	return w.onReady(ctx)
}
