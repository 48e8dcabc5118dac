// Package keypool holds the Anthropic accounts and keys the gateway sends
// requests with, and what their responses taught it: the last
// anthropic-ratelimit-* reading of each account, cool-downs after 429s, and
// keys disabled after 401/403.
//
// Keys of one account share its limits (Anthropic limits organizations, not
// keys). Key secrets never leave this package except through Key.Secret, and
// never reach logs, metrics or errors.
package keypool

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// Pool is the set of accounts and keys. It is safe for concurrent use.
type Pool struct {
	accounts   []*Account
	keys       []*Key
	byID       map[string]*Key
	now        func() time.Time
	log        *slog.Logger
	metrics    *Metrics
	engine     bucket.Engine
	leases     bucket.Leases // nil: no concurrency caps
	leaseTTL   time.Duration
	outAtStart bool
	affinity   affinityTable // conversation hash -> account used last

	changedMu sync.Mutex
	changed   chan struct{}
}

// Account is one Anthropic organization.
type Account struct {
	Name   string
	Limits config.Limits
	Keys   []*Key

	weight      float64
	concurrency int64
	limits      map[Class]config.Limits
	buckets     map[Class]*classBuckets
	classes     map[Class]*classState
	inflight    atomic.Int64
	next        atomic.Uint32 // round-robin among the account's keys

	mu        sync.Mutex
	reading   anthropic.RateLimitReading
	readAt    time.Time
	coolUntil time.Time
	failures  int     // consecutive 529/5xx answers
	health    float64 // EWMA of answers that were not 429/5xx
	mismatch  map[string]int64
}

// Key is one API key of an account.
type Key struct {
	ID      string
	Account *Account
	secret  string
	now     func() time.Time
	// disabled is why the key is out of service and until when, or nil:
	// read without a lock, replaced whole under mu (with the gauge).
	disabled atomic.Pointer[keyOut]
	mu       sync.Mutex
}

// keyOut says why a key is out of service, and until when (Unix ns; 0:
// for good). Past until the key is on trial. strikes counts the
// rejections in a row, which set the period.
type keyOut struct {
	reason  string
	until   int64
	strikes int
}

func (o *keyOut) over(now time.Time) bool { return o.until != 0 && now.UnixNano() >= o.until }

// Rejected keys come back on trial after rejectedFor, doubling with each
// rejection in a row up to rejectedMax: a key revoked for good costs, once
// an hour, the attempts sent on it before its trial's first answer (each
// retried with another key); a rejection Anthropic makes in error does not
// take the pool down until a restart.
const (
	rejectedFor = time.Minute
	rejectedMax = time.Hour
)

// Secret returns the key itself, for the upstream request only.
func (k *Key) Secret() string { return k.secret }

// Disabled returns why the key is out of service, or "" (in service, or
// back on trial after a rejection).
func (k *Key) Disabled() string {
	o := k.disabled.Load()
	if o == nil || o.over(k.now()) {
		return ""
	}
	return o.reason
}

// Options are a Pool's collaborators; zero values get defaults.
type Options struct {
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *Metrics
	// Engine holds the accounts' buckets (memory, or Redis to share them
	// between replicas). Without one, Reserve fails; Pick still works.
	Engine bucket.Engine
	// Leases enforce concurrency caps (tenants', accounts'); nil: none.
	Leases bucket.Leases
	// LeaseTTL is a lease's life without renewal (default 1 m).
	LeaseTTL time.Duration
	// OutputAtStart makes a request wait until its whole output
	// reservation fits (Anthropic's mid-2025 rule: OTPM estimated from
	// max_tokens at the start). By default a request may start while the
	// account has any output tokens left, as Anthropic's current docs say
	// ("OTPM rate limits are evaluated in real time as output tokens are
	// produced"); its reservation may then leave the bucket in debt, which
	// holds later requests back until refilled or refunded at settlement.
	OutputAtStart bool
}

// New builds a pool from configured accounts. Keys whose environment
// variable was unset start disabled, with a warning naming the variable.
func New(accounts []config.Account, o Options) *Pool {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = time.Minute
	}
	p := &Pool{byID: map[string]*Key{}, now: o.Now, log: o.Logger, metrics: o.Metrics, engine: o.Engine,
		leases: o.Leases, leaseTTL: o.LeaseTTL, outAtStart: o.OutputAtStart, changed: make(chan struct{})}
	for _, ca := range accounts {
		a := newAccount(ca)
		for _, ck := range ca.Keys {
			k := &Key{ID: ck.ID, Account: a, secret: ck.Key, now: o.Now}
			if ck.MissingEnv != "" {
				p.disable(k, "environment variable "+ck.MissingEnv+" is not set", false)
				p.log.Warn("pool key disabled: set the environment variable and restart",
					"account", a.Name, "key_id", k.ID, "env", ck.MissingEnv)
			} else {
				p.metrics.keyDisabled.WithLabelValues(a.Name, k.ID).Set(0)
			}
			a.Keys = append(a.Keys, k)
			p.keys = append(p.keys, k)
			p.byID[k.ID] = k
		}
		p.accounts = append(p.accounts, a)
	}
	return p
}

// Accounts returns the accounts in configuration order.
func (p *Pool) Accounts() []*Account { return p.accounts }

// Key returns the key with the given id, or nil.
func (p *Pool) Key(id string) *Key { return p.byID[id] }

// Usable reports whether any key is in service.
func (p *Pool) Usable() bool {
	for _, k := range p.keys {
		if k.Disabled() == "" {
			return true
		}
	}
	return false
}

// Pick returns the first key in service whose account is not cooling down;
// when every account cools down, the one whose cool-down ends first. It
// returns nil when no key is in service.
func (p *Pool) Pick() *Key {
	now := p.now()
	var best *Key
	var bestUntil time.Time
	for _, k := range p.keys {
		if k.Disabled() != "" {
			continue
		}
		until := k.Account.CoolingUntil()
		if !until.After(now) {
			return k
		}
		if best == nil || until.Before(bestUntil) {
			best, bestUntil = k, until
		}
	}
	return best
}

// CoolingUntil returns when the account's cool-down ends (zero if none).
func (a *Account) CoolingUntil() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.coolUntil
}

// Reading returns the account's last rate-limit reading and when it came.
func (a *Account) Reading() (anthropic.RateLimitReading, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reading, a.readAt
}

// ObserveClass records one upstream response sent with key k for a model
// of class c: its status and anthropic-ratelimit-* headers. A 429 cools the
// account down until retry-after (or the latest reset it reported); 529
// and other 5xx cool it down briefly, doubling with each failure in a row
// (1 s up to 30 s); 401 and 403 take the key out of service for a minute,
// doubling while its trials are rejected (up to an hour); a 2xx on trial
// puts it back.
func (p *Pool) ObserveClass(k *Key, c Class, status int, r *anthropic.RateLimitReading) {
	p.ObserveSent(k, c, status, r, p.now())
}

// ObserveSent is ObserveClass for an attempt sent at sent: a key on trial
// comes back only for an attempt sent once its trial began.
func (p *Pool) ObserveSent(k *Key, c Class, status int, r *anthropic.RateLimitReading, sent time.Time) {
	a := k.Account
	now := p.now()
	p.metrics.upstreamResponses.WithLabelValues(a.Name, statusLabel(status)).Inc()
	if r.Any() {
		st := a.classes[c]
		st.mu.Lock()
		st.reading, st.readAt = *r, now
		st.mu.Unlock()
		p.checkLimits(a, c, r)
	}
	a.mu.Lock()
	if r.Any() {
		a.reading, a.readAt = *r, now
	}
	var cool time.Time
	switch {
	case status == http.StatusTooManyRequests:
		cool = now.Add(retryWait(r, now))
	case status >= 500:
		a.failures++
		cool = now.Add(min(time.Second<<min(a.failures-1, 5), 30*time.Second))
	case status >= 200 && status < 300:
		a.failures = 0
	}
	ok := 1.0
	if status == http.StatusTooManyRequests || status >= 500 {
		ok = 0
	}
	a.health += healthWeight * (ok - a.health)
	health := a.health
	if cool.After(a.coolUntil) {
		a.coolUntil = cool
	} else {
		cool = time.Time{}
	}
	a.mu.Unlock()
	for _, ax := range anthropic.Axes {
		if x := r.Axes[ax]; x.Present {
			p.metrics.limit.WithLabelValues(a.Name, ax.String()).Set(float64(x.Limit))
			p.metrics.remaining.WithLabelValues(a.Name, ax.String()).Set(float64(x.Remaining))
		}
	}
	p.metrics.health.WithLabelValues(a.Name).Set(health)
	if !cool.IsZero() {
		p.metrics.coolUntil.WithLabelValues(a.Name).Set(float64(cool.UnixMilli()) / 1000)
		// Wake waiters when the cool-down ends.
		time.AfterFunc(cool.Sub(now), p.notify)
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		if period, ok := p.disable(k, "Anthropic answered "+http.StatusText(status), true); ok {
			p.log.Error("pool key disabled: Anthropic rejected it; replace it if it was revoked (it is tried again after the period)",
				"account", a.Name, "key_id", k.ID, "status", status, "period", period.String())
		}
	case status >= 200 && status < 300:
		if k.disabled.Load() != nil && p.accept(k, sent) { // (the load spares the lock in service)
			p.log.Info("pool key back in service: Anthropic accepted it on trial", "account", a.Name, "key_id", k.ID)
		}
	}
}

// accept puts a key on trial back in service when the accepted attempt was
// sent once the trial began (one sent before the rejection may answer
// late); it reports whether it did.
func (p *Pool) accept(k *Key, sent time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	o := k.disabled.Load()
	if o == nil || o.until == 0 || sent.UnixNano() < o.until {
		return false
	}
	k.disabled.Store(nil)
	p.metrics.keyDisabled.WithLabelValues(k.Account.Name, k.ID).Set(0)
	p.notify()
	return true
}

// checkLimits logs and exports a limit Anthropic reports that differs from
// the configured one: the account's tier changed.
func (p *Pool) checkLimits(a *Account, c Class, r *anthropic.RateLimitReading) {
	l := a.limits[c]
	for _, x := range []struct {
		axis       anthropic.Axis
		configured int64
	}{{anthropic.Requests, l.RPM}, {anthropic.InputTokens, l.ITPM}, {anthropic.OutputTokens, l.OTPM}} {
		got := r.Axis(x.axis)
		if !got.Present || x.configured <= 0 || got.Limit == x.configured {
			continue
		}
		id := string(c) + "/" + x.axis.String()
		a.mu.Lock()
		if a.mismatch == nil {
			a.mismatch = map[string]int64{}
		}
		seen := a.mismatch[id] == got.Limit
		a.mismatch[id] = got.Limit
		a.mu.Unlock()
		p.metrics.limitReported.WithLabelValues(a.Name, string(c), x.axis.String()).Set(float64(got.Limit))
		if !seen {
			p.log.Warn("Anthropic reports a limit other than the configured one: the account's tier changed; update guardian.yaml",
				"account", a.Name, "class", c, "axis", x.axis.String(), "configured", x.configured, "reported", got.Limit)
		}
	}
}

// healthWeight is the weight of the newest answer in an account's health.
const healthWeight = 0.1

// Health is the account's recent share of answers that were not 429/5xx.
func (a *Account) Health() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.health
}

// Now is the pool's clock.
func (p *Pool) Now() time.Time { return p.now() }

// Metrics returns the pool's metrics.
func (p *Pool) Metrics() *Metrics { return p.metrics }

// disable takes k out of service: for good, or (trial) for rejectedFor,
// doubled for each rejection in a row. It reports the period and whether k
// was in service (or on trial).
func (p *Pool) disable(k *Key, reason string, trial bool) (time.Duration, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := p.now()
	old := k.disabled.Load()
	if old != nil && !old.over(now) {
		return 0, false
	}
	out := &keyOut{reason: reason}
	var period time.Duration
	if trial {
		if old != nil {
			out.strikes = old.strikes
		}
		period = min(rejectedFor<<min(out.strikes, 10), rejectedMax)
		out.strikes++
		out.until = now.Add(period).UnixNano()
		time.AfterFunc(period, p.notify) // waiters may use it again
	}
	k.disabled.Store(out)
	p.metrics.keyDisabled.WithLabelValues(k.Account.Name, k.ID).Set(1)
	return period, true
}

// retryWait is how long a 429 keeps the account out: retry-after when
// given, else until the latest reset among exhausted axes, else one second.
func retryWait(r *anthropic.RateLimitReading, now time.Time) time.Duration {
	if r.HasRetryAfter {
		return r.RetryAfter
	}
	var wait time.Duration
	for _, x := range r.Axes {
		if x.Present && x.Remaining == 0 {
			if d := x.Reset.Sub(now); d > wait {
				wait = d
			}
		}
	}
	if wait <= 0 {
		wait = time.Second
	}
	return wait
}
