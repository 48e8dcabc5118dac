package emulator

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// attemptLog records what each upstream-filter stream saw.
type attemptLog struct {
	mu       sync.Mutex
	roles    []string
	attempts []string
	prevKeys []string
}

// upstreamProc sets x-key: attempt-<n> on every attempt's request headers.
func upstreamProc(log *attemptLog) func(*procStream) error {
	return func(p *procStream) error {
		r := p.recv()
		n, _ := headerOf(r.GetRequestHeaders(), "x-envoy-attempt-count")
		prev, _ := headerOf(r.GetRequestHeaders(), "x-key")
		log.mu.Lock()
		log.roles = append(log.roles, p.role())
		log.attempts = append(log.attempts, n)
		log.prevKeys = append(log.prevKeys, prev)
		log.mu.Unlock()
		p.send(hdrsResp(mut(nil, setRaw("x-key", "attempt-"+n))))
		if _, err := p.st.Recv(); err != nil {
			return nil
		}
		p.send(respHdrsResp(nil))
		p.drain()
		return nil
	}
}

func startRetry(t *testing.T, backend string, log *attemptLog) *Envoy {
	t.Helper()
	_, paddr := startProc(t, upstreamProc(log))
	b, err := os.ReadFile("testdata/retry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return start(t, b, Options{Clusters: map[string]string{"proc": paddr, "backend": backend}})
}

func TestRouter_RetryOn429HonorsRetryAfter(t *testing.T) {
	var calls atomic.Int32
	up, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("retry-after", "1")
			w.WriteHeader(429)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	log := &attemptLog{}
	e := startRetry(t, addr, log)
	t0 := time.Now()
	r := do(t, e, "POST", "/v1/messages", "body", nil)
	if r.status != 200 || r.body != "ok" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if el := time.Since(t0); el < time.Second {
		t.Errorf("retried after %v: retry-after 1 s not honoured", el)
	}
	if up.n() != 2 {
		t.Fatalf("%d upstream attempts, want 2", up.n())
	}
	req, body := up.last()
	if req.Header.Get("x-envoy-attempt-count") != "2" || req.Host != "api.example.test" || body != "body" {
		t.Errorf("attempt 2: count %q host %q body %q", req.Header.Get("x-envoy-attempt-count"), req.Host, body)
	}
	s := e.Stats()
	if s["cluster.backend.upstream_rq_retry"] != 1 || s["cluster.backend.upstream_rq_retry_backoff_ratelimited"] != 1 ||
		s["cluster.backend.upstream_rq_retry_success"] != 1 {
		t.Errorf("stats %v", s)
	}
}

func TestRouter_UpstreamFiltersRunOncePerAttemptOnSharedHeaders(t *testing.T) {
	var calls atomic.Int32
	up, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(503)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	log := &attemptLog{}
	e := startRetry(t, addr, log)
	if r := do(t, e, "GET", "/", "", nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if fmt.Sprint(log.attempts) != "[1 2 3]" || fmt.Sprint(log.roles) != "[upstream upstream upstream]" {
		t.Fatalf("attempts %v roles %v", log.attempts, log.roles)
	}
	// Envoy's upstream filters mutate the router's downstream header map, so
	// attempt n sees the mutation attempt n-1 made.
	if fmt.Sprint(log.prevKeys) != "[ attempt-1 attempt-2]" {
		t.Fatalf("x-key seen by attempts: %q", log.prevKeys)
	}
	if req, _ := up.last(); req.Header.Get("x-key") != "attempt-3" {
		t.Fatalf("upstream x-key %q", req.Header.Get("x-key"))
	}
}

func TestRouter_RetryLimitExceeded(t *testing.T) {
	up, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		_, _ = w.Write([]byte("overloaded"))
	})
	e := startRetry(t, addr, &attemptLog{})
	r := do(t, e, "GET", "/", "", nil)
	if r.status != 503 || r.body != "overloaded" {
		t.Fatalf("got %d %q: the final attempt's response goes to the client", r.status, r.body)
	}
	if up.n() != 3 {
		t.Fatalf("%d attempts, want 1 + num_retries 2", up.n())
	}
	if s := e.Stats(); s["cluster.backend.upstream_rq_retry_limit_exceeded"] != 1 || s["cluster.backend.upstream_rq_retry_backoff_exponential"] != 2 {
		t.Errorf("stats %v", s)
	}
}

func TestRouter_RetryAfterOverMaxIntervalUsesExponentialBackOff(t *testing.T) {
	var calls atomic.Int32
	_, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("retry-after", "100") // > max_interval 2 s: skipped
			w.WriteHeader(429)
			return
		}
		w.WriteHeader(200)
	})
	e := startRetry(t, addr, &attemptLog{})
	if r := do(t, e, "GET", "/", "", nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if s := e.Stats(); s["cluster.backend.upstream_rq_retry_backoff_exponential"] != 1 || s["cluster.backend.upstream_rq_retry_backoff_ratelimited"] != 0 {
		t.Errorf("stats %v", s)
	}
}

func TestRouter_ConnectFailureRetriesThenLocalReply(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens: connection refused
	e := startRetry(t, addr, &attemptLog{})
	r := do(t, e, "GET", "/", "", nil)
	if r.status != 503 || !strings.Contains(r.body, "retried and the latest reset reason: connection failure") {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if s := e.Stats(); s["cluster.backend.upstream_rq_retry"] != 2 {
		t.Errorf("stats %v", s)
	}
}

func TestRouter_UnknownClusterIs503(t *testing.T) {
	_, addr := upstream(t, nil)
	e := startRetry(t, addr, &attemptLog{})
	if r := do(t, e, "GET", "/missing", "", nil); r.status != 503 {
		t.Fatalf("status %d, want cluster_not_found_response_code default 503", r.status)
	}
}

func TestRouter_UpstreamFilterImmediateResponseIgnored(t *testing.T) {
	_, paddr := startProc(t, func(p *procStream) error {
		p.recv()
		p.send(immediate(401, "no", nil))
		p.drain()
		return nil
	})
	up, addr := upstream(t, nil)
	b, err := os.ReadFile("testdata/retry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, b, Options{Clusters: map[string]string{"proc": paddr, "backend": addr}})
	if r := do(t, e, "GET", "/", "", nil); r.status != 200 || up.n() != 1 {
		t.Fatalf("status %d upstream calls %d", r.status, up.n())
	}
	waitStat(t, e, "cluster.backend.ext_proc.send_immediate_resp_upstream_ignored", 1)
}

// retriable-headers: a response carrying a header that matches one of
// retriable_headers is retried, whatever its status; one that does not is
// the client's answer.
func TestRouter_RetriableHeaders(t *testing.T) {
	var calls atomic.Int32
	up, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("x-retry-me", "yes")
		} else {
			w.Header().Set("x-retry-me", "no")
		}
		w.WriteHeader(401)
		_, _ = w.Write([]byte("denied"))
	})
	e := startRetry(t, addr, &attemptLog{})
	r := do(t, e, "GET", "/", "", nil)
	if r.status != 401 || r.body != "denied" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if up.n() != 2 {
		t.Fatalf("%d attempts, want 2: the first carried the retriable header, the second did not", up.n())
	}
}

// circuit_breakers max_retries bounds the retries outstanding on a cluster
// at once (RetryStateImpl::shouldRetry): a retry is counted from when it is
// scheduled until the retried attempt's outcome is in; past the bound the
// response goes to the client and upstream_rq_retry_overflow counts it.
// Envoy's default bound is 3.
func TestRouter_RetryOverflow(t *testing.T) {
	for _, tt := range []struct {
		name     string
		edit     string
		max      int
		requests int
	}{
		{"default 3", "", 3, 5},
		{"max_retries 1", "\n    circuit_breakers: {thresholds: [{max_retries: 1}]}", 1, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			firsts := make(chan struct{}, tt.requests)
			_, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("x-envoy-attempt-count") == "1" {
					firsts <- struct{}{}
					w.Header().Set("retry-after", "2") // the retries stay outstanding while the others arrive
					w.WriteHeader(429)
					return
				}
				_, _ = w.Write([]byte("ok"))
			})
			_, paddr := startProc(t, upstreamProc(&attemptLog{}))
			b, err := os.ReadFile("testdata/retry.yaml")
			if err != nil {
				t.Fatal(err)
			}
			y := strings.Replace(string(b), "  - name: backend\n    type: STATIC", "  - name: backend\n    type: STATIC"+tt.edit, 1)
			e := start(t, []byte(y), Options{Clusters: map[string]string{"proc": paddr, "backend": addr}})
			statuses := make(chan int, tt.requests)
			// A failing do ends its goroutine: wait with a bound.
			wait := func(ch <-chan struct{}, what string) {
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Fatalf("no %s after 10 s", what)
				}
			}
			for range tt.requests {
				go func() { statuses <- do(t, e, "POST", "/v1/messages", "body", nil).status }()
				wait(firsts, "first attempt") // one at a time, so the retries are scheduled in order
			}
			got := map[int]int{}
			for range tt.requests {
				select {
				case s := <-statuses:
					got[s]++
				case <-time.After(10 * time.Second):
					t.Fatalf("statuses so far %v", got)
				}
			}
			if got[200] != tt.max || got[429] != tt.requests-tt.max {
				t.Fatalf("statuses %v: want %d retried (200) and the rest overflowing (429)", got, tt.max)
			}
			if s := e.Stats(); s["cluster.backend.upstream_rq_retry_overflow"] != uint64(tt.requests-tt.max) {
				t.Errorf("overflow stat %d", s["cluster.backend.upstream_rq_retry_overflow"])
			}
		})
	}
}
