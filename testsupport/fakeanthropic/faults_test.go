package fakeanthropic

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestStatusFaults(t *testing.T) {
	tests := []struct {
		name       string
		fault      Fault
		wantStatus int
		wantBody   string // with REQ for the request id
		retryAfter string
	}{
		{"overloaded", Fault{Kind: FaultOverloaded}, 529,
			`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"REQ"}`, ""},
		{"api error", Fault{Kind: FaultAPIError}, 500,
			`{"type":"error","error":{"type":"api_error","message":"Internal server error"},"request_id":"REQ"}`, ""},
		{"spend cap", Fault{Kind: FaultSpendCap}, 429,
			`{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your API usage limits. You will regain access when your usage limits reset or you raise them.","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"REQ"}`, ""},
		{"rate limited", Fault{Kind: FaultRateLimited, RetryAfter: 1500 * time.Millisecond}, 429,
			`{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your organization's rate limit. Please try again later."},"request_id":"REQ"}`, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s := New(twoAccounts(clk, Limits{}))
			ts := start(t, s)
			s.InjectNext(2, tt.fault)
			before := s.Snapshot()["a"]
			for i := range 2 {
				r := do(t, ts, call{key: keyA1, body: helloBody})
				want := strings.Replace(tt.wantBody, "REQ", r.header.Get("request-id"), 1)
				if r.status != tt.wantStatus || string(r.body) != want {
					t.Fatalf("request %d: %d %s\nwant %d %s", i, r.status, r.body, tt.wantStatus, want)
				}
				if got := r.header.Get("retry-after"); got != tt.retryAfter {
					t.Errorf("retry-after %q, want %q", got, tt.retryAfter)
				}
				if r.header.Get("anthropic-ratelimit-requests-limit") != "50" {
					t.Errorf("missing rate-limit headers")
				}
			}
			if s.Snapshot()["a"] != before {
				t.Error("faulted requests were charged")
			}
			if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 {
				t.Fatalf("third: %d", r.status)
			}
			if c := s.Counters("a"); c.Faults != 2 || c.Requests != 3 {
				t.Errorf("counters %+v", c)
			}
			if recs := s.Requests(); recs[0].Fault != tt.fault.Kind || recs[2].Fault != 0 {
				t.Errorf("recorded faults %v %v", recs[0].Fault, recs[2].Fault)
			}
		})
	}
}

func TestFaultMatching(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 1000, ITPM: 1e6, OTPM: 1e6}))
	ts := start(t, s)

	s.InjectNext(1, Fault{Kind: FaultOverloaded, Account: "b"})
	if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 {
		t.Errorf("account a hit b's fault: %d", r.status)
	}
	if r := do(t, ts, call{key: keyA1, body: `{}`}); r.status != 400 {
		t.Errorf("invalid request: %d", r.status)
	}
	if r := do(t, ts, call{key: keyB, body: helloBody}); r.status != 529 {
		t.Errorf("account b: %d", r.status)
	}
	if s.PendingFaults() != 0 {
		t.Errorf("pending %d", s.PendingFaults())
	}

	// Stream-only faults wait for a streaming request.
	s.InjectNext(1, Fault{Kind: FaultStreamError})
	if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 || s.PendingFaults() != 1 {
		t.Errorf("non-stream consumed a stream fault")
	}
	s.ClearFaults()

	s.InjectNext(Forever, Fault{Kind: FaultAPIError})
	for range 5 {
		if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 500 {
			t.Fatalf("forever: %d", r.status)
		}
	}
	s.ClearFaults()
	if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 {
		t.Errorf("after clear: %d", r.status)
	}
	s.InjectNext(0, Fault{Kind: FaultAPIError})
	if s.PendingFaults() != 0 {
		t.Error("n=0 queued a fault")
	}
	// Queue order: first matching first.
	s.InjectNext(1, Fault{Kind: FaultAPIError})
	s.InjectNext(1, Fault{Kind: FaultOverloaded})
	if a, b := do(t, ts, call{key: keyA1, body: helloBody}).status, do(t, ts, call{key: keyA1, body: helloBody}).status; a != 500 || b != 529 {
		t.Errorf("order: %d %d", a, b)
	}
	// count_tokens never consumes faults.
	s.InjectNext(1, Fault{Kind: FaultAPIError})
	if r := do(t, ts, call{key: keyA1, path: "/v1/messages/count_tokens", body: `{"model":"m","messages":[{"role":"user","content":"x"}]}`}); r.status != 200 {
		t.Errorf("count_tokens: %d", r.status)
	}
}

func TestSpendCapSwitch(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{}))
	ts := start(t, s)
	if !s.SetSpendCapReached("a", true) {
		t.Fatal("unknown account")
	}
	for range 3 {
		r := do(t, ts, call{key: keyA1, body: helloBody})
		e := r.errBody(t)
		if r.status != 429 || e.Error.Type != ErrRateLimit || e.Error.Details == nil || e.Error.Details.ErrorCode != "enforced_spend_limit_reached" || r.header.Get("retry-after") != "" {
			t.Fatalf("%d %s retry-after=%q", r.status, r.body, r.header.Get("retry-after"))
		}
	}
	if c := s.Counters("a"); c.SpendCapped != 3 || c.RateLimited != 0 {
		t.Errorf("counters %+v", c)
	}
	if r := do(t, ts, call{key: keyB, body: helloBody}); r.status != 200 {
		t.Errorf("account b: %d", r.status)
	}
	s.SetSpendCapReached("a", false)
	if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 {
		t.Errorf("after lifting: %d", r.status)
	}
}

func TestMidStreamErrorFault(t *testing.T) {
	tests := []struct {
		name  string
		after int
		want  string
	}{
		{"before any delta", 0, "message_start,content_block_start,ping,error"},
		{"after 2 deltas", 2, "message_start,content_block_start,ping,content_block_delta,content_block_delta,error"},
		{"after all deltas", 99, "message_start,content_block_start,ping,content_block_delta,content_block_delta,content_block_delta,error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s := New(twoAccounts(clk, Limits{}))
			ts := start(t, s)
			s.InjectNext(1, Fault{Kind: FaultStreamError, AfterDeltas: tt.after})
			resp := send(t, ts, call{key: keyA1, body: streamBody, headers: out(12)})
			defer resp.Body.Close()
			evs, err := parseSSE(t, resp.Body)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("status %d err %v", resp.StatusCode, err)
			}
			if names(evs) != tt.want {
				t.Fatalf("events %s\nwant   %s", names(evs), tt.want)
			}
			if got := string(evs[len(evs)-1].data); got != `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}` {
				t.Errorf("error event %s", got)
			}
			produced := min(tt.after, 3) * 4
			rec := s.Requests()[0]
			if rec.Completed || rec.Status != 200 || rec.ErrorType != ErrOverloaded || rec.OutputTokens != produced {
				t.Errorf("record %+v", rec)
			}
			if lv := s.Snapshot()["a"].OutputTokens; lv != float64(DefaultOTPM-produced) {
				t.Errorf("output level %v, want %d", lv, DefaultOTPM-produced)
			}
		})
	}
}

func TestDropFaults(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{}))
	ts := start(t, s)

	s.InjectNext(1, Fault{Kind: FaultDropBeforeHeaders})
	req := newReq(t, ts.URL, call{key: keyA1, body: helloBody})
	if resp, err := ts.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("drop before headers: got status %d", resp.StatusCode)
	}

	s.InjectNext(1, Fault{Kind: FaultDropMidStream, AfterDeltas: 1})
	resp := send(t, ts, call{key: keyA1, body: streamBody, headers: out(12)})
	defer resp.Body.Close()
	evs, err := parseSSE(t, resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error = %v, want unexpected EOF", err)
	}
	if got := names(evs); got != "message_start,content_block_start,ping,content_block_delta" {
		t.Errorf("events before the drop: %s", got)
	}
	recs := waitRecords(t, s, 2) // in completion order, which races here
	if recs[0].Fault != FaultDropBeforeHeaders {
		recs[0], recs[1] = recs[1], recs[0]
	}
	if recs[0].Status != 0 || recs[0].Fault != FaultDropBeforeHeaders || recs[1].Completed || recs[1].ErrorType != "dropped" || recs[1].Status != 200 {
		t.Errorf("records %+v", recs)
	}
	// The server keeps working.
	if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 {
		t.Errorf("after drops: %d", r.status)
	}
}

func TestDelayFaults(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{}))
	ts := start(t, s)
	const d = 150 * time.Millisecond

	s.InjectNext(1, Fault{Kind: FaultDelayHeaders, Delay: d})
	t0 := time.Now()
	if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 {
		t.Fatalf("delayed: %d", r.status)
	}
	if el := time.Since(t0); el < d {
		t.Errorf("headers after %v, want ≥ %v", el, d)
	}

	// Slow stream: a delay before each event (7 events with 4 deltas... count them).
	s.InjectNext(1, Fault{Kind: FaultSlowStream, Delay: 20 * time.Millisecond})
	t0 = time.Now()
	resp := send(t, ts, call{key: keyA1, body: streamBody, headers: out(8)})
	headersAfter := time.Since(t0)
	evs, err := parseSSE(t, resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(t0)
	if want := time.Duration(len(evs)) * 20 * time.Millisecond; el < want {
		t.Errorf("slow stream of %d events took %v, want ≥ %v", len(evs), el, want)
	}
	if headersAfter > time.Duration(len(evs))*20*time.Millisecond {
		t.Errorf("headers came late (%v): the delay is between events", headersAfter)
	}
}

func TestClientGoneEndsRequest(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{}))
	ts := start(t, s)

	// Long header delay, client gives up: the handler must return promptly.
	s.InjectNext(1, Fault{Kind: FaultDelayHeaders, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req := newReq(t, ts.URL, call{key: keyA1, body: helloBody}).WithContext(ctx)
	if resp, err := ts.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("want timeout")
	}
	waitRecords(t, s, 1)

	// Slow stream, client stops reading after the first event.
	s.InjectNext(1, Fault{Kind: FaultSlowStream, Delay: time.Hour})
	ctx2, cancel2 := context.WithCancel(context.Background())
	req = newReq(t, ts.URL, call{key: keyA1, body: streamBody}).WithContext(ctx2)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel2()
	resp.Body.Close()
	recs := waitRecords(t, s, 2)
	if recs[1].ErrorType != "client_gone" || recs[1].Completed {
		t.Errorf("record %+v", recs[1])
	}
}

// waitRecords waits (bounded) until the fake has recorded n requests.
func waitRecords(t *testing.T, s *Server, n int) []RecordedRequest {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r := s.Requests(); len(r) >= n {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("handler did not finish: %d records", len(s.Requests()))
	return nil
}

func TestRecorderFallbackForDrop(t *testing.T) {
	// Without a hijackable connection the fake aborts the handler the
	// net/http way (http.ErrAbortHandler).
	s := New(Config{})
	s.InjectNext(1, Fault{Kind: FaultDropBeforeHeaders})
	req := newReq(t, "http://fake", call{key: DefaultKey, body: helloBody})
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v", v)
		}
		if !regexp.MustCompile(`^req_`).MatchString(s.Requests()[0].RequestID) {
			t.Error("request not recorded")
		}
	}()
	s.ServeHTTP(&noHijack{header: http.Header{}}, req)
}

type noHijack struct{ header http.Header }

func (w *noHijack) Header() http.Header         { return w.header }
func (w *noHijack) Write(b []byte) (int, error) { return len(b), nil }
func (w *noHijack) WriteHeader(int)             {}
