package breaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
)

type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"no such key", redis.Nil, false},
		{"script error", replyError("ERR Error running script"), false},
		{"NOSCRIPT", replyError("NOSCRIPT No matching script"), false},
		{"caller gone", fmt.Errorf("x: %w", context.Canceled), false},
		{"caller's deadline", context.DeadlineExceeded, false},
		{"client closed", redis.ErrClosed, false},
		{"refused by the breaker", ErrOpen, false},
		{"read timeout", &net.OpError{Op: "read", Err: timeoutError{}}, true},
		{"connection refused", &net.OpError{Op: "dial", Err: errors.New("connect: connection refused")}, true},
		{"connection closed", io.EOF, true},
		{"pool timeout", redis.ErrPoolTimeout, true},
		{"loading", replyError("LOADING Redis is loading the dataset in memory"), true},
		{"master down", replyError("MASTERDOWN Link with MASTER is down"), true},
		{"cluster down", replyError("CLUSTERDOWN The cluster is down"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unavailable(tt.err); got != tt.want {
				t.Errorf("Unavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// A hung Redis costs the first call its timeout; the calls after it, single
// or pipelined, fail at once with ErrOpen, each command of a pipeline
// included.
func TestHungRedisRefusedAtOnce(t *testing.T) {
	const timeout = 200 * time.Millisecond
	client := redis.NewClient(&redis.Options{Addr: redistest.Hung(t), MaxRetries: -1,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout})
	defer client.Close()
	m := NewMetrics(prometheus.NewRegistry(), "test", "test")
	b := New(client, Options{Name: "test", ProbeEvery: time.Hour, Metrics: m})
	defer b.Close()
	ctx := context.Background()

	start := time.Now()
	if err := client.Get(ctx, "k").Err(); !Unavailable(err) {
		t.Fatalf("first call: %v", err)
	}
	if took := time.Since(start); took < timeout {
		t.Fatalf("first call took %v: it should have waited for its timeout", took)
	}
	if !b.Open() || testutil.ToFloat64(m.unavailable) != 1 {
		t.Fatalf("open %v, gauge %v", b.Open(), testutil.ToFloat64(m.unavailable))
	}
	start = time.Now()
	if err := client.Get(ctx, "k").Err(); !errors.Is(err, ErrOpen) {
		t.Fatalf("second call: %v", err)
	}
	cmds, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "a")
		p.Incr(ctx, "b")
		return nil
	})
	if !errors.Is(err, ErrOpen) || len(cmds) != 2 {
		t.Fatalf("pipeline: %v, %d commands", err, len(cmds))
	}
	for _, c := range cmds {
		if !errors.Is(c.Err(), ErrOpen) {
			t.Errorf("%v: err %v, want ErrOpen", c.Args(), c.Err())
		}
	}
	// Far below the timeout; not a speed test.
	if took := time.Since(start); took >= timeout/2 {
		t.Errorf("refused calls took %v", took)
	}
	if n := testutil.ToFloat64(m.refusedCalls); n != 2 {
		t.Errorf("refused = %v, want 2 (one call, one pipeline)", n)
	}
}

// A stopped Redis opens the breaker; once it is back, the probe closes it
// and calls reach Redis again.
func TestProbeClosesWhenRedisIsBack(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
	defer client.Close()
	m := NewMetrics(prometheus.NewRegistry(), "test", "test")
	b := New(client, Options{Name: "test", ProbeEvery: 20 * time.Millisecond, Metrics: m})
	defer b.Close()
	ctx := context.Background()
	if err := client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.Get(ctx, "missing").Err(); !errors.Is(err, redis.Nil) || b.Open() {
		t.Fatalf("a missing key opened the breaker: %v", err)
	}

	srv.Stop()
	if err := client.Get(ctx, "k").Err(); !Unavailable(err) {
		t.Fatalf("stopped Redis: %v", err)
	}
	if !b.Open() {
		t.Fatal("not open after Redis stopped")
	}
	time.Sleep(100 * time.Millisecond) // probes fail meanwhile
	if !b.Open() {
		t.Fatal("closed while Redis was still down")
	}

	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for b.Open() {
		if time.Now().After(deadline) {
			t.Fatal("still open 5 s after Redis came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if testutil.ToFloat64(m.unavailable) != 0 {
		t.Error("gauge still 1")
	}
	if err := client.Set(ctx, "k", "w", 0).Err(); err != nil {
		t.Fatalf("after the probe: %v", err)
	}
}

// Close stops the probe: nothing is left running (a leaked probe would
// hang the test's Close for its hour-long period, and keep pinging).
func TestCloseStopsProbe(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Hung(t), MaxRetries: -1,
		DialTimeout: 50 * time.Millisecond, ReadTimeout: 50 * time.Millisecond})
	defer client.Close()
	b := New(client, Options{ProbeEvery: time.Hour})
	_ = client.Get(context.Background(), "k").Err()
	if !b.Open() {
		t.Fatal("not open")
	}
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the probe")
	}
	if b.Open() {
		t.Error("still refusing after Close")
	}
}
