package policy

import (
	"math"
	"sync"
	"time"
)

// HeadroomSource reports Claude's capacity for a model class: the share
// (0..1) still free on the tightest axis, and how long until the soonest
// cool-down ends when every account serving the class cools down (0 when
// one is serving). The caller provides it (the gateway: over its key pool).
type HeadroomSource interface {
	Headroom(class string, now time.Time) (headroom float64, coolDown time.Duration)
}

// HealthSource reports whether a backend is healthy.
type HealthSource interface {
	Healthy() bool
}

// LiveState assembles [State] from its sources. Nil sources mean: full
// headroom, no errors, Ollama not configured, empty queue.
type LiveState struct {
	Headroom    HeadroomSource
	Rates       *UpstreamRates
	Ollama      HealthSource // nil: no Ollama configured
	OllamaModel string
	// QueueDepth reports the admission queue's length (nil: 0).
	QueueDepth func() int
	Now        func() time.Time
}

// PolicyState implements [StateSource].
func (l *LiveState) PolicyState() State {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	var s State
	for i, c := range Classes {
		cs := ClassState{Headroom: 1}
		if l.Headroom != nil {
			h, cool := l.Headroom.Headroom(c, now)
			cs.Headroom = quantize(h)
			if cool > 0 {
				cs.CoolingDown, cs.CooldownMS = true, cool.Milliseconds()
			}
		}
		if l.Rates != nil {
			e, rl := l.Rates.Rates(c, now)
			cs.ErrorRate, cs.RateLimitedRate = quantize(e), quantize(rl)
		}
		s.Classes[i] = cs
	}
	if l.QueueDepth != nil {
		s.QueueDepth = l.QueueDepth()
	}
	if l.Ollama != nil {
		s.Ollama = Ollama{Configured: true, Healthy: l.Ollama.Healthy(), Model: l.OllamaModel}
	}
	return s
}

// quantize rounds a share to 1/100: the engine reuses the state's Rego
// value while the state is unchanged, and a policy has no use for more
// digits.
func quantize(f float64) float64 {
	switch {
	case f <= 0 || math.IsNaN(f):
		return 0
	case f >= 1:
		return 1
	}
	return math.Round(f*100) / 100
}

// UpstreamRates keeps, per model class, the recent shares of upstream
// responses that were errors (5xx, 529) and 429s, as exponentially
// decaying counts (time constant Tau), so a burst of failures fades once
// it stops even if no request is sent to Claude meanwhile.
type UpstreamRates struct {
	mu      sync.Mutex
	classes [len(Classes)]decaying
}

// Tau is the decay time constant of UpstreamRates.
const Tau = 30 * time.Second

// minSamples is how many (decayed) responses a rate needs before it is
// reported: one failure alone is not a failing upstream.
const minSamples = 5

type decaying struct {
	n, errs, limited float64
	at               time.Time
}

func (d *decaying) decay(now time.Time) {
	if !d.at.IsZero() && now.After(d.at) {
		f := math.Exp(-float64(now.Sub(d.at)) / float64(Tau))
		d.n, d.errs, d.limited = d.n*f, d.errs*f, d.limited*f
	}
	if now.After(d.at) {
		d.at = now
	}
}

func classIndex(class string) int {
	for i, c := range Classes {
		if c == class {
			return i
		}
	}
	return -1
}

// Observe records one upstream response status for the model's class.
func (r *UpstreamRates) Observe(model string, status int, now time.Time) {
	i := classIndex(ClassOf(model))
	if i < 0 || status == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := &r.classes[i]
	d.decay(now)
	d.n++
	switch {
	case status == 429:
		d.limited++
	case status >= 500:
		d.errs++
	}
}

// Rates returns the class's recent error and 429 shares.
func (r *UpstreamRates) Rates(class string, now time.Time) (errorRate, rateLimited float64) {
	i := classIndex(class)
	if i < 0 {
		return 0, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := &r.classes[i]
	d.decay(now)
	if d.n < minSamples {
		return 0, 0
	}
	return d.errs / d.n, d.limited / d.n
}
