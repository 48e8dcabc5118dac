package extproc

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/claude-guardian/claude-guardian/internal/labels"
)

// Metrics are the ext_proc server's Prometheus collectors.
type Metrics struct {
	streams      *prometheus.CounterVec
	phaseSeconds map[Role]*[numPhases]prometheus.Observer
	requests     *prometheus.CounterVec
	tokens       *prometheus.CounterVec
	estimate     prometheus.Observer
	models       labels.Bounded
}

// Outcome codes of a client request: stable, low-cardinality values of the
// outcome label (and of log fields).
const (
	OutcomeOK              = "ok"
	OutcomeUpstreamError   = "upstream_error"
	OutcomeUnauthenticated = "unauthenticated"
	OutcomeInvalidRequest  = "invalid_request"
	OutcomeTooLarge        = "too_large"
	OutcomeNotFound        = "not_found"
	OutcomeNoKey           = "no_usable_key"
	OutcomeAbandoned       = "abandoned"
)

// NewMetrics creates the collectors and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "extproc", Name: "streams_total",
			Help: "ext_proc streams by processor role and how they ended (complete, cancelled, error).",
		}, []string{"role", "end"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Name: "requests_total",
			Help: "Client requests seen by the front processor, by tenant, endpoint and outcome.",
		}, []string{"tenant", "endpoint", "outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Name: "tokens_total",
			Help: "Tokens reported by responses, by tenant, model, account and type (input, output, cache_read, cache_creation).",
		}, []string{"tenant", "model", "account", "type"}),
		models: labels.Bounded{Max: 64},
	}
	phase := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "guardian", Subsystem: "extproc", Name: "message_duration_seconds",
		Help:    "Server time per ext_proc message, by role and phase.",
		Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 0.1, 1, 10, 60},
	}, []string{"role", "phase"})
	m.phaseSeconds = map[Role]*[numPhases]prometheus.Observer{}
	for _, r := range []Role{RoleFront, RoleUpstream} {
		var obs [numPhases]prometheus.Observer
		for p := range numPhases {
			obs[p] = phase.WithLabelValues(string(r), p.String())
		}
		m.phaseSeconds[r] = &obs
	}
	est := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "guardian", Name: "input_tokens_estimate_ratio",
		Help:    "Actual input tokens (input + cache creation + cache read) divided by the estimate made before sending.",
		Buckets: []float64{0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 4},
	})
	m.estimate = est
	if reg != nil {
		reg.MustRegister(m.streams, m.requests, m.tokens, phase, est)
	}
	return m
}
