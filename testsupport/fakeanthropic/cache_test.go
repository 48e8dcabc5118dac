package fakeanthropic

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// cachedBody has a system prompt of sysWords tokens marked for caching and a
// user message of userText.
func cachedBody(sysWords int, ttl, userText string) string {
	cc := `{"type":"ephemeral"}`
	if ttl != "" {
		cc = fmt.Sprintf(`{"type":"ephemeral","ttl":%q}`, ttl)
	}
	return fmt.Sprintf(`{"model":"claude-sonnet-4-6","max_tokens":50,"system":[{"type":"text","text":%q,"cache_control":%s}],"messages":[{"role":"user","content":%q}]}`,
		strings.TrimSpace(strings.Repeat("rule ", sysWords)), cc, userText)
}

func usageFor(t *testing.T, r result) ResponseUsage {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var m MessageResponse
	mustJSON(t, r.body, &m)
	return m.Usage
}

func TestPromptCaching(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 1000, ITPM: 100_000, OTPM: 1e6}))
	ts := start(t, s)
	hdr := out(5)
	b1 := cachedBody(2000, "", "first question")
	total, _ := CountTokens([]byte(b1))
	userPart := MessageOverhead + 2 // "first question"

	u := usageFor(t, do(t, ts, call{key: keyA1, body: b1, headers: hdr}))
	want := ResponseUsage{InputTokens: RequestOverhead + userPart, CacheCreationInputTokens: 2000,
		CacheCreation: CacheCreation{Ephemeral5mInputTokens: 2000}, OutputTokens: 5, ServiceTier: "standard"}
	if u != want {
		t.Fatalf("first: %+v\nwant %+v", u, want)
	}
	if u.InputTokens+u.CacheCreationInputTokens+u.CacheReadInputTokens != total {
		t.Errorf("parts do not add up to %d", total)
	}
	if lv := s.Snapshot()["a"].InputTokens; lv != float64(100_000-total) {
		t.Errorf("ITPM level %v: cache writes count", lv)
	}

	// Same prefix, other question, other key of the same account: a read.
	b2 := cachedBody(2000, "", "second one")
	u = usageFor(t, do(t, ts, call{key: keyA2, body: b2, headers: hdr}))
	want = ResponseUsage{InputTokens: RequestOverhead + userPart, CacheReadInputTokens: 2000, OutputTokens: 5, ServiceTier: "standard"}
	if u != want {
		t.Fatalf("second: %+v\nwant %+v", u, want)
	}
	if lv := s.Snapshot()["a"].InputTokens; lv != float64(100_000-total-u.InputTokens) {
		t.Errorf("ITPM level %v: cache reads must not count", lv)
	}
	if c := s.Counters("a"); c.CacheReadInput != 2000 || c.CacheCreationInput != 2000 {
		t.Errorf("counters %+v", c)
	}

	// Another account has its own cache.
	u = usageFor(t, do(t, ts, call{key: keyB, body: b2, headers: hdr}))
	if u.CacheCreationInputTokens != 2000 || u.CacheReadInputTokens != 0 {
		t.Errorf("account b: %+v", u)
	}
	// A different model has its own cache.
	u = usageFor(t, do(t, ts, call{key: keyA1, body: strings.Replace(b2, "claude-sonnet-4-6", "claude-opus-4-1", 1), headers: hdr}))
	if u.CacheCreationInputTokens != 2000 {
		t.Errorf("other model: %+v", u)
	}
	// A changed prefix misses.
	u = usageFor(t, do(t, ts, call{key: keyA1, body: cachedBody(2001, "", "first question"), headers: hdr}))
	if u.CacheCreationInputTokens != 2001 || u.CacheReadInputTokens != 0 {
		t.Errorf("changed prefix: %+v", u)
	}

	// 5-minute TTL, refreshed by each hit.
	clk.Advance(4 * time.Minute)
	if u = usageFor(t, do(t, ts, call{key: keyA1, body: b1, headers: hdr})); u.CacheReadInputTokens != 2000 {
		t.Errorf("after 4m: %+v", u)
	}
	clk.Advance(4 * time.Minute) // 8 min after the write, 4 after the refresh
	if u = usageFor(t, do(t, ts, call{key: keyA1, body: b1, headers: hdr})); u.CacheReadInputTokens != 2000 {
		t.Errorf("after refresh: %+v", u)
	}
	clk.Advance(5*time.Minute + time.Second)
	if u = usageFor(t, do(t, ts, call{key: keyA1, body: b1, headers: hdr})); u.CacheCreationInputTokens != 2000 || u.CacheReadInputTokens != 0 {
		t.Errorf("after expiry: %+v", u)
	}
}

func TestPromptCachingOneHourAndBreakpoints(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 1000, ITPM: 1e6, OTPM: 1e6}))
	ts := start(t, s)
	hdr := out(5)
	u := usageFor(t, do(t, ts, call{key: keyA1, body: cachedBody(100, "1h", "q"), headers: hdr}))
	if u.CacheCreation != (CacheCreation{Ephemeral1hInputTokens: 100}) || u.CacheCreationInputTokens != 100 {
		t.Errorf("1h write: %+v", u)
	}
	clk.Advance(59 * time.Minute)
	if u = usageFor(t, do(t, ts, call{key: keyA1, body: cachedBody(100, "1h", "q"), headers: hdr})); u.CacheReadInputTokens != 100 {
		t.Errorf("1h read: %+v", u)
	}

	// Two breakpoints: system (cached above) and the first user message.
	body := `{"model":"claude-sonnet-4-6","max_tokens":50,"system":[{"type":"text","text":"` + strings.TrimSpace(strings.Repeat("rule ", 100)) +
		`","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":[{"type":"text","text":"alpha beta gamma","cache_control":{"type":"ephemeral"}},{"type":"text","text":"tail"}]}]}`
	u = usageFor(t, do(t, ts, call{key: keyA1, body: body, headers: hdr}))
	want := ResponseUsage{InputTokens: RequestOverhead + 1, CacheReadInputTokens: 100, CacheCreationInputTokens: MessageOverhead + 3,
		CacheCreation: CacheCreation{Ephemeral5mInputTokens: MessageOverhead + 3}, OutputTokens: 5, ServiceTier: "standard"}
	if u != want {
		t.Errorf("two breakpoints: %+v\nwant %+v", u, want)
	}
	u = usageFor(t, do(t, ts, call{key: keyA1, body: body, headers: hdr}))
	if u.CacheReadInputTokens != 100+MessageOverhead+3 || u.CacheCreationInputTokens != 0 || u.InputTokens != RequestOverhead+1 {
		t.Errorf("second pass: %+v", u)
	}

	// Top-level cache_control caches the whole prompt.
	top := `{"model":"claude-sonnet-4-6","max_tokens":50,"cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":"one two three"}]}`
	u = usageFor(t, do(t, ts, call{key: keyA1, body: top, headers: hdr}))
	if u.CacheCreationInputTokens != MessageOverhead+3 || u.InputTokens != RequestOverhead {
		t.Errorf("top-level: %+v", u)
	}
	if u = usageFor(t, do(t, ts, call{key: keyA1, body: top, headers: hdr})); u.CacheReadInputTokens != MessageOverhead+3 {
		t.Errorf("top-level read: %+v", u)
	}
}

func TestPromptCachingMinimumAndRateLimitedWrites(t *testing.T) {
	clk := newClock()
	cfg := twoAccounts(clk, Limits{RPM: 1000, ITPM: 3000, OTPM: 1e6})
	cfg.MinCacheableTokens = 1024
	s := New(cfg)
	ts := start(t, s)
	hdr := out(5)
	if u := usageFor(t, do(t, ts, call{key: keyA1, body: cachedBody(500, "", "q"), headers: hdr})); u.CacheCreationInputTokens != 0 || u.InputTokens != 500+RequestOverhead+MessageOverhead+1 {
		t.Errorf("below minimum: %+v", u)
	}
	// A 429 writes nothing to the cache.
	big := cachedBody(2500, "", "q")
	if r := do(t, ts, call{key: keyA1, body: big, headers: hdr}); r.status != 429 {
		t.Fatalf("want 429, got %d", r.status)
	}
	clk.Advance(time.Minute)
	if u := usageFor(t, do(t, ts, call{key: keyA1, body: big, headers: hdr})); u.CacheCreationInputTokens != 2500 {
		t.Errorf("after 429: %+v", u)
	}
	// Reads are free: a 2,500-token cached prefix passes with a nearly empty bucket.
	if u := usageFor(t, do(t, ts, call{key: keyA1, body: big, headers: hdr})); u.CacheReadInputTokens != 2500 {
		t.Errorf("read: %+v", u)
	}
}
