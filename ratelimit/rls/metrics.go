package rls

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/claude-guardian/claude-guardian/ratelimit/rlsconfig"
)

// MaxDynamicKeys bounds the distinct request-specific stats keys
// (detailed_metric, value_to_metric) per process; beyond it they are
// counted under the rule's own key with the suffix ".__other".
const MaxDynamicKeys = 1000

// Fallback gauge values.
const (
	modeShared = iota
	modeLocalShare
	modeFailOpen
	modeFailError
)

func fallbackGauge(m FallbackMode) float64 {
	switch m {
	case FailOpen:
		return modeFailOpen
	case FailError:
		return modeFailError
	}
	return modeLocalShare
}

// Metrics are the RLS's Prometheus series. Their meaning follows
// envoyproxy/ratelimit's stats: total_hits, over_limit, near_limit,
// within_limit and shadow_mode are incremented by hits (not requests), per
// domain and stats key (the rule's config path, e.g.
// "messaging.message_type_marketing.to_number"). A nil *Metrics records
// nothing.
type Metrics struct {
	totalHits, overLimit, nearLimit, withinLimit, shadowMode *prometheus.CounterVec

	domainNotFound prometheus.Counter
	errors         *prometheus.CounterVec
	redisErrors    *prometheus.CounterVec
	redisSeconds   prometheus.Histogram
	fallbackMode   prometheus.Gauge
	fallbackCalls  prometheus.Counter
	configLoads    *prometheus.CounterVec
	leases         *prometheus.CounterVec

	stats   sync.Map // stats key → *keyStats
	dynamic atomic.Int64
}

// keyStats are the five counters of one stats key, resolved once.
type keyStats struct {
	total, over, near, within, shadow prometheus.Counter
}

// NewMetrics registers the RLS series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	hits := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "rls", Name: name + "_total", Help: help,
		}, []string{"domain", "key"})
	}
	m := &Metrics{
		totalHits:   hits("total_hits", "Hits (hits_addend) checked against a rule, as envoyproxy/ratelimit's total_hits."),
		overLimit:   hits("over_limit", "Hits over the limit."),
		nearLimit:   hits("near_limit", "Hits that passed above 80% of the limit."),
		withinLimit: hits("within_limit", "Hits within the limit."),
		shadowMode:  hits("shadow_mode", "Hits over the limit of a shadow_mode rule (answered OK)."),
		domainNotFound: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "rls", Name: "domain_not_found_total",
			Help: "Calls for a domain no config file names (answered OK).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "rls", Name: "errors_total",
			Help: "Decisions that failed and were answered OK (or UNAVAILABLE in error mode), by reason.",
		}, []string{"reason"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "rls", Name: "redis_errors_total",
			Help: "Failed or slow calls to Redis, by reason (timeout, connection, closed, other).",
		}, []string{"reason"}),
		redisSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "guardian", Subsystem: "rls", Name: "redis_seconds",
			Help:    "Latency of calls to Redis.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}),
		fallbackMode: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "guardian", Subsystem: "rls", Name: "fallback_mode",
			Help: "0: deciding on Redis (or memory only); 1: local share fallback; 2: fail open; 3: failing with UNAVAILABLE.",
		}),
		fallbackCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "rls", Name: "fallback_decisions_total",
			Help: "Store calls answered by the fallback.",
		}),
		configLoads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "rls", Name: "config_loads_total",
			Help: "Loads of the rate-limit config directory, by result (success, error).",
		}, []string{"result"}),
		leases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: "rls", Name: "lease_events_total",
			Help: "Concurrency lease events (acquired, denied, released, renewed, unknown, no_id).",
		}, []string{"event"}),
	}
	reg.MustRegister(m.totalHits, m.overLimit, m.nearLimit, m.withinLimit, m.shadowMode,
		m.domainNotFound, m.errors, m.redisErrors, m.redisSeconds, m.fallbackMode,
		m.fallbackCalls, m.configLoads, m.leases)
	return m
}

// forKey returns the counters of a stats key, bounding dynamic keys.
func (m *Metrics) forKey(r *rlsconfig.Rule, key string, dynamic bool) *keyStats {
	if v, ok := m.stats.Load(key); ok {
		return v.(*keyStats)
	}
	if dynamic && m.dynamic.Add(1) > MaxDynamicKeys {
		m.dynamic.Add(-1)
		return m.forKey(r, r.Key+".__other", false)
	}
	ks := &keyStats{
		total:  m.totalHits.WithLabelValues(r.Domain, key),
		over:   m.overLimit.WithLabelValues(r.Domain, key),
		near:   m.nearLimit.WithLabelValues(r.Domain, key),
		within: m.withinLimit.WithLabelValues(r.Domain, key),
		shadow: m.shadowMode.WithLabelValues(r.Domain, key),
	}
	if v, loaded := m.stats.LoadOrStore(key, ks); loaded {
		if dynamic {
			m.dynamic.Add(-1)
		}
		return v.(*keyStats)
	}
	return ks
}

// record counts one descriptor's hits the way envoyproxy/ratelimit does:
// before and after are the usage around the hit, limit the rule's limit.
func (m *Metrics) record(r *rlsconfig.Rule, key string, dynamic bool, hits, before, after, limit uint64, over, shadow bool) {
	if m == nil || hits == 0 && !over {
		return
	}
	ks := m.forKey(r, key, dynamic)
	ks.total.Add(float64(hits))
	near := uint64(float64(limit) * 0.8)
	switch {
	case over && before >= limit:
		ks.over.Add(float64(hits))
		if shadow {
			ks.shadow.Add(float64(hits))
		}
	case over:
		ks.over.Add(float64(after - limit))
		ks.near.Add(float64(limit - max(near, before)))
		if shadow {
			ks.shadow.Add(float64(after - limit))
		}
	default:
		if after > near {
			ks.near.Add(float64(after - max(near, before)))
		}
		ks.within.Add(float64(hits))
	}
}

func (m *Metrics) notFound() {
	if m != nil {
		m.domainNotFound.Inc()
	}
}

func (m *Metrics) error(reason string) {
	if m != nil {
		m.errors.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) lease(event string) {
	if m != nil {
		m.leases.WithLabelValues(event).Inc()
	}
}

func (m *Metrics) redisError(reason string) {
	if m != nil {
		m.redisErrors.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) observeRedis(d time.Duration) {
	if m != nil {
		m.redisSeconds.Observe(d.Seconds())
	}
}

func (m *Metrics) setMode(v float64) {
	if m != nil {
		m.fallbackMode.Set(v)
	}
}

func (m *Metrics) fallbackDecision() {
	if m != nil {
		m.fallbackCalls.Inc()
	}
}

// ConfigLoaded counts a config load; err nil is a success.
func (m *Metrics) ConfigLoaded(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.configLoads.WithLabelValues("error").Inc()
		return
	}
	m.configLoads.WithLabelValues("success").Inc()
}
