package bucket

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
)

// deadlineOnly has a deadline but no timer, like rls.Failover's contexts:
// only Err tells that it passed.
type deadlineOnly struct {
	context.Context
	at time.Time
}

func (d deadlineOnly) Deadline() (time.Time, bool) { return d.at, true }
func (d deadlineOnly) Done() <-chan struct{}       { return nil }
func (d deadlineOnly) Err() error {
	if time.Now().After(d.at) {
		return context.DeadlineExceeded
	}
	return nil
}

// The deadline tick runs while callers wait for a reply and stops when
// none do, so an idle engine does not wake every tickEvery.
func TestDeadlineTickOnlyWhileWaiting(t *testing.T) {
	// go-redis bounds a new connection's handshake by ReadTimeout alone,
	// not by the context's deadline (guardian sets ReadTimeout to the RLS
	// Redis timeout): a call sent straight on an idle engine takes up to
	// readTimeout here, a queued caller only the tick answers in time.
	const timeout, readTimeout = 300 * time.Millisecond, time.Second
	client := redis.NewClient(&redis.Options{Addr: redistest.Hung(t), MaxRetries: -1,
		ReadTimeout: readTimeout, WriteTimeout: readTimeout, DialTimeout: time.Second})
	defer client.Close()
	e := newTestRedis(t, client, RedisOptions{})
	req := []Request{{Key: "{t}a", Limit: Rate(10, time.Second), N: 1}}

	time.Sleep(4 * tickEvery)
	if n := e.b.ticks.Load(); n != 0 {
		t.Fatalf("a new, idle engine ticked %d times", n)
	}

	// The first caller sends its own call (nothing in flight); the second
	// queues for a worker and waits on the tick.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	took := make([]time.Duration, 2)
	for i := range errs {
		if i == 1 {
			time.Sleep(timeout / 3)
		}
		wg.Go(func() {
			start := time.Now()
			_, errs[i] = e.Take(deadlineOnly{context.Background(), start.Add(timeout)}, req)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			t.Errorf("caller %d: a hung Redis answered", i)
		}
		if limit := []time.Duration{readTimeout, timeout}[i]; took[i] > limit+timeout/2 {
			t.Errorf("caller %d answered after %v (bound %v)", i, took[i], limit)
		}
	}
	if n := e.b.ticks.Load(); n == 0 {
		t.Fatal("no tick while a caller waited")
	}

	time.Sleep(20 * tickEvery) // a tick due as the last caller left
	before := e.b.ticks.Load()
	time.Sleep(6 * tickEvery)
	if n := e.b.ticks.Load() - before; n != 0 {
		t.Errorf("the engine ticked %d times with no caller waiting", n)
	}
}

// go-redis bounds socket I/O, a new connection's handshake included, by
// the context's deadline only with ContextTimeoutEnabled; otherwise by its
// ReadTimeout alone. Guardian leaves it off: a merged pipeline cut at its
// earliest caller's deadline would fail the callers who could still be
// answered, while the tick answers each waiting caller by its own deadline
// anyway. A call sent straight on an idle engine therefore waits up to
// ReadTimeout (the RLS sets it to redis_timeout), and the README says so.
func TestIdleCallBoundedByDeadline(t *testing.T) {
	const timeout, readTimeout = 100 * time.Millisecond, time.Second
	tests := []struct {
		name           string
		contextTimeout bool
		atLeast, below time.Duration
	}{
		// The slack is wide for loaded CI machines and still far from the
		// other case's bound.
		{"context deadlines", true, timeout, readTimeout / 2},
		{"read timeout alone", false, readTimeout, readTimeout * 3 / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := redis.NewClient(&redis.Options{Addr: redistest.Hung(t), MaxRetries: -1,
				ReadTimeout: readTimeout, WriteTimeout: readTimeout, DialTimeout: time.Second,
				ContextTimeoutEnabled: tt.contextTimeout})
			defer client.Close()
			e := newTestRedis(t, client, RedisOptions{})
			start := time.Now()
			_, err := e.Take(deadlineOnly{context.Background(), start.Add(timeout)},
				[]Request{{Key: "{t}a", Limit: Rate(10, time.Second), N: 1}})
			took := time.Since(start)
			if err == nil {
				t.Fatal("a hung Redis answered")
			}
			if took < tt.atLeast || took >= tt.below {
				t.Fatalf("answered after %v, want [%v, %v)", took, tt.atLeast, tt.below)
			}
		})
	}
}
