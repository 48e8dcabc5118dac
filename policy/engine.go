package policy

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Options configure an [Engine].
type Options struct {
	Log     *slog.Logger
	Metrics *Metrics // nil: metrics not collected
	// LogSampleRate is the share (0..1) of decisions logged at Info as
	// "policy decision"; 0 logs none. Failures are always logged (Warn).
	LogSampleRate float64
}

// Engine evaluates the current policy version. Versions are swapped
// atomically: a request evaluates on the version it loaded, start to end.
type Engine struct {
	cur     atomic.Pointer[Version]
	state   stateCache
	log     *slog.Logger
	metrics *Metrics
	sample  float64
}

// NewEngine returns an engine serving v (which may be nil until a first
// Swap: every decision is then the safe default).
func NewEngine(v *Version, o Options) *Engine {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	e := &Engine{log: o.Log, metrics: o.Metrics, sample: o.LogSampleRate}
	if v != nil {
		e.Swap(v)
	}
	return e
}

// Swap makes v the serving version.
func (e *Engine) Swap(v *Version) {
	e.cur.Store(v)
	e.metrics.swapped(v)
}

// Current returns the serving version, or nil.
func (e *Engine) Current() *Version { return e.cur.Load() }

// Metrics returns the engine's collectors.
func (e *Engine) Metrics() *Metrics { return e.metrics }

// Decide evaluates the policy on in. On an error (no policy, evaluation
// failure, undefined or malformed decision) it returns [SafeDefault] with
// the error, counts it in guardian_policy_errors_total and logs it; the
// caller applies the returned decision either way. requestID only labels
// the logs.
func (e *Engine) Decide(ctx context.Context, in *Input, requestID string) (Decision, error) {
	start := time.Now()
	v := e.cur.Load()
	var d Decision
	var err error
	if v == nil {
		err = ErrNoPolicy
	} else {
		d, err = v.eval(ctx, &e.state, in)
	}
	e.metrics.seconds.Observe(time.Since(start).Seconds())
	if err != nil {
		d = SafeDefault(in)
		e.metrics.errors.WithLabelValues(errorCode(err)).Inc()
		rev := ""
		if v != nil {
			rev = v.Revision
		}
		e.log.Warn("policy decision failed: using the safe default (Claude, model unchanged)",
			"request_id", requestID, "tenant", tenantName(in), "revision", rev, "err", err)
	}
	e.metrics.decided(&d)
	if e.sample > 0 && (e.sample >= 1 || rand.Float64() < e.sample) {
		e.log.Info("policy decision", "request_id", requestID, "tenant", tenantName(in),
			"backend", d.Backend, "model", d.Model, "requested_model", in.Request.Model,
			"action", d.Action, "priority", d.Priority, "reason", d.Reason, "revision", d.Revision)
	}
	return d, err
}

func tenantName(in *Input) string {
	if in.Tenant == nil {
		return ""
	}
	return in.Tenant.Name
}
