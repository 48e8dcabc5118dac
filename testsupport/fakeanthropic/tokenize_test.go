package fakeanthropic

import (
	"strings"
	"testing"
)

func TestCountText(t *testing.T) {
	tests := []struct {
		text string
		want int
	}{
		{"", 0},
		{"   \n\t", 0},
		{"hello", 1},
		{"hello world", 2},
		{"Hello, world!", 4},        // Hello , world !
		{"abcdefgh", 1},             // 8 runes: one token
		{"abcdefghi", 2},            // 9 runes: two
		{"internationalization", 3}, // 20 runes
		{"a...b", 3},                // a ... b
		{"!!!!!", 2},                // 5 punctuation runes
		{"x=1+2", 5},                // x = 1 + 2
		{"héllo wörld", 2},          // letters are letters
		{"日本語", 1},                  // one run of 3 letters
		{strings.Repeat("a ", 100), 100},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := CountText(tt.text); got != tt.want {
				t.Errorf("CountText(%q) = %d, want %d", tt.text, got, tt.want)
			}
		})
	}
	// Not bytes/4: 400 bytes of one long word vs 400 bytes of short words.
	long, short := strings.Repeat("a", 400), strings.Repeat("ab ", 133)
	if CountText(long) != 50 || CountText(short) != 133 {
		t.Errorf("long=%d short=%d", CountText(long), CountText(short))
	}
}

func TestCountTokensRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int
	}{
		{"one string message", `{"model":"m","messages":[{"role":"user","content":"Hello, world!"}]}`,
			RequestOverhead + MessageOverhead + 4},
		{"blocks and two messages", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"one two"},{"type":"text","text":"three"}]},{"role":"assistant","content":"four"}]}`,
			RequestOverhead + 2*MessageOverhead + 2 + 1 + 1},
		{"system string", `{"model":"m","system":"be brief","messages":[{"role":"user","content":"hi"}]}`,
			RequestOverhead + MessageOverhead + 1 + 2},
		{"system blocks", `{"model":"m","system":[{"type":"text","text":"be brief"},{"type":"text","text":"ok"}],"messages":[{"role":"user","content":"hi"}]}`,
			RequestOverhead + MessageOverhead + 1 + 2 + 1},
		{"image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"text","text":"what"}]}]}`,
			RequestOverhead + MessageOverhead + ImageTokens + 1},
		{"document", `{"model":"m","messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}}]}]}`,
			RequestOverhead + MessageOverhead + DocumentTokens},
		{"tool_use and tool_result", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"get_weather","input":{"city":"Paris"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"sunny"}]}]}`,
			RequestOverhead + 3*MessageOverhead + 1 + (CountText("get_weather") + CountText(`{"city":"Paris"}`)) + (2 + 1)},
		{"tools", `{"model":"m","tools":[{"name":"get_weather","description":"Get weather","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}`,
			RequestOverhead + MessageOverhead + 1 + ToolsSystemTokens + ToolOverhead +
				CountText(`{"description":"Get weather","input_schema":{"type":"object"},"name":"get_weather"}`)},
		{"cache_control does not count", `{"model":"m","system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}`,
			RequestOverhead + MessageOverhead + 1 + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CountTokens([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("CountTokens = %d, want %d", got, tt.want)
			}
		})
	}
	if _, err := CountTokens([]byte(`{"model":"m"}`)); err == nil || err.Error() != "fakeanthropic: messages: Field required" {
		t.Errorf("invalid body error = %v", err)
	}
}

func TestCountTokensEndpoint(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 2, ITPM: 100, OTPM: 100}))
	ts := start(t, s)
	body := `{"model":"m","system":"be brief","messages":[{"role":"user","content":"Hello, world!"}]}`
	want, _ := CountTokens([]byte(body))
	before := s.Snapshot()
	// More calls than the RPM limit: count_tokens is not charged.
	for range 5 {
		r := do(t, ts, call{key: keyA1, path: "/v1/messages/count_tokens", body: body})
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var got CountTokensResponse
		mustJSON(t, r.body, &got)
		if got.InputTokens != want || string(r.body) != `{"input_tokens":`+itoa(want)+`}` {
			t.Errorf("body = %s, want %d", r.body, want)
		}
		if r.header.Get("anthropic-ratelimit-requests-remaining") != "2" {
			t.Errorf("requests-remaining = %q", r.header.Get("anthropic-ratelimit-requests-remaining"))
		}
	}
	if after := s.Snapshot(); after["a"] != before["a"] {
		t.Errorf("buckets changed: %+v -> %+v", before["a"], after["a"])
	}
	if c := s.Counters("a"); c.CountTokens != 5 || c.Requests != 0 {
		t.Errorf("counters = %+v", c)
	}
}
