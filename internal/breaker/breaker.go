// Package breaker stops a go-redis client from waiting on a Redis that has
// stopped answering. After a call fails for want of Redis (a timeout, a
// refused or reset connection, the pool's own timeout, or a LOADING,
// MASTERDOWN or CLUSTERDOWN reply) every call fails at once with [ErrOpen]
// instead of waiting out its own timeout, and one PING per probe period
// checks whether Redis is back; the first that succeeds lets calls through
// again. It suits callers that already degrade on an error (the key pool
// sends a request without a reservation): with the breaker, degrading costs
// microseconds per call instead of a timeout each.
package breaker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// ErrOpen is the error of a call refused while Redis is unavailable.
var ErrOpen = errors.New("breaker: redis unavailable, call refused until a probe succeeds")

// Options configure a Breaker.
type Options struct {
	// Name says whose Redis this is in logs, e.g. "pool state".
	Name string
	// ProbeEvery is the time between probes while open. Default 1s.
	ProbeEvery time.Duration
	// ProbeTimeout bounds one probe. Default 1s.
	ProbeTimeout time.Duration
	Logger       *slog.Logger
	Metrics      *Metrics
}

// Breaker is a go-redis hook; see the package comment.
type Breaker struct {
	client redis.UniversalClient
	opts   Options
	open   atomic.Bool
	stop   chan struct{}

	mu     sync.Mutex // guards closed and wg.Add against Close
	closed bool
	wg     sync.WaitGroup
}

// New adds a breaker to client. Close stops its probe.
func New(client redis.UniversalClient, o Options) *Breaker {
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = time.Second
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Breaker{client: client, opts: o, stop: make(chan struct{})}
	client.AddHook(b)
	return b
}

// Open reports whether calls are being refused.
func (b *Breaker) Open() bool { return b.open.Load() }

// Close stops the probe; calls are no longer refused.
func (b *Breaker) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.open.Store(false)
	b.opts.Metrics.set(false)
}

// DialHook implements [redis.Hook].
func (b *Breaker) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements [redis.Hook].
func (b *Breaker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if b.refuse(ctx) {
			cmd.SetErr(ErrOpen)
			return ErrOpen
		}
		err := next(ctx, cmd)
		b.observe(ctx, err)
		return err
	}
}

// ProcessPipelineHook implements [redis.Hook]. A refused pipeline fails
// each of its commands, so no caller reads an empty reply as an answer.
func (b *Breaker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if b.refuse(ctx) {
			for _, c := range cmds {
				c.SetErr(ErrOpen)
			}
			return ErrOpen
		}
		err := next(ctx, cmds)
		b.observe(ctx, err)
		return err
	}
}

type probeKey struct{}

func (b *Breaker) refuse(ctx context.Context) bool {
	if !b.open.Load() || ctx.Value(probeKey{}) != nil {
		return false
	}
	b.opts.Metrics.refused()
	return true
}

// observe opens the breaker on a call that failed for want of Redis. A
// call whose caller gave up (its context ended) says nothing about Redis.
func (b *Breaker) observe(ctx context.Context, err error) {
	if !Unavailable(err) || ctx.Err() != nil || ctx.Value(probeKey{}) != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || !b.open.CompareAndSwap(false, true) {
		return
	}
	b.opts.Metrics.set(true)
	b.opts.Logger.Warn(b.opts.Name+": Redis unavailable: failing its calls at once until a probe succeeds",
		"err", err, "probe_every", b.opts.ProbeEvery)
	b.wg.Add(1)
	go b.probe()
}

// probe pings until Redis answers, then closes the breaker.
func (b *Breaker) probe() {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.ProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), probeKey{}, true), b.opts.ProbeTimeout)
		err := b.client.Ping(ctx).Err()
		cancel()
		if err != nil {
			continue
		}
		// Under mu, so that a late failure reopening the breaker cannot
		// have its gauge and log overtaken by these.
		b.mu.Lock()
		b.open.Store(false)
		b.opts.Metrics.set(false)
		b.opts.Logger.Info(b.opts.Name + ": Redis is back")
		b.mu.Unlock()
		return
	}
}

// Unavailable reports whether err says Redis could not serve the call, as
// opposed to a reply about the call itself (redis.Nil, a script error) or
// a caller that gave up. Any network error counts, a connect timeout
// included (Go's matches context.DeadlineExceeded too); whether the
// caller gave up is for its context to say (see observe), not the error.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, ErrOpen) || errors.Is(err, redis.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, redis.ErrPoolTimeout) {
		return true
	}
	for _, p := range []string{"LOADING", "MASTERDOWN", "CLUSTERDOWN"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// Metrics are a breaker's series. A nil *Metrics records nothing.
type Metrics struct {
	unavailable  prometheus.Gauge
	refusedCalls prometheus.Counter
}

// NewMetrics registers guardian_<subsystem>_unavailable and
// guardian_<subsystem>_refused_total on reg.
func NewMetrics(reg prometheus.Registerer, subsystem, what string) *Metrics {
	m := &Metrics{
		unavailable: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "guardian", Subsystem: subsystem, Name: "unavailable",
			Help: "1 while the " + what + " Redis is unavailable and its calls fail at once.",
		}),
		refusedCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "guardian", Subsystem: subsystem, Name: "refused_total",
			Help: "Calls to the " + what + " Redis failed at once because it was unavailable.",
		}),
	}
	reg.MustRegister(m.unavailable, m.refusedCalls)
	return m
}

func (m *Metrics) set(open bool) {
	if m == nil {
		return
	}
	if open {
		m.unavailable.Set(1)
	} else {
		m.unavailable.Set(0)
	}
}

func (m *Metrics) refused() {
	if m != nil {
		m.refusedCalls.Inc()
	}
}

// LogLevel is the level for logging a failed call: Warn, or Debug for a
// call refused while Redis is unavailable, whose outage the breaker has
// logged once already.
func LogLevel(err error) slog.Level {
	if errors.Is(err, ErrOpen) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
