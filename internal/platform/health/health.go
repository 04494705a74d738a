// Package health tracks whether this replica should receive traffic: liveness never depends on
// anything; readiness needs every registered dependency to answer and turns false the moment
// shutdown begins.
package health

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/platform/config"
)

// Check is one named dependency probe. Providers contribute them to the "health_checks" group.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// Report is the outcome of a readiness evaluation.
type Report struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"` // "ok", "timeout" or "unavailable": no internals for the public probe
	Errors map[string]error  `json:"-"`      // the detail, for the log only
}

// Readiness aggregates dependency checks and the shutdown flag.
type Readiness struct {
	timeout  time.Duration
	checks   []Check
	stopping atomic.Bool
}

// Params is the health configuration and the checks contributed to the "health_checks" group.
type Params struct {
	fx.In
	Health config.Health
	Checks []Check `group:"health_checks"`
}

// NewReadiness builds a readiness tracker over the checks; each is given health.check_timeout
// to answer.
func NewReadiness(p Params) *Readiness {
	sorted := append([]Check(nil), p.Checks...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	return &Readiness{timeout: p.Health.CheckTimeout, checks: sorted}
}

// BeginShutdown makes every later readiness evaluation fail, so load balancers stop routing here.
func (r *Readiness) BeginShutdown() { r.stopping.Store(true) }

// ShuttingDown reports whether BeginShutdown was called.
func (r *Readiness) ShuttingDown() bool { return r.stopping.Load() }

// Evaluate runs every check concurrently within the configured timeout.
func (r *Readiness) Evaluate(ctx context.Context) Report {
	report := Report{Ready: true, Checks: make(map[string]string, len(r.checks)+1), Errors: map[string]error{}}
	if r.ShuttingDown() {
		report.Ready = false
		report.Checks["shutdown"] = "shutting down"
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, check := range r.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := check.Probe(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				report.Ready = false
				report.Errors[check.Name] = err
				report.Checks[check.Name] = "unavailable"
				if ctx.Err() != nil {
					report.Checks[check.Name] = "timeout"
				}
				return
			}
			report.Checks[check.Name] = "ok"
		}()
	}
	wg.Wait()
	return report
}
