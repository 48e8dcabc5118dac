package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/internal/logtest"
	"github.com/claude-guardian/claude-guardian/internal/redistest"
)

// TestPoolStateRedisHung: the pool's Redis accepts connections and never
// answers. Requests still go through, without a reservation: the first
// call waits redis.timeout (100 ms), the breaker then fails the pool's
// calls at once. Before the breaker and the timeout, one call on go-redis's
// default client took 5 s, the upstream processor's ticket read outlived
// Envoy's 2 s message_timeout, and the request got 504 after 12 s.
func TestPoolStateRedisHung(t *testing.T) {
	var logs logtest.Buffer
	s := startStack(t, stackOpts{redisURL: "redis://" + redistest.Hung(t), log: &logs})
	c := s.client(gatewayKey)
	for i := range 3 {
		if _, err := c.Messages.New(context.Background(), hello); err != nil {
			t.Fatalf("request %d with the pool's Redis hung: %v", i+1, err)
		}
	}
	// The outage is logged once, not once per request and call.
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "pool state: Redis unavailable") {
		t.Errorf("%d warnings, want the outage's alone:\n%s", n, logs.String())
	}
	if n := len(s.anthropic.Requests()); n != 3 {
		t.Errorf("Anthropic saw %d requests, want 3", n)
	}
	if v := metric(t, s, "guardian_pool_state_unavailable"); v != 1 {
		t.Errorf("guardian_pool_state_unavailable = %v, want 1", v)
	}
	if v := metric(t, s, "guardian_pool_state_refused_total"); v < 3 {
		t.Errorf("guardian_pool_state_refused_total = %v: the calls after the first should fail at once", v)
	}
}

// TestPoolStateRedisRestart: requests are served while the pool's Redis is
// down, and once it is back the probe finds it and reservations live in
// Redis again.
func TestPoolStateRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	s := startStack(t, stackOpts{redisURL: "redis://" + srv.Addr})
	c := s.client(gatewayKey)
	ctx := context.Background()
	if _, err := c.Messages.New(ctx, hello); err != nil {
		t.Fatal(err)
	}
	if keys := srv.Client.Keys(ctx, "guardian:pool*").Val(); len(keys) == 0 {
		t.Fatal("no pool state in Redis")
	}

	srv.Stop()
	for i := range 2 {
		if _, err := c.Messages.New(ctx, hello); err != nil {
			t.Fatalf("request %d with the pool's Redis down: %v", i+1, err)
		}
	}
	if v := metric(t, s, "guardian_pool_state_unavailable"); v != 1 {
		t.Errorf("guardian_pool_state_unavailable = %v with Redis down, want 1", v)
	}

	srv.Restart() // empty: no persistence
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, s, "guardian_pool_state_unavailable") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pool still avoids Redis 10 s after it came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := c.Messages.New(ctx, hello); err != nil {
		t.Fatal(err)
	}
	if keys := srv.Client.Keys(ctx, "guardian:pool*").Val(); len(keys) == 0 {
		t.Fatal("Redis is back but the pool's state does not go there")
	}
}
