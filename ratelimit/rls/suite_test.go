package rls

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

const suiteConfig = `
domain: claude-guardian
descriptors:
  - key: tenant
    descriptors:
      - {key: axis, value: requests, rate_limit: {unit: minute, requests_per_unit: 3}}
      - {key: axis, value: input_tokens, rate_limit: {unit: minute, requests_per_unit: 100}}
      - {key: axis, value: per_day, rate_limit: {unit: day, requests_per_unit: 2, day_reset_timezone: America/Phoenix}}
      - {key: axis, value: fixed, rate_limit: {unit: second, requests_per_unit: 2, algorithm: fixed_window}}
      - {key: axis, value: inflight, rate_limit: {concurrency: 2, lease_ttl: 30s}}
      - {key: axis, value: shadow, shadow_mode: true, rate_limit: {unit: minute, requests_per_unit: 1}}
      - {key: axis, value: free, rate_limit: {unlimited: true}}
      - {key: axis, value: banned, rate_limit: {unit: minute, requests_per_unit: 0}}
  - key: key_1
    value: value_1
    descriptors:
      - {key: user, value: bkthomps, rate_limit: {name: specific_limit, requests_per_unit: 5, unit: second}}
  - key: key_2
    value: value_2
    descriptors:
      - {key: user, value: bkthomps, rate_limit: {replaces: [{name: specific_limit}], requests_per_unit: 10, unit: second}}
`

// storeFactory makes a fresh store on a clock for one subtest.
type storeFactory func(t *testing.T, clock func() time.Time) Store

func memoryFactory(t *testing.T, clock func() time.Time) Store { return NewMemoryStore(clock) }

func redisFactory(c redis.UniversalClient) storeFactory {
	return func(t *testing.T, clock func() time.Time) Store {
		prefix := "t:" + strings.NewReplacer("/", ":", "{", "", "}", "").Replace(t.Name()) + ":"
		s, closeFn, err := NewRedisStore(c, bucket.RedisOptions{Prefix: prefix, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = closeFn() })
		return s
	}
}

func TestMemory(t *testing.T) { runSuite(t, memoryFactory) }

func TestRedisStandalone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := redistest.Start(t)
	runSuite(t, redisFactory(srv.Client))
}

func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3)
	runSuite(t, redisFactory(c.Client))
}

type env struct {
	s     *Server
	clock *fakeClock
	reg   *prometheus.Registry
}

func newEnv(t *testing.T, f storeFactory, opts Options) env {
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	opts.Store, opts.Clock, opts.Metrics = f(t, clock.Now), clock.Now, NewMetrics(reg)
	s := New(opts)
	s.SetConfig(mustConfig(t, suiteConfig))
	return env{s, clock, reg}
}

func runSuite(t *testing.T, f storeFactory) {
	const d = "claude-guardian"
	t.Run("unknown domain and no match", func(t *testing.T) {
		e := newEnv(t, f, Options{})
		r := ask(t, e.s, "nope", 0, desc("tenant", "a", "axis", "requests"))
		if r.OverallCode != OK || r.Statuses[0].CurrentLimit != nil {
			t.Errorf("unknown domain: %v", r)
		}
		r = ask(t, e.s, d, 0, desc("tenant", "a", "axis", "nothing"), desc("other", "x"))
		if r.OverallCode != OK || r.Statuses[0].CurrentLimit != nil || r.Statuses[1].CurrentLimit != nil {
			t.Errorf("no match: %v", r)
		}
	})
	t.Run("token bucket", func(t *testing.T) {
		e := newEnv(t, f, Options{})
		for i := range 3 {
			r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "requests"))
			if r.OverallCode != OK || r.Statuses[0].LimitRemaining != uint32(2-i) || r.Statuses[0].CurrentLimit.RequestsPerUnit != 3 {
				t.Fatalf("take %d: %v", i, r)
			}
		}
		r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "requests"))
		if r.OverallCode != OVER || r.Statuses[0].LimitRemaining != 0 || r.Statuses[0].DurationUntilReset.AsDuration() != 20*time.Second {
			t.Fatalf("4th: %v", r)
		}
		if r := ask(t, e.s, d, 0, desc("tenant", "b", "axis", "requests")); r.OverallCode != OK {
			t.Errorf("other tenant: %v", r)
		}
		e.clock.Advance(20 * time.Second) // one token refilled
		if r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "requests")); r.OverallCode != OK {
			t.Errorf("after refill: %v", r)
		}
	})
	t.Run("hits_addend and all or nothing", func(t *testing.T) {
		e := newEnv(t, f, Options{})
		// Request-level hits apply to descriptors without their own.
		r := ask(t, e.s, d, 60, desc("tenant", "a", "axis", "input_tokens"))
		if r.Statuses[0].LimitRemaining != 40 {
			t.Fatalf("request hits: %v", r)
		}
		// The descriptor's own hits win; tokens over → requests untouched.
		r = ask(t, e.s, d, 0, desc("tenant", "a", "axis", "requests"), withHits(desc("tenant", "a", "axis", "input_tokens"), 50))
		if got := codesOf(r); got[0] != OVER || got[2] != OVER {
			t.Fatalf("over tokens: %v", got)
		}
		if r := ask(t, e.s, d, 0, withHits(desc("tenant", "a", "axis", "requests"), 0)); r.Statuses[0].LimitRemaining != 3 {
			t.Fatalf("requests consumed by a refused call: %v", r)
		}
		// 0 checks only.
		r = ask(t, e.s, d, 0, withHits(desc("tenant", "a", "axis", "input_tokens"), 0))
		if r.OverallCode != OK || r.Statuses[0].LimitRemaining != 40 {
			t.Fatalf("check: %v", r)
		}
		// Refund 30, then charge 100 unconditionally via guardian_adjust.
		ask(t, e.s, d, 0, negative(desc("tenant", "a", "axis", "input_tokens"), 30))
		if r := ask(t, e.s, d, 0, withHits(desc("tenant", "a", "axis", "input_tokens"), 0)); r.Statuses[0].LimitRemaining != 70 {
			t.Fatalf("after refund: %v", r)
		}
		r = ask(t, e.s, d, 0, withHits(desc("tenant", "a", "axis", "input_tokens", AdjustEntry, "post"), 100))
		if r.OverallCode != OK || r.Statuses[0].LimitRemaining != 0 {
			t.Fatalf("charge: %v", r)
		}
	})
	t.Run("limit override", func(t *testing.T) {
		e := newEnv(t, f, Options{})
		dd := desc("tenant", "a", "axis", "requests")
		dd.Limit = &rlv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: 1}
		if r := ask(t, e.s, d, 0, dd); r.OverallCode != OK || r.Statuses[0].CurrentLimit.RequestsPerUnit != 1 {
			t.Fatalf("override 1st: %v", r)
		}
		if r := ask(t, e.s, d, 0, dd); r.OverallCode != OVER {
			t.Fatalf("override 2nd: %v", r)
		}
	})
	t.Run("replaces", func(t *testing.T) {
		e := newEnv(t, f, Options{})
		both := func() *rlspb.RateLimitResponse {
			return ask(t, e.s, d, 0, desc("key_1", "value_1", "user", "bkthomps"), desc("key_2", "value_2", "user", "bkthomps"))
		}
		r := both()
		if r.Statuses[0].CurrentLimit != nil || r.Statuses[1].CurrentLimit.RequestsPerUnit != 10 {
			t.Fatalf("replaced: %v", r)
		}
		if r := ask(t, e.s, d, 0, desc("key_1", "value_1", "user", "bkthomps")); r.Statuses[0].LimitRemaining != 4 {
			t.Fatalf("the replaced limit was changed: %v", r)
		}
	})
	t.Run("shadow unlimited zero", func(t *testing.T) {
		e := newEnv(t, f, Options{})
		for range 3 {
			if r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "shadow")); r.OverallCode != OK {
				t.Fatalf("shadow: %v", r)
			}
		}
		if got := testutil.ToFloat64(e.s.m.shadowMode.WithLabelValues(d, d+".tenant.axis_shadow")); got != 2 {
			t.Errorf("shadow_mode = %v, want 2", got)
		}
		if r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "free")); r.OverallCode != OK || r.Statuses[0].LimitRemaining != math.MaxUint32 {
			t.Errorf("unlimited: %v", r)
		}
		if r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "banned")); r.OverallCode != OVER {
			t.Errorf("zero: %v", r)
		}
	})
	t.Run("fixed window", func(t *testing.T) {
		e := newEnv(t, f, Options{})
		e.clock.Set(time.Date(2026, 3, 2, 12, 0, 0, 900_000_000, time.UTC))
		got := []rlspb.RateLimitResponse_Code{}
		for range 3 {
			got = append(got, ask(t, e.s, d, 0, desc("tenant", "a", "axis", "fixed")).OverallCode)
		}
		e.clock.Advance(100 * time.Millisecond) // next window
		r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "fixed"))
		got = append(got, r.OverallCode)
		want := []rlspb.RateLimitResponse_Code{OK, OK, OVER, OK}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("codes %v, want %v", got, want)
			}
		}
		if r.Statuses[0].LimitRemaining != 1 || r.Statuses[0].DurationUntilReset.AsDuration() != time.Second {
			t.Errorf("status %v", r.Statuses[0])
		}
	})
	t.Run("calendar day", func(t *testing.T) {
		e := newEnv(t, f, Options{})
		phx, _ := time.LoadLocation("America/Phoenix")
		e.clock.Set(time.Date(2026, 3, 2, 23, 0, 0, 0, phx))
		for i, want := range []rlspb.RateLimitResponse_Code{OK, OK, OVER} {
			if r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "per_day")); r.OverallCode != want {
				t.Fatalf("call %d: %v", i, r)
			}
		}
		e.clock.Set(time.Date(2026, 3, 3, 0, 0, 1, 0, phx))
		if r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "per_day")); r.OverallCode != OK {
			t.Fatalf("after local midnight: %v", r)
		}
	})
	t.Run("concurrency", func(t *testing.T) {
		e := newEnv(t, f, Options{})
		var ids []string
		for range 2 {
			r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "inflight"))
			id := r.GetDynamicMetadata().GetFields()[LeaseMetadataKey].GetStringValue()
			if r.OverallCode != OK || id == "" {
				t.Fatalf("acquire: %v", r)
			}
			ids = append(ids, id)
		}
		if r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "inflight")); r.OverallCode != OVER || r.DynamicMetadata != nil {
			t.Fatalf("3rd: %v", r)
		}
		ask(t, e.s, d, 0, negative(desc("tenant", "a", "axis", "inflight", LeaseEntry, ids[0]), 1))
		if r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "inflight")); r.OverallCode != OK {
			t.Fatalf("after release: %v", r)
		}
		e.clock.Advance(31 * time.Second) // TTL reclaims both
		if r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "inflight")); r.OverallCode != OK || r.Statuses[0].LimitRemaining != 1 {
			t.Fatalf("after TTL: %v", r)
		}
	})
	t.Run("headers and anthropic error", func(t *testing.T) {
		e := newEnv(t, f, Options{Headers: true, AnthropicErrors: true})
		r := ask(t, e.s, d, 0, desc("tenant", "a", "axis", "requests"))
		if h := headerMap(r); h["ratelimit-limit"] != "3" || h["ratelimit-remaining"] != "2" || h["ratelimit-reset"] != "20" || r.RawBody != nil {
			t.Fatalf("ok headers: %v", h)
		}
		ask(t, e.s, d, 0, desc("tenant", "a", "axis", "requests"))
		ask(t, e.s, d, 0, desc("tenant", "a", "axis", "requests"))
		r = ask(t, e.s, d, 0, desc("tenant", "a", "axis", "requests"))
		h := headerMap(r)
		want := `{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit \"claude-guardian.tenant.axis_requests\" of 3 per minute. Please retry after 20 seconds."}}`
		if r.OverallCode != OVER || h["retry-after"] != "20" || h["content-type"] != "application/json" || string(r.RawBody) != want {
			t.Fatalf("over: %v %s", h, r.RawBody)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		e := newEnv(t, f, Options{})
		for range 4 {
			ask(t, e.s, d, 0, desc("tenant", "a", "axis", "requests"))
		}
		key := d + ".tenant.axis_requests"
		m := e.s.m
		for name, c := range map[string]*prometheus.CounterVec{"total": m.totalHits, "over": m.overLimit, "within": m.withinLimit, "near": m.nearLimit} {
			want := map[string]float64{"total": 4, "over": 1, "within": 3, "near": 1}[name]
			if got := testutil.ToFloat64(c.WithLabelValues(d, key)); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		ask(t, e.s, "nope", 0, desc("a", "b"))
		if got := testutil.ToFloat64(m.domainNotFound); got != 1 {
			t.Errorf("domain_not_found = %v", got)
		}
	})
	_ = context.Background
}

func headerMap(r *rlspb.RateLimitResponse) map[string]string {
	h := map[string]string{}
	for _, kv := range r.ResponseHeadersToAdd {
		h[kv.Key] = kv.Value
	}
	return h
}
