package bucket

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestRedisNoScript(t *testing.T) {
	srv := redistest.Start(t)
	cl := redistest.StartCluster(t, 3)
	tests := []struct {
		name  string
		c     redis.UniversalClient
		flush func(context.Context) error
	}{
		{"standalone", srv.Client, func(ctx context.Context) error { return srv.Client.ScriptFlush(ctx).Err() }},
		{"cluster", cl.Client, cl.FlushScripts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			// One worker so that concurrent calls share pipelines.
			e := newTestRedis(t, tt.c, RedisOptions{Workers: 1})
			l := Rate(1_000_000, time.Second)
			takeAll := func(goroutines int) {
				t.Helper()
				var wg sync.WaitGroup
				errs := make(chan error, goroutines)
				for g := range goroutines {
					wg.Go(func() {
						tag := string(rune('a' + g%26))
						_, err := e.Take(ctx, []Request{{Key: "{" + tag + "}rpm", Limit: l, N: 1}, {Key: "{" + tag + "}tpm", Limit: l, N: 5}})
						errs <- err
						if _, err := e.Acquire(ctx, "{"+tag+"}conc", 1000, time.Minute); err != nil {
							errs <- err
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatalf("after SCRIPT FLUSH: %v", err)
					}
				}
			}
			takeAll(1)
			for _, goroutines := range []int{1, 64} {
				if err := tt.flush(ctx); err != nil {
					t.Fatal(err)
				}
				takeAll(goroutines)
			}
			if e.b.batches.Load() == 0 {
				t.Fatal("no call went through a shared pipeline")
			}
		})
	}
}

func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	e := newTestRedis(t, c, RedisOptions{})
	req := []Request{{Key: "k", Limit: Rate(10, time.Second), N: 1}}
	if _, err := e.Take(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	tests := []struct {
		name    string
		timeout time.Duration
		within  time.Duration
	}{
		{"deadline respected", 100 * time.Millisecond, time.Second},
		{"no deadline", 0, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			start := time.Now()
			_, err := e.Take(ctx, req)
			took := time.Since(start)
			if err == nil {
				t.Fatal("Take succeeded with Redis down")
			}
			if !strings.HasPrefix(err.Error(), "bucket: redis: ") {
				t.Errorf("error not wrapped: %v", err)
			}
			if took > tt.within {
				t.Errorf("error after %v, want within %v", took, tt.within)
			}
			t.Logf("%v after %v", err, took)
		})
	}

	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := e.Take(context.Background(), req)
		if err == nil {
			if !d.Allowed {
				t.Fatalf("fresh bucket denied: %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis back, Take still fails: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisRealClock(t *testing.T) {
	srv := redistest.Start(t)
	e := newTestRedis(t, srv.Client, RedisOptions{})
	ctx := context.Background()
	l := Rate(1, time.Hour)
	before := time.Now()
	d, err := e.Take(ctx, []Request{{Key: "{x}a", Limit: l, N: 1}, {Key: "{x}b", Limit: PerDay(5, time.Local), N: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if d.At.Before(before.Add(-time.Second)) || d.At.After(time.Now().Add(time.Second)) {
		t.Fatalf("Redis TIME %v far from local %v", d.At, before)
	}
	d, err = e.Take(ctx, []Request{{Key: "{x}a", Limit: l, N: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if r := d.Buckets[0].RetryAfter; d.Allowed || r <= time.Hour-time.Minute || r > time.Hour {
		t.Fatalf("second take: %+v", d)
	}
	// The key expires with its TAT, not later.
	ttl, err := srv.Client.PTTL(ctx, e.prefix+"{x}a").Result()
	if err != nil || ttl <= time.Hour-time.Minute || ttl > time.Hour+time.Second {
		t.Fatalf("PTTL = %v, %v", ttl, err)
	}
	l2, err := e.Acquire(ctx, "{x}c", 1, 50*time.Millisecond)
	if err != nil || !l2.Acquired {
		t.Fatalf("acquire: %+v %v", l2, err)
	}
	time.Sleep(100 * time.Millisecond)
	if n, err := e.Held(ctx, "{x}c"); err != nil || n != 0 {
		t.Fatalf("held %d after the TTL, %v", n, err)
	}
}

func TestRedisClose(t *testing.T) {
	srv := redistest.Start(t)
	e := newTestRedis(t, srv.Client, RedisOptions{})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.Take(context.Background(), []Request{{Key: "k", Limit: Rate(1, time.Second), N: 1}})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Take after Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewRedisOptions(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = c.Close() })
	if _, err := NewRedis(c, RedisOptions{Prefix: "a{b}:"}); err == nil {
		t.Fatal("brace in prefix accepted")
	}
	if _, err := NewRedis(nil, RedisOptions{}); err == nil {
		t.Fatal("nil client accepted")
	}
}

// TestBatchNoScript drives one pipeline of lease calls and decisions
// straight after SCRIPT FLUSH: every EVALSHA fails with NOSCRIPT and is
// resent with EVAL. The decisions go as one merged script call, in order:
// the second of two takes on one key sees the first.
func TestBatchNoScript(t *testing.T) {
	srv := redistest.Start(t)
	e := newTestRedis(t, srv.Client, RedisOptions{Clock: newFakeClock(time.Unix(1_800_000_000, 0)).Now})
	ctx := context.Background()
	if err := srv.Client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var batch []*call
	var plans [][]plan
	for i := range 5 {
		if i%2 == 1 {
			c := &call{ctx: ctx, script: leaseScript, done: make(chan struct{}, 1)}
			c.keys = []string{e.prefix + "lease" + string(rune('a'+i))}
			c.args = []any{string(appendInts(nil, leaseAcquire, 0, 5, 1_000_000)), "id"}
			batch = append(batch, c)
			plans = append(plans, nil)
			continue
		}
		// Decisions 0 and 2 take 3 of 4 on one bucket, decision 4 another.
		key := "one"
		if i == 4 {
			key = "two"
		}
		c, p, err := e.decisionCall(opTake, []Request{{Key: key, Limit: Rate(4, time.Second), N: 3}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.ctx = ctx
		batch = append(batch, c)
		plans = append(plans, p)
	}
	e.b.exec(batch, &scratch{})
	for i, c := range batch {
		if plans[i] == nil {
			if c.err != nil || len(c.res) != 4 || c.res[0] != int64(1) {
				t.Fatalf("lease call %d: res %v err %v", i, c.res, c.err)
			}
			continue
		}
		if c.err != nil {
			t.Fatalf("decision %d: %v", i, c.err)
		}
		d, err := decodeDecision(c.res, plans[i])
		if err != nil {
			t.Fatal(err)
		}
		if want := i != 2; d.Allowed != want {
			t.Errorf("decision %d allowed %v, want %v", i, d.Allowed, want)
		}
	}
	if n := e.b.merged.Load(); n != 3 {
		t.Errorf("%d decisions went in a merged call, want 3", n)
	}
	for _, s := range []*redis.Script{leaseScript, decideScript} {
		exists, err := srv.Client.ScriptExists(ctx, s.Hash()).Result()
		if err != nil || !exists[0] {
			t.Fatalf("script not cached again: %v %v", exists, err)
		}
	}
}

// TestBatchDecisionError checks that a decision the script refuses (its
// day windows do not contain the clock) fails alone: the others merged
// into the same call are decided.
func TestBatchDecisionError(t *testing.T) {
	srv := redistest.Start(t)
	now := time.Unix(1_800_000_000, 0)
	e := newTestRedis(t, srv.Client, RedisOptions{Clock: newFakeClock(now).Now})
	ctx := context.Background()
	var batch []*call
	for i := range 3 {
		c, _, err := e.decisionCall(opTake, []Request{{Key: "d" + strconv.Itoa(i), Limit: PerDay(10, nil), N: 1}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.ctx = ctx
		batch = append(batch, c)
	}
	// Decision 1 says it is three days later than its windows: bytes 16-23
	// of a packed call are its clock (after the count and the op).
	binary.LittleEndian.PutUint64(batch[1].buf[16:], uint64(now.Add(72*time.Hour).UnixMicro()))
	e.b.exec(batch, &scratch{})
	for i, c := range batch {
		if i == 1 {
			if c.err == nil || !strings.Contains(c.err.Error(), "clock more than a day away") {
				t.Errorf("decision 1: err %v, want the day-window error", c.err)
			}
			continue
		}
		if c.err != nil || len(c.res) != 5 || c.res[0] != int64(1) {
			t.Errorf("decision %d: res %v err %v", i, c.res, c.err)
		}
	}
}

// TestRedisWindow checks that a batching window never delays an idle engine
// and still serves concurrent callers.
func TestRedisWindow(t *testing.T) {
	srv := redistest.Start(t)
	const window = 200 * time.Millisecond
	e := newTestRedis(t, srv.Client, RedisOptions{Window: window, Workers: 2})
	ctx := context.Background()
	req := []Request{{Key: "w", Limit: Rate(1_000_000, time.Second), N: 1}}
	for range 5 {
		start := time.Now()
		if _, err := e.Take(ctx, req); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took >= window/2 {
			t.Fatalf("idle Take took %v with a %v window", took, window)
		}
	}
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 5 {
				if _, err := e.Take(ctx, req); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	p := peek(t, e, req[0])
	if want := int64(1_000_000 - 5 - 32*5); p.Buckets[0].Remaining < want || p.Buckets[0].Remaining > want+10_000 {
		t.Fatalf("remaining %d, want about %d", p.Buckets[0].Remaining, want)
	}
}

// TestMergeCrossSlotFallback: a plain client in front of a sharded Redis
// (a proxy) refuses a merged call whose keys live in different slots with
// CROSSSLOT. Here a cluster client with merging forced on stands in for
// it: the decisions are then made one call each, and merging stays off.
func TestMergeCrossSlotFallback(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	e := newTestRedis(t, cl.Client, RedisOptions{Clock: newFakeClock(time.Unix(1_800_000_000, 0)).Now})
	e.b.merge.Store(true)
	ctx := context.Background()
	var batch []*call
	for i := range 4 {
		c, _, err := e.decisionCall(opTake, []Request{{Key: "{t" + strconv.Itoa(i) + "}k", Limit: Rate(10, time.Second), N: 1}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.ctx = ctx
		batch = append(batch, c)
	}
	e.b.exec(batch, &scratch{})
	for i, c := range batch {
		if c.err != nil || len(c.res) != 5 || c.res[0] != int64(1) {
			t.Errorf("decision %d: res %v err %v", i, c.res, c.err)
		}
	}
	if e.b.merge.Load() {
		t.Error("merging still on after CROSSSLOT")
	}
}
