package rls

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// FallbackMode is what a replica does while its shared store (Redis) is
// unreachable, slow or failing over.
type FallbackMode uint8

const (
	// LocalShare decides on an in-memory store with each limit divided by
	// the number of replicas (rounded up, at least 1): together the
	// replicas admit about the configured limit. The default.
	LocalShare FallbackMode = iota
	// FailOpen admits every request.
	FailOpen
	// FailError answers the RLS call with UNAVAILABLE, so that Envoy applies
	// its failure_mode_deny.
	FailError
)

// String returns the config spelling.
func (m FallbackMode) String() string {
	switch m {
	case FailOpen:
		return "fail_open"
	case FailError:
		return "error"
	}
	return "local_share"
}

// ParseFallbackMode parses local_share, fail_open or error.
func ParseFallbackMode(s string) (FallbackMode, bool) {
	switch s {
	case "", "local_share":
		return LocalShare, true
	case "fail_open":
		return FailOpen, true
	case "error":
		return FailError, true
	}
	return 0, false
}

// ErrUnavailable is returned by a FailError store while the shared store is
// down.
var ErrUnavailable = errors.New("rls: shared store unavailable")

// FailoverOptions configures [NewFailover].
type FailoverOptions struct {
	Mode FallbackMode
	// Replicas divides every limit in LocalShare mode. Default 1.
	Replicas int
	// Timeout bounds one call to the shared store. Default 50ms.
	Timeout time.Duration
	// ProbeEvery is how often a tripped store probes the shared one.
	// Default 1s.
	ProbeEvery time.Duration
	// Probe checks the shared store (e.g. Redis PING).
	Probe   func(context.Context) error
	Logger  *slog.Logger
	Metrics *Metrics
	// Clock for the local store; nil means time.Now.
	Clock func() time.Time
}

// Failover is a Store that uses a shared store while it answers and a local
// fallback while it does not. One failed or slow call trips it; a
// background probe brings it back once the shared store answers again.
type Failover struct {
	shared, local Store
	opts          FailoverOptions
	tripped       atomic.Bool

	mu      sync.Mutex
	probing bool
	quit    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// NewFailover wraps shared. Close stops its probe.
func NewFailover(shared Store, opts FailoverOptions) *Failover {
	if opts.Replicas < 1 {
		opts.Replicas = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 50 * time.Millisecond
	}
	if opts.ProbeEvery <= 0 {
		opts.ProbeEvery = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Failover{shared: shared, local: NewMemoryStore(opts.Clock), opts: opts, quit: make(chan struct{})}
	opts.Metrics.setMode(modeShared)
	return f
}

// Close stops the probe.
func (f *Failover) Close() {
	f.once.Do(func() { close(f.quit) })
	f.wg.Wait()
}

// Tripped reports whether the fallback is in use.
func (f *Failover) Tripped() bool { return f.tripped.Load() }

// sharedCall runs fn on the shared store within the timeout; ok reports
// whether it answered (an error that is the caller's fault also counts as
// an answer and is returned).
func (f *Failover) sharedCall(ctx context.Context, fn func(ctx context.Context) error) (ok bool, err error) {
	if f.tripped.Load() {
		return false, nil
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	err = fn(cctx)
	cancel()
	return f.answered(ctx, start, err)
}

// bounded is ctx with the store timeout from start as its deadline, without
// a timer, for Take and Adjust (bucketOp), the calls of every decision: the
// bucket engine bounds each Redis round trip by the earliest deadline of
// its callers, and callers waiting for a round trip check their deadline
// every few milliseconds. A timer per decision costs three allocations and
// a timer-heap insertion. Leases and fixed windows (sharedCall) keep a
// timer: fixed windows do not go through the engine.
// TestHungRedisAnswersByDeadline shows callers answered by their deadline.
func (f *Failover) bounded(ctx context.Context, start time.Time) context.Context {
	return &deadlineCtx{Context: ctx, at: start.Add(f.opts.Timeout)}
}

// answered records a shared-store call that began at start and ended with
// err, trips the fallback if the store failed, and reports whether the
// store answered.
func (f *Failover) answered(ctx context.Context, start time.Time, err error) (bool, error) {
	f.opts.Metrics.observeRedis(time.Since(start))
	if err == nil || callerError(err) {
		return true, err
	}
	if ctx.Err() != nil { // the caller gave up: not the store's fault
		return true, err
	}
	f.trip(err)
	return false, nil
}

// deadlineCtx is its parent with a deadline that no timer enforces: Done is
// the parent's, Err reports DeadlineExceeded once the deadline has passed.
type deadlineCtx struct {
	context.Context
	at time.Time
}

func (c *deadlineCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.at) {
		return d, true
	}
	return c.at, true
}

func (c *deadlineCtx) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.at) {
		return context.DeadlineExceeded
	}
	return nil
}

// callerError reports errors that come from the request, not the store.
func callerError(err error) bool {
	return errors.Is(err, bucket.ErrInvalidLimit) || errors.Is(err, bucket.ErrInvalidKey) ||
		errors.Is(err, bucket.ErrCrossSlot) || errors.Is(err, bucket.ErrDuplicateKey) ||
		errors.Is(err, bucket.ErrNegativeN)
}

// errorCode is the metric reason of a shared-store error.
func errorCode(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &ne), errors.Is(err, net.ErrClosed):
		return "connection"
	case errors.Is(err, bucket.ErrClosed):
		return "closed"
	}
	return "other"
}

func (f *Failover) trip(err error) {
	f.opts.Metrics.redisError(errorCode(err))
	if f.tripped.Swap(true) {
		return
	}
	f.opts.Logger.Warn("rate-limit store unreachable: using the fallback", "mode", f.opts.Mode.String(), "err", err)
	f.opts.Metrics.setMode(fallbackGauge(f.opts.Mode))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.probing || f.opts.Probe == nil {
		return
	}
	f.probing = true
	f.wg.Add(1)
	go f.probe()
}

func (f *Failover) probe() {
	defer f.wg.Done()
	t := time.NewTicker(f.opts.ProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-f.quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(f.opts.Timeout, 100*time.Millisecond))
		err := f.opts.Probe(ctx)
		cancel()
		if err != nil {
			continue
		}
		f.mu.Lock()
		f.probing = false
		f.mu.Unlock()
		f.tripped.Store(false)
		f.opts.Metrics.setMode(modeShared)
		f.opts.Logger.Info("rate-limit store is back: leaving the fallback")
		return
	}
}

// share scales n down to this replica's share, rounding up, at least 1.
func (f *Failover) share(n int64) int64 {
	if n <= 0 {
		return n
	}
	r := int64(f.opts.Replicas)
	return max(1, (n+r-1)/r)
}

func (f *Failover) scaled(reqs []bucket.Request) []bucket.Request {
	out := make([]bucket.Request, len(reqs))
	copy(out, reqs)
	for i := range out {
		l := &out[i].Limit
		l.Capacity, l.Burst = f.share(l.Capacity), f.share(l.Burst)
	}
	return out
}

func (f *Failover) openDecision(reqs []bucket.Request) bucket.Decision {
	d := bucket.Decision{Allowed: true, At: time.Now(), Buckets: make([]bucket.Result, len(reqs))}
	for i, r := range reqs {
		d.Buckets[i] = bucket.Result{Allowed: true, Limit: r.Limit.Capacity, Remaining: r.Limit.Capacity}
	}
	return d
}

func (f *Failover) bucketOp(ctx context.Context, reqs []bucket.Request, take bool) (bucket.Decision, error) {
	if !f.tripped.Load() { // the hot path, without sharedCall's closure
		start := time.Now()
		sctx := f.bounded(ctx, start)
		var d bucket.Decision
		var err error
		if take {
			d, err = f.shared.Take(sctx, reqs)
		} else {
			d, err = f.shared.Adjust(sctx, reqs)
		}
		if ok, err := f.answered(ctx, start, err); ok {
			return d, err
		}
	}
	f.opts.Metrics.fallbackDecision()
	switch f.opts.Mode {
	case FailOpen:
		return f.openDecision(reqs), nil
	case FailError:
		return bucket.Decision{}, ErrUnavailable
	}
	if take {
		return f.local.Take(ctx, f.scaled(reqs))
	}
	return f.local.Adjust(ctx, f.scaled(reqs))
}

// Take implements [Store.Take].
func (f *Failover) Take(ctx context.Context, reqs []bucket.Request) (bucket.Decision, error) {
	return f.bucketOp(ctx, reqs, true)
}

// Adjust implements [Store.Adjust].
func (f *Failover) Adjust(ctx context.Context, reqs []bucket.Request) (bucket.Decision, error) {
	return f.bucketOp(ctx, reqs, false)
}

// Acquire implements [Store.Acquire].
func (f *Failover) Acquire(ctx context.Context, key string, limit int64, ttl time.Duration) (bucket.Lease, error) {
	var l bucket.Lease
	ok, err := f.sharedCall(ctx, func(ctx context.Context) error {
		var err error
		l, err = f.shared.Acquire(ctx, key, limit, ttl)
		return err
	})
	if ok {
		return l, err
	}
	f.opts.Metrics.fallbackDecision()
	switch f.opts.Mode {
	case FailOpen:
		return bucket.Lease{Acquired: true, Limit: limit}, nil
	case FailError:
		return bucket.Lease{}, ErrUnavailable
	}
	return f.local.Acquire(ctx, key, f.share(limit), ttl)
}

// Renew implements [Store.Renew].
func (f *Failover) Renew(ctx context.Context, key, id string, ttl time.Duration) (bool, error) {
	var done bool
	ok, err := f.sharedCall(ctx, func(ctx context.Context) error {
		var err error
		done, err = f.shared.Renew(ctx, key, id, ttl)
		return err
	})
	if ok {
		return done, err
	}
	return f.local.Renew(ctx, key, id, ttl)
}

// Release implements [Store.Release]. A lease taken from one store and
// released while the other is in use ends by its TTL.
func (f *Failover) Release(ctx context.Context, key, id string) (bool, error) {
	var done bool
	ok, err := f.sharedCall(ctx, func(ctx context.Context) error {
		var err error
		done, err = f.shared.Release(ctx, key, id)
		return err
	})
	if ok {
		return done, err
	}
	return f.local.Release(ctx, key, id)
}

// IncrBy implements [Store.IncrBy].
func (f *Failover) IncrBy(ctx context.Context, ops []WindowOp) error {
	ok, err := f.sharedCall(ctx, func(ctx context.Context) error { return f.shared.IncrBy(ctx, ops) })
	if ok {
		return err
	}
	f.opts.Metrics.fallbackDecision()
	switch f.opts.Mode {
	case FailOpen:
		for i := range ops {
			ops[i].After = 0
		}
		return nil
	case FailError:
		return ErrUnavailable
	}
	for i := range ops {
		ops[i].Limit = f.share(ops[i].Limit)
	}
	return f.local.IncrBy(ctx, ops)
}
