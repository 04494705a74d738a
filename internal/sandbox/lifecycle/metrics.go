package lifecycle

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/metrics"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/repositories"
)

// stateCountTTL is how long a count of sandboxes by state serves scrapes: scrapers that come
// every second cost Postgres one query per stateCountTTL, not one each.
const stateCountTTL = 5 * time.Second

// serviceMetrics are the sandbox service's own metrics.
type serviceMetrics struct {
	createDuration *prometheus.HistogramVec
}

func newServiceMetrics(reg prometheus.Registerer, rows *repositories.Sandboxes, log *zap.Logger) *serviceMetrics {
	m := &serviceMetrics{
		createDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metrics.Namespace, Subsystem: "sandbox",
			Name: "create_duration_seconds", Help: "Time from a create request's arrival in the service to a running sandbox, by how it started (warm: claimed from a pool; cold: a new workload).",
			Buckets: metrics.LatencyBuckets}, []string{"start"}),
	}
	reg.MustRegister(m.createDuration, &stateCollector{rows: rows, log: log})
	return m
}

// created records a create that ended with a running sandbox.
func (m *serviceMetrics) created(sb *model.Sandbox, began time.Time) {
	m.createDuration.WithLabelValues(string(sb.Start)).Observe(time.Since(began).Seconds())
}

// stateCollector reports live sandboxes by state, counted in Postgres: every replica reports
// the whole deployment's numbers (aggregate them with max, not sum).
type stateCollector struct {
	rows *repositories.Sandboxes
	log  *zap.Logger

	mu      sync.Mutex
	counted time.Time
	counts  map[model.Status]int
}

var sandboxesDesc = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, "", "sandboxes"),
	"Live sandboxes of every user on every replica, by state (read from Postgres, at most 5 s old).", []string{"state"}, nil)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sandboxesDesc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.counted) > stateCountTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		counts, err := c.rows.CountLiveByStatus(ctx)
		cancel()
		if err != nil {
			// An unreadable count is left out of the scrape rather than reported as zero.
			c.log.Warn("could not count sandboxes for metrics", zap.Error(err))
			ch <- prometheus.NewInvalidMetric(sandboxesDesc, err)
			return
		}
		c.counts, c.counted = counts, time.Now()
	}
	for _, state := range model.Live {
		ch <- prometheus.MustNewConstMetric(sandboxesDesc, prometheus.GaugeValue, float64(c.counts[state]), string(state))
	}
}
