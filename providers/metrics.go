package providers

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/insien/orchestrator/internal/platform/metrics"
)

// registerPoolMetrics exports the connection pools' statistics: Postgres's through the standard
// database/sql collector (go_sql_*{db_name="postgres"}), Redis's through redisPool.
func registerPoolMetrics(reg prometheus.Registerer, db *bun.DB, rdb *redis.Client) {
	reg.MustRegister(collectors.NewDBStatsCollector(db.DB, "postgres"), newRedisPool(rdb))
}

// redisPool reads go-redis's pool statistics at each scrape (go-redis keeps them as counters).
type redisPool struct {
	rdb                                     *redis.Client
	hits, misses, timeouts, waits, waitTime *prometheus.Desc
	conns, stale                            *prometheus.Desc
}

func newRedisPool(rdb *redis.Client) *redisPool {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, "redis_pool", name), help, labels, nil)
	}
	return &redisPool{
		rdb:      rdb,
		hits:     desc("hits_total", "Times a free connection was found in the pool."),
		misses:   desc("misses_total", "Times no free connection was in the pool (a new one was dialled or waited for)."),
		timeouts: desc("timeouts_total", "Times a wait for a connection timed out."),
		waits:    desc("waits_total", "Times a caller waited for a connection."),
		waitTime: desc("wait_seconds_total", "Total time callers waited for a connection."),
		conns:    desc("connections", "Connections in the pool, by state.", "state"),
		stale:    desc("stale_connections_closed_total", "Connections closed as stale."),
	}
}

func (c *redisPool) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.timeouts, c.waits, c.waitTime, c.conns, c.stale} {
		ch <- d
	}
}

func (c *redisPool) Collect(ch chan<- prometheus.Metric) {
	s := c.rdb.PoolStats()
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	counter(c.hits, float64(s.Hits))
	counter(c.misses, float64(s.Misses))
	counter(c.timeouts, float64(s.Timeouts))
	counter(c.waits, float64(s.WaitCount))
	counter(c.waitTime, float64(s.WaitDurationNs)/1e9)
	counter(c.stale, float64(s.StaleConns))
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.IdleConns), "idle")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.TotalConns-s.IdleConns), "in_use")
}
