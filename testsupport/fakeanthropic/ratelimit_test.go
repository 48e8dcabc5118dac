package fakeanthropic

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// bodyOf returns a Messages body whose total input is exactly n tokens (n ≥ 8).
func bodyOf(t *testing.T, n int, maxTokens int) string {
	t.Helper()
	words := n - RequestOverhead - MessageOverhead
	b := fmt.Sprintf(`{"model":"claude-sonnet-4-6","max_tokens":%d,"messages":[{"role":"user","content":%q}]}`,
		maxTokens, strings.TrimSpace(strings.Repeat("word ", words)))
	if got, _ := CountTokens([]byte(b)); got != n {
		t.Fatalf("bodyOf(%d) counts %d", n, got)
	}
	return b
}

func out(n int) map[string]string { return map[string]string{OutputTokensHeader: itoa(n)} }

func TestRPMLimitAndRetryAfter(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 3, ITPM: 1e6, OTPM: 1e6}))
	ts := start(t, s)
	for i := range 3 {
		if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := do(t, ts, call{key: keyA2, body: helloBody}) // same account, other key
	if r.status != 429 {
		t.Fatalf("4th request: %d", r.status)
	}
	e := r.errBody(t)
	wantMsg := "This request would exceed your organization's rate limit of 3 requests per minute (org: org-aaaa, model: claude-sonnet-4-6). For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://claude.com/contact-sales to discuss your options for a rate limit increase."
	if e.Error.Type != ErrRateLimit || e.Error.Message != wantMsg || e.RequestID != r.header.Get("request-id") {
		t.Errorf("429 body = %+v", e)
	}
	if recs := s.Requests(); recs[len(recs)-1].LimitHit != "requests per minute" || recs[0].LimitHit != "" {
		t.Errorf("LimitHit recorded %q (429) and %q (200)", recs[len(recs)-1].LimitHit, recs[0].LimitHit)
	}
	// One request refills in 60/3 = 20 s.
	if got := r.header.Get("retry-after"); got != "20" {
		t.Errorf("retry-after = %q, want 20", got)
	}
	if got := r.header.Get("anthropic-ratelimit-requests-remaining"); got != "0" {
		t.Errorf("requests-remaining = %q", got)
	}
	// The other account is untouched.
	if r := do(t, ts, call{key: keyB, body: helloBody}); r.status != 200 {
		t.Fatalf("account b: %d", r.status)
	}
	clk.Advance(19 * time.Second)
	r = do(t, ts, call{key: keyA1, body: helloBody})
	if r.status != 429 || r.header.Get("retry-after") != "1" {
		t.Fatalf("after 19s: %d retry-after %q", r.status, r.header.Get("retry-after"))
	}
	clk.Advance(time.Second)
	if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 {
		t.Fatalf("after 20s: %d", r.status)
	}
	c := s.Counters("a")
	if c.Requests != 6 || c.Succeeded != 4 || c.RateLimited != 2 {
		t.Errorf("counters = %+v", c)
	}
}

func TestITPMLimit(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 1000, ITPM: 30_000, OTPM: 1e6}))
	ts := start(t, s)
	big := bodyOf(t, 20_000, 100)
	if r := do(t, ts, call{key: keyA1, body: big, headers: out(10)}); r.status != 200 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	r := do(t, ts, call{key: keyA1, body: big, headers: out(10)})
	if r.status != 429 {
		t.Fatalf("second: %d", r.status)
	}
	if !strings.HasPrefix(r.errBody(t).Error.Message, "This request would exceed your organization's rate limit of 30,000 input tokens per minute (org: org-aaaa, model: claude-sonnet-4-6). ") {
		t.Errorf("message = %q", r.errBody(t).Error.Message)
	}
	// 10,000 left; need 20,000 at 500/s → 20 s.
	if got := r.header.Get("retry-after"); got != "20" {
		t.Errorf("retry-after = %q", got)
	}
	if got := r.header.Get("anthropic-ratelimit-input-tokens-remaining"); got != "10000" {
		t.Errorf("input-tokens-remaining = %q", got)
	}
	clk.Advance(19500 * time.Millisecond) // 19.5 s → still 0.5 s short → ceil 1
	if r := do(t, ts, call{key: keyA1, body: big, headers: out(10)}); r.status != 429 || r.header.Get("retry-after") != "1" {
		t.Fatalf("after 19.5s: %d %q", r.status, r.header.Get("retry-after"))
	}
	clk.Advance(500 * time.Millisecond)
	if r := do(t, ts, call{key: keyA1, body: big, headers: out(10)}); r.status != 200 {
		t.Fatalf("after 20s: %d", r.status)
	}
}

func TestOverCapacityRequestAlways429(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 1000, ITPM: 1000, OTPM: 1e6}))
	ts := start(t, s)
	huge := bodyOf(t, 1500, 10)
	r := do(t, ts, call{key: keyA1, body: huge})
	if r.status != 429 || r.header.Get("retry-after") != "1" {
		t.Fatalf("full bucket, over capacity: %d retry-after %q", r.status, r.header.Get("retry-after"))
	}
	// Half-empty bucket: retry-after is the time until full, and it still fails.
	if r := do(t, ts, call{key: keyA1, body: bodyOf(t, 500, 10), headers: out(1)}); r.status != 200 {
		t.Fatalf("small: %d", r.status)
	}
	r = do(t, ts, call{key: keyA1, body: huge})
	if r.status != 429 || r.header.Get("retry-after") != "30" { // 500 at 1000/60 per s
		t.Fatalf("over capacity: %d retry-after %q", r.status, r.header.Get("retry-after"))
	}
	clk.Advance(time.Hour)
	if r := do(t, ts, call{key: keyA1, body: huge}); r.status != 429 {
		t.Fatalf("after an hour: %d", r.status)
	}
}

func TestOTPMChargedAtCompletion(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 1000, ITPM: 1e6, OTPM: 1000}))
	ts := start(t, s)
	// max_tokens far above the OTPM limit does not matter in this mode.
	body := `{"model":"m","max_tokens":64000,"messages":[{"role":"user","content":"hi"}]}`
	if r := do(t, ts, call{key: keyA1, body: body, headers: out(900)}); r.status != 200 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	if lv := s.Snapshot()["a"].OutputTokens; lv != 100 {
		t.Errorf("output level = %v, want 100", lv)
	}
	// 100 left ≥ 1: admitted, and drives the bucket into debt.
	r := do(t, ts, call{key: keyA1, body: body, headers: out(600)})
	if r.status != 200 {
		t.Fatalf("second: %d", r.status)
	}
	if got := r.header.Get("anthropic-ratelimit-output-tokens-remaining"); got != "0" {
		t.Errorf("output remaining after debt = %q", got)
	}
	if lv := s.Snapshot()["a"].OutputTokens; lv != -500 {
		t.Errorf("output level = %v, want -500", lv)
	}
	r = do(t, ts, call{key: keyA1, body: body, headers: out(1)})
	if r.status != 429 || !strings.Contains(r.errBody(t).Error.Message, "rate limit of 1,000 output tokens per minute") {
		t.Fatalf("third: %d %s", r.status, r.body)
	}
	// Need level ≥ 1: 501 tokens at 1000/60 per s = 30.06 s → 31.
	if got := r.header.Get("retry-after"); got != "31" {
		t.Errorf("retry-after = %q", got)
	}
}

func TestOTPMReservedAtStart(t *testing.T) {
	clk := newClock()
	cfg := twoAccounts(clk, Limits{RPM: 1000, ITPM: 1e6, OTPM: 1000})
	cfg.OTPMAtStart = true
	s := New(cfg)
	ts := start(t, s)
	mk := func(maxTokens int) string {
		return fmt.Sprintf(`{"model":"m","max_tokens":%d,"messages":[{"role":"user","content":"hi"}]}`, maxTokens)
	}
	r := do(t, ts, call{key: keyA1, body: mk(1001), headers: out(1)})
	if r.status != 429 || !strings.Contains(r.errBody(t).Error.Message, "1,000 output tokens per minute") {
		t.Fatalf("max_tokens over capacity: %d %s", r.status, r.body)
	}
	// Reserve 800, produce 100: 700 refunded at the end.
	if r := do(t, ts, call{key: keyA1, body: mk(800), headers: out(100)}); r.status != 200 {
		t.Fatalf("reserve 800: %d", r.status)
	}
	if lv := s.Snapshot()["a"].OutputTokens; lv != 900 {
		t.Errorf("level after settle = %v, want 900", lv)
	}
	// 900 available; max_tokens 950 does not fit even though output would be 1.
	r = do(t, ts, call{key: keyA1, body: mk(950), headers: out(1)})
	if r.status != 429 || r.header.Get("retry-after") != "3" { // 50 at 16.67/s
		t.Fatalf("reserve 950: %d retry-after %q", r.status, r.header.Get("retry-after"))
	}
}

func TestBucketsPerAccountAndRefill(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 60, ITPM: 6000, OTPM: 600}))
	ts := start(t, s)
	for _, k := range []string{keyA1, keyA2} {
		if r := do(t, ts, call{key: k, body: bodyOf(t, 1200, 100), headers: out(60)}); r.status != 200 {
			t.Fatal(r.status)
		}
	}
	snap := s.Snapshot()
	if want := (BucketLevels{Requests: 58, InputTokens: 3600, OutputTokens: 480}); snap["a"] != want {
		t.Errorf("a = %+v, want %+v", snap["a"], want)
	}
	if want := (BucketLevels{Requests: 60, InputTokens: 6000, OutputTokens: 600}); snap["b"] != want {
		t.Errorf("b = %+v, want %+v", snap["b"], want)
	}
	// Continuous refill: limit/60 per second, capped at the limit.
	clk.Advance(1500 * time.Millisecond)
	snap = s.Snapshot()
	if want := (BucketLevels{Requests: 59.5, InputTokens: 3750, OutputTokens: 495}); !near(snap["a"], want) {
		t.Errorf("after 1.5s a = %+v, want %+v", snap["a"], want)
	}
	clk.Advance(time.Minute)
	if want := (BucketLevels{Requests: 60, InputTokens: 6000, OutputTokens: 600}); s.Snapshot()["a"] != want {
		t.Errorf("after a minute a = %+v", s.Snapshot()["a"])
	}
}

func near(a, b BucketLevels) bool {
	eq := func(x, y float64) bool { return math.Abs(x-y) < 1e-6 }
	return eq(a.Requests, b.Requests) && eq(a.InputTokens, b.InputTokens) && eq(a.OutputTokens, b.OutputTokens)
}

func TestRateLimitHeaders(t *testing.T) {
	clk := newClock() // 2026-11-02T10:00:00Z
	clk.Advance(250 * time.Millisecond)
	s := New(twoAccounts(clk, Limits{RPM: 50, ITPM: 30_000, OTPM: 8_000}))
	ts := start(t, s)
	r := do(t, ts, call{key: keyA1, body: bodyOf(t, 1600, 1000), headers: out(700)})
	if r.status != 200 {
		t.Fatal(r.status)
	}
	// requests: 49 left, 1 refills in 1.2 s → 10:00:01.45 → rounded up to :02.
	// input: 28,400 left → "28000"; 1,600 at 500/s = 3.2 s → 10:00:03.45 → :04.
	// output: 7,300 → "7000"; 700 at 133.33/s = 5.25 s → 10:00:05.5 → :06.
	// tokens: 38,000 limit, 35,700 → "36000", the later reset.
	want := map[string]string{
		"requests-limit": "50", "requests-remaining": "49", "requests-reset": "2026-11-02T10:00:02Z",
		"input-tokens-limit": "30000", "input-tokens-remaining": "28000", "input-tokens-reset": "2026-11-02T10:00:04Z",
		"output-tokens-limit": "8000", "output-tokens-remaining": "7000", "output-tokens-reset": "2026-11-02T10:00:06Z",
		"tokens-limit": "38000", "tokens-remaining": "36000", "tokens-reset": "2026-11-02T10:00:06Z",
	}
	for k, v := range want {
		if got := r.header.Get("anthropic-ratelimit-" + k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if r.header.Get("retry-after") != "" {
		t.Error("retry-after on a 200")
	}
	// Full buckets reset "now".
	r = do(t, ts, call{key: keyB, path: "/v1/messages/count_tokens", body: `{"model":"m","messages":[{"role":"user","content":"x"}]}`})
	if got := r.header.Get("anthropic-ratelimit-tokens-reset"); got != "2026-11-02T10:00:01Z" {
		t.Errorf("full bucket reset = %q", got)
	}
}

func TestHeaderFormatting(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want int64
	}{{0, 0}, {-300, 0}, {499, 0}, {500, 1000}, {1499.9, 1000}, {29_500, 30_000}, {30_000, 30_000}} {
		if got := roundThousand(tt.in); got != tt.want {
			t.Errorf("roundThousand(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
	loc := time.FixedZone("x", 3600)
	for _, tt := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2025, 8, 21, 12, 40, 59, 0, time.UTC), "2025-08-21T12:40:59Z"},
		{time.Date(2025, 8, 21, 12, 40, 58, 1, time.UTC), "2025-08-21T12:40:59Z"},
		{time.Date(2025, 8, 21, 13, 40, 58, 5e8, loc), "2025-08-21T12:40:59Z"},
	} {
		if got := formatReset(tt.in); got != tt.want {
			t.Errorf("formatReset(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for n, want := range map[int64]string{0: "0", 50: "50", 999: "999", 1000: "1,000", 30000: "30,000", 2000000: "2,000,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q", n, got)
		}
	}
}
