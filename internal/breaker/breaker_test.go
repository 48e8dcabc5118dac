package breaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
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
		// A deadline: whose, the caller's context tells (see observe).
		{"a deadline", context.DeadlineExceeded, true},
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

// silentListener returns the address of a socket that listens with a
// backlog of 0 and never accepts: once its queue is full the kernel drops
// further SYNs, so a connect hangs until its timeout, like a host that
// drops packets.
func silentListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skipf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 4 { // fill the queue
		if c, err := net.DialTimeout("tcp", addr, 50*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return addr
}

// A connect timeout opens the breaker, every time: Go's connect timeout
// error matches context.DeadlineExceeded or not depending on which timer
// fires first, and must count as Redis unavailable either way.
func TestConnectTimeoutOpens(t *testing.T) {
	addr := silentListener(t)
	for i := range 6 {
		client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1,
			DialTimeout: 50 * time.Millisecond, ReadTimeout: 50 * time.Millisecond})
		b := New(client, Options{ProbeEvery: time.Hour})
		err := client.Get(context.Background(), "k").Err()
		open := b.Open()
		b.Close()
		client.Close()
		if err == nil {
			t.Fatal("a silent listener answered")
		}
		if !open {
			t.Fatalf("try %d: %v (deadline: %v) did not open the breaker", i, err, errors.Is(err, context.DeadlineExceeded))
		}
	}
}

// A call whose caller gave up says nothing about Redis: the breaker stays
// closed, and the next call, with time to wait, opens it.
func TestCallerGivingUpDoesNotOpen(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Hung(t), MaxRetries: -1, DialerRetries: 1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
	defer client.Close()
	b := New(client, Options{ProbeEvery: time.Hour})
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := client.Get(ctx, "k").Err(); err == nil {
		t.Fatal("a hung Redis answered")
	}
	if b.Open() {
		t.Fatal("opened by a caller whose deadline had passed")
	}
	if err := client.Get(context.Background(), "k").Err(); err == nil || !b.Open() {
		t.Fatalf("next call: %v, open %v", err, b.Open())
	}
}
