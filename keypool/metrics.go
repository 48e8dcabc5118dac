package keypool

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pool's Prometheus collectors. Labels carry account names
// and key ids, never keys.
type Metrics struct {
	limit             *prometheus.GaugeVec
	remaining         *prometheus.GaugeVec
	coolUntil         *prometheus.GaugeVec
	keyDisabled       *prometheus.GaugeVec
	upstreamResponses *prometheus.CounterVec
	reserved          *prometheus.CounterVec
	actual            *prometheus.CounterVec
	limitReported     *prometheus.GaugeVec
	reservations      *prometheus.CounterVec
	headroom          *prometheus.GaugeVec
	inflight          *prometheus.GaugeVec
	health            *prometheus.GaugeVec
	retries           *prometheus.CounterVec
}

// NewMetrics creates the pool's collectors and registers them on reg
// (nil: not registered, for tests that do not look).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "guardian", Subsystem: "account", Name: "ratelimit_limit",
			Help: "Limit per axis from the account's last anthropic-ratelimit-*-limit header.",
		}, []string{"account", "axis"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "guardian", Subsystem: "account", Name: "ratelimit_remaining",
			Help: "Remaining per axis from the account's last anthropic-ratelimit-*-remaining header (token axes rounded to thousands by Anthropic).",
		}, []string{"account", "axis"}),
		coolUntil: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "guardian", Subsystem: "account", Name: "cooldown_until_seconds",
			Help: "Unix time until which the account cools down after a 429.",
		}, []string{"account"}),
		keyDisabled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "guardian", Subsystem: "key", Name: "disabled",
			Help: "1 when the pool key is out of service (401/403 from Anthropic, or no key configured).",
		}, []string{"account", "key_id"}),
		upstreamResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "upstream", Name: "responses_total",
			Help: "Responses from Anthropic per account and HTTP status, retried attempts included.",
		}, []string{"account", "code"}),
	}
	m.reserved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "guardian", Subsystem: "account", Name: "reserved_tokens_total",
		Help: "Tokens reserved before sending, per account and axis (input, output), counted when Anthropic answered the request; compare with actual_tokens_total for the estimation error.",
	}, []string{"account", "axis"})
	m.actual = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "guardian", Subsystem: "account", Name: "actual_tokens_total",
		Help: "Tokens the responses reported for settled reservations, per account and axis (input counts toward ITPM: uncached input plus cache writes).",
	}, []string{"account", "axis"})
	m.limitReported = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "guardian", Subsystem: "account", Name: "limit_mismatch",
		Help: "A limit Anthropic reports that differs from the configured one (the tier changed), per account, class and axis; the value is Anthropic's.",
	}, []string{"account", "class", "axis"})
	m.reservations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "guardian", Subsystem: "account", Name: "reservations_total",
		Help: "Reservation attempts per account and result (taken, denied).",
	}, []string{"account", "result"})
	m.headroom = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "guardian", Subsystem: "account", Name: "headroom",
		Help: "What the account's own buckets held after its last decision, per class and axis (rpm, itpm, otpm).",
	}, []string{"account", "class", "axis"})
	m.inflight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "guardian", Subsystem: "account", Name: "in_flight",
		Help: "Requests holding a reservation on the account (this replica).",
	}, []string{"account"})
	m.health = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "guardian", Subsystem: "account", Name: "health",
		Help: "Share of the account's recent answers that were not 429/5xx (exponentially weighted, 1 = healthy).",
	}, []string{"account"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "guardian", Subsystem: "upstream", Name: "retries_total",
		Help: "Upstream attempts after the first (x-envoy-attempt-count > 1), per account used.",
	}, []string{"account"})
	if reg != nil {
		reg.MustRegister(m.limit, m.remaining, m.coolUntil, m.keyDisabled, m.upstreamResponses,
			m.reserved, m.actual, m.limitReported, m.reservations, m.headroom, m.inflight, m.health, m.retries)
	}
	return m
}

func statusLabel(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
}

// RemainingGauge returns the remaining-per-axis gauge of an account, for
// tests and dashboards that read it directly.
func (m *Metrics) RemainingGauge(account, axis string) prometheus.Gauge {
	return m.remaining.WithLabelValues(account, axis)
}

// DisabledGauge returns the disabled gauge of a key.
func (m *Metrics) DisabledGauge(account, keyID string) prometheus.Gauge {
	return m.keyDisabled.WithLabelValues(account, keyID)
}

// Retried counts an upstream attempt after the first on account.
func (m *Metrics) Retried(account string) { m.retries.WithLabelValues(account).Inc() }

// RetriesCounter returns the retries counter of an account (tests).
func (m *Metrics) RetriesCounter(account string) prometheus.Counter {
	return m.retries.WithLabelValues(account)
}
