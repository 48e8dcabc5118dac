package anthropic

import (
	"testing"
	"time"
)

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		usage   Usage
		errType ErrorType
		bad     bool
	}{
		{"message", `{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-6",
		  "content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,
		  "usage":{"input_tokens":25,"output_tokens":15,"cache_creation_input_tokens":3,"cache_read_input_tokens":40,
		  "cache_creation":{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":0},"service_tier":"standard"}}`,
			Usage{InputTokens: 25, OutputTokens: 15, CacheCreationInputTokens: 3, CacheReadInputTokens: 40}, "", false},
		{"ollama message", `{"id":"msg_x","type":"message","usage":{"input_tokens":7,"output_tokens":2}}`,
			Usage{InputTokens: 7, OutputTokens: 2}, "", false},
		{"error", `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"},"request_id":"req_1"}`,
			Usage{}, RateLimitError, false},
		{"count_tokens", `{"input_tokens": 2095}`, Usage{}, "", false},
		{"broken", `{"type":"message","usage":`, Usage{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, e, err := ParseResponse([]byte(tt.body))
			if (err != nil) != tt.bad {
				t.Fatalf("err = %v", err)
			}
			if u != tt.usage {
				t.Errorf("usage = %+v, want %+v", u, tt.usage)
			}
			var got ErrorType
			if e != nil {
				got = e.Type
			}
			if got != tt.errType {
				t.Errorf("error type = %q, want %q", got, tt.errType)
			}
		})
	}
	if got := (Usage{InputTokens: 10, CacheCreationInputTokens: 5, CacheReadInputTokens: 100}).ITPMTokens(); got != 15 {
		t.Errorf("ITPMTokens = %d, want 15 (cache reads excluded)", got)
	}
}

func TestRateLimitReading(t *testing.T) {
	hdr := [][2]string{
		{"anthropic-ratelimit-requests-limit", "1000"},
		{"anthropic-ratelimit-requests-remaining", "999"},
		{"anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"},
		{"anthropic-ratelimit-input-tokens-limit", "80000"},
		{"anthropic-ratelimit-input-tokens-remaining", "79000"},
		{"anthropic-ratelimit-input-tokens-reset", "2025-08-21T12:40:59Z"},
		{"anthropic-ratelimit-output-tokens-limit", "16000"},
		{"anthropic-ratelimit-output-tokens-remaining", "16000"},
		{"anthropic-ratelimit-output-tokens-reset", "2025-08-21T12:40:58Z"},
		{"anthropic-ratelimit-tokens-limit", "96000"},
		{"anthropic-ratelimit-tokens-remaining", "95000"},
		{"anthropic-ratelimit-tokens-reset", "garbage"},
		{"anthropic-priority-input-tokens-limit", "5"},
		{"retry-after", "17"},
		{"request-id", "req_011CSLsW7mFqvHHnzrKdKjAE"},
	}
	var r RateLimitReading
	for _, h := range hdr {
		r.Observe(h[0], h[1])
	}
	reset := time.Date(2025, 8, 21, 12, 40, 59, 0, time.UTC)
	want := [numAxes]AxisReading{
		Requests:     {Present: true, Limit: 1000, Remaining: 999, Reset: reset},
		InputTokens:  {Present: true, Limit: 80000, Remaining: 79000, Reset: reset},
		OutputTokens: {Present: true, Limit: 16000, Remaining: 16000, Reset: reset.Add(-time.Second)},
		Tokens:       {Present: true, Limit: 96000, Remaining: 95000}, // unparsable reset left zero
	}
	for _, a := range Axes {
		if g := r.Axis(a); g.Present != want[a].Present || g.Limit != want[a].Limit || g.Remaining != want[a].Remaining || !g.Reset.Equal(want[a].Reset) {
			t.Errorf("%s: got %+v want %+v", a, g, want[a])
		}
	}
	if !r.HasRetryAfter || r.RetryAfter != 17*time.Second || !r.Any() {
		t.Errorf("retry-after = %v %v", r.HasRetryAfter, r.RetryAfter)
	}
	// retry-after-ms wins whatever the order.
	for _, order := range [][2][2]string{
		{{"retry-after", "3"}, {"retry-after-ms", "250.5"}},
		{{"retry-after-ms", "250.5"}, {"retry-after", "3"}},
	} {
		var r RateLimitReading
		r.Observe(order[0][0], order[0][1])
		r.Observe(order[1][0], order[1][1])
		if r.RetryAfter != 250500*time.Microsecond {
			t.Errorf("%v: RetryAfter = %v, want 250.5ms", order, r.RetryAfter)
		}
	}
	var empty RateLimitReading
	empty.Observe("retry-after", "-1")
	empty.Observe("content-type", "application/json")
	if empty.Any() || empty.HasRetryAfter {
		t.Errorf("bad values must be ignored: %+v", empty)
	}
}
