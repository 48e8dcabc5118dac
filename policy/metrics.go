package policy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/claude-guardian/claude-guardian/internal/labels"
)

// Metrics are the policy engine's Prometheus collectors.
type Metrics struct {
	decisions *prometheus.CounterVec
	errors    *prometheus.CounterVec
	reloads   *prometheus.CounterVec
	revision  *prometheus.GaugeVec
	seconds   prometheus.Observer
	models    labels.Bounded
	reasons   labels.Bounded
}

// NewMetrics creates the collectors and registers them on reg (nil: not
// registered).
//
// The Ollama share over time, which the article alerts on above 20 %, is
//
//	sum(rate(guardian_policy_decisions_total{backend="ollama"}[5m]))
//	  / sum(rate(guardian_policy_decisions_total[5m]))
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "policy", Name: "decisions_total",
			Help: "Routing decisions applied, by backend (claude, ollama), model and reason (safe defaults have reason policy-error).",
		}, []string{"backend", "model", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "policy", Name: "errors_total",
			Help: "Policy evaluations that failed and fell back to the safe default, by code (undefined, malformed, eval, no_policy).",
		}, []string{"code"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "policy", Name: "reloads_total",
			Help: "Policy versions loaded, by result (ok, failed); a failed one keeps the last good version serving.",
		}, []string{"result"}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "guardian", Subsystem: "policy", Name: "revision_info",
			Help: "1 for the policy revision serving now.",
		}, []string{"revision", "source"}),
		models:  labels.Bounded{Max: 64},
		reasons: labels.Bounded{Max: 64},
	}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "guardian", Subsystem: "policy", Name: "eval_duration_seconds",
		Help:    "Time to build the input and evaluate the policy for one request.",
		Buckets: []float64{5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 250e-6, 1e-3, 10e-3},
	})
	m.seconds = h
	if reg != nil {
		reg.MustRegister(m.decisions, m.errors, m.reloads, m.revision, h)
	}
	return m
}

func (m *Metrics) decided(d *Decision) {
	m.decisions.WithLabelValues(d.Backend, m.models.Value(d.Model), m.reasons.Value(d.Reason)).Inc()
}

func (m *Metrics) swapped(v *Version) {
	m.revision.Reset()
	m.revision.WithLabelValues(v.Revision, v.Source).Set(1)
}

// Reload counts a reload attempt; ok false is the failure metric.
func (m *Metrics) Reload(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
		return
	}
	m.reloads.WithLabelValues("failed").Inc()
}
