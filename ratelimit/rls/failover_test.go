package rls

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedisDownFallbackAndRecovery stops Redis under a running server: calls
// keep answering (no error status) from the local share of each limit, the
// metrics say so, and the server returns to Redis by itself once Redis is
// back.
func TestRedisDownFallbackAndRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := redistest.Start(t)
	client := srv.NewClient(t)
	shared, closeFn, err := NewRedisStore(client, bucket.RedisOptions{Prefix: "fo:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	f := NewFailover(shared, FailoverOptions{
		Mode: LocalShare, Replicas: 3, Timeout: 200 * time.Millisecond, ProbeEvery: 20 * time.Millisecond,
		Probe: func(ctx context.Context) error { return client.Ping(ctx).Err() }, Metrics: m,
	})
	t.Cleanup(f.Close)
	s := New(Options{Store: f, Metrics: m})
	s.SetConfig(mustConfig(t, "domain: d\ndescriptors: [{key: tenant, rate_limit: {unit: hour, requests_per_unit: 9}}]\n"))

	if r := ask(t, s, "d", 0, desc("tenant", "a")); r.OverallCode != OK || r.Statuses[0].LimitRemaining != 8 || f.Tripped() {
		t.Fatalf("on redis: %v", r)
	}
	srv.Stop()
	// Fallback: 9/3 = 3 per replica, from a fresh local bucket.
	var got []string
	for range 4 {
		r := ask(t, s, "d", 0, desc("tenant", "a"))
		got = append(got, r.OverallCode.String())
	}
	if want := "[OK OK OK OVER_LIMIT]"; fmtSlice(got) != want {
		t.Fatalf("fallback codes %v, want %s", got, want)
	}
	if !f.Tripped() || testutil.ToFloat64(m.fallbackMode) != 1 || testutil.ToFloat64(m.fallbackCalls) < 4 {
		t.Errorf("tripped=%v mode=%v calls=%v", f.Tripped(), testutil.ToFloat64(m.fallbackMode), testutil.ToFloat64(m.fallbackCalls))
	}
	if n := testutil.CollectAndCount(m.redisErrors); n == 0 {
		t.Error("no redis error counted")
	}
	srv.Restart()
	// The probe untrips, then sets the mode gauge: wait for both.
	waitFor(t, "the probe to return to Redis and say so", func() bool {
		return !f.Tripped() && testutil.ToFloat64(m.fallbackMode) == 0
	})
	// Redis restarted empty: the full limit again.
	if r := ask(t, s, "d", 0, desc("tenant", "a")); r.OverallCode != OK || r.Statuses[0].LimitRemaining != 8 {
		t.Fatalf("back on redis: %v", r)
	}
}

func TestFailOpenAndErrorModes(t *testing.T) {
	down := downStore{}
	for _, tt := range []struct {
		mode    FallbackMode
		wantErr bool
	}{{FailOpen, false}, {FailError, true}} {
		f := NewFailover(down, FailoverOptions{Mode: tt.mode})
		s := New(Options{Store: f})
		s.SetConfig(mustConfig(t, "domain: d\ndescriptors: [{key: k, rate_limit: {unit: second, requests_per_unit: 1}}]\n"))
		for range 3 {
			resp, err := s.ShouldRateLimit(context.Background(), reqOf("d", desc("k", "v")))
			if tt.wantErr != (err != nil) || (err == nil && resp.OverallCode != OK) {
				t.Fatalf("%v: %v %v", tt.mode, resp, err)
			}
		}
		f.Close()
	}
}

// downStore fails every call as an unreachable Redis does.
type downStore struct{ Store }

func (downStore) Take(context.Context, []bucket.Request) (bucket.Decision, error) {
	return bucket.Decision{}, errDown
}

var errDown = &netErr{}

type netErr struct{}

func (*netErr) Error() string   { return "dial tcp: connection refused" }
func (*netErr) Timeout() bool   { return false }
func (*netErr) Temporary() bool { return false }

// TestHungRedisAnswersByDeadline: a "Redis" that accepts connections and
// never answers. Callers arrive over one timeout's length, most of them
// queued behind a round trip in flight; each is answered from the fallback
// by its own deadline (the timeout after it began), not by a later caller's.
func TestHungRedisAnswersByDeadline(t *testing.T) {
	const timeout = 500 * time.Millisecond
	client := redis.NewClient(&redis.Options{Addr: redistest.Hung(t), MaxRetries: -1,
		ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout, DialTimeout: timeout})
	defer client.Close()
	shared, closeFn, err := NewRedisStore(client, bucket.RedisOptions{Prefix: "hung:"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	f := NewFailover(shared, FailoverOptions{Mode: LocalShare, Timeout: timeout, ProbeEvery: time.Hour})
	defer f.Close()
	s := New(Options{Store: f})
	s.SetConfig(mustConfig(t, "domain: d\ndescriptors: [{key: tenant, rate_limit: {unit: hour, requests_per_unit: 1000}}]\n"))

	const callers = 100
	late := make(chan time.Duration, callers)
	var wg sync.WaitGroup
	for i := range callers {
		time.Sleep(timeout / callers) // arrivals spread over one timeout
		wg.Go(func() {
			start := time.Now()
			r := ask(t, s, "d", 0, desc("tenant", "t"+strconv.Itoa(i)))
			if r.OverallCode != OK {
				t.Errorf("caller %d: %v", i, r)
			}
			late <- time.Since(start) - timeout
			if testing.Verbose() && time.Since(start) > timeout+timeout/2 {
				t.Logf("caller %d took %v", i, time.Since(start))
			}
		})
	}
	wg.Wait()
	close(late)
	var worst time.Duration
	for d := range late {
		worst = max(worst, d)
	}
	// A caller bounded by a later caller's deadline would be up to one
	// timeout late; scheduling noise is far below the slack.
	if slack := timeout / 2; worst > slack {
		t.Errorf("a caller was answered %v after its deadline (slack %v)", worst, slack)
	}
	if !f.Tripped() {
		t.Error("the failover did not trip")
	}
}
