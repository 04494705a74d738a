package webhooks

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/insien/orchestrator/internal/platform/metrics"
)

// Attempt outcomes, the values of the outcome label.
const (
	outcomeSucceeded     = "succeeded"      // the endpoint took the delivery
	outcomeFailedAttempt = "failed_attempt" // an attempt failed; the delivery will be retried
	outcomeFailed        = "failed"         // an attempt failed and the delivery was given up
)

// newDeliveryCounter counts attempts by outcome, each outcome present from the start.
func newDeliveryCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "webhook",
		Name: "deliveries_total", Help: "Webhook delivery attempts by outcome: succeeded, failed_attempt (to be retried) or failed (given up)."},
		[]string{"outcome"})
	for _, o := range []string{outcomeSucceeded, outcomeFailedAttempt, outcomeFailed} {
		c.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}
