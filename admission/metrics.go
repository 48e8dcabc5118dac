package admission

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the queue's Prometheus collectors.
type Metrics struct {
	depth      *prometheus.GaugeVec
	wait       *prometheus.HistogramVec
	rejections *prometheus.CounterVec
	backfilled *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "guardian", Subsystem: "queue", Name: "depth",
			Help: "Requests waiting for pool capacity, per tenant.",
		}, []string{"tenant"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "guardian", Subsystem: "queue", Name: "wait_seconds",
			Help:    "Time from arrival to admission or rejection, per tenant and outcome (admitted, deadline, too_large, no_key, cancelled, error).",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60},
		}, []string{"tenant", "outcome"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "queue", Name: "rejections_total",
			Help: "Requests not admitted, per tenant and reason.",
		}, []string{"tenant", "reason"}),
		backfilled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "queue", Name: "backfilled_total",
			Help: "Requests admitted ahead of a waiting head of the queue that they did not delay, per tenant.",
		}, []string{"tenant"}),
	}
	if reg != nil {
		reg.MustRegister(m.depth, m.wait, m.rejections, m.backfilled)
	}
	return m
}
