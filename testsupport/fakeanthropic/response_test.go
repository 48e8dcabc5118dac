package fakeanthropic

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

var msgIDRe = regexp.MustCompile(`^msg_[0-9A-Za-z]{24}$`)

func TestNonStreamingResponse(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 1000, ITPM: 1e6, OTPM: 1e6}))
	ts := start(t, s)
	tests := []struct {
		name        string
		maxTokens   int
		headers     map[string]string
		wantOut     int
		wantStop    string
		inputTokens int
	}{
		{"default target is clamp(input/4,16,1024)", 500, nil, 16, "end_turn", 0},
		{"default target from a long input", 5000, nil, 250, "end_turn", 1000},
		{"header target", 500, out(37), 37, "end_turn", 0},
		{"cut at max_tokens", 10, out(37), 10, "max_tokens", 0},
		{"target equals max_tokens", 37, out(37), 37, "end_turn", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Replace(helloBody, `"max_tokens":100`, `"max_tokens":`+itoa(tt.maxTokens), 1)
			if tt.inputTokens > 0 {
				body = bodyOf(t, tt.inputTokens, tt.maxTokens)
			}
			r := do(t, ts, call{key: keyA1, body: body, headers: tt.headers})
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if r.header.Get("content-type") != "application/json" {
				t.Errorf("content-type %q", r.header.Get("content-type"))
			}
			// Exact key set and order-independent shape.
			var raw map[string]json.RawMessage
			mustJSON(t, r.body, &raw)
			for _, k := range []string{"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("missing %q in %s", k, r.body)
				}
			}
			if len(raw) != 8 || string(raw["stop_sequence"]) != "null" || string(raw["type"]) != `"message"` || string(raw["role"]) != `"assistant"` {
				t.Errorf("body = %s", r.body)
			}
			var usage map[string]json.RawMessage
			mustJSON(t, raw["usage"], &usage)
			wantUsageKeys := "cache_creation,cache_creation_input_tokens,cache_read_input_tokens,input_tokens,output_tokens,service_tier"
			if got := keys(usage); got != wantUsageKeys {
				t.Errorf("usage keys = %s", got)
			}
			if string(usage["cache_creation"]) != `{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}` || string(usage["service_tier"]) != `"standard"` {
				t.Errorf("usage = %s", raw["usage"])
			}
			var m MessageResponse
			mustJSON(t, r.body, &m)
			wantIn, _ := CountTokens([]byte(body))
			if !msgIDRe.MatchString(m.ID) || m.Model != "claude-sonnet-4-6" || len(m.Content) != 1 || m.Content[0].Type != "text" {
				t.Errorf("message = %+v", m)
			}
			if *m.StopReason != tt.wantStop || m.Usage.OutputTokens != tt.wantOut || m.Usage.InputTokens != wantIn {
				t.Errorf("stop %s usage %+v, want %s out %d in %d", *m.StopReason, m.Usage, tt.wantStop, tt.wantOut, wantIn)
			}
			if got := CountText(*m.Content[0].Text); got != tt.wantOut {
				t.Errorf("text has %d tokens, want %d: %q", got, tt.wantOut, *m.Content[0].Text)
			}
		})
	}

	t.Run("deterministic text", func(t *testing.T) {
		var texts []string
		for range 2 {
			r := do(t, ts, call{key: keyA1, body: helloBody, headers: out(20)})
			var m MessageResponse
			mustJSON(t, r.body, &m)
			texts = append(texts, *m.Content[0].Text)
		}
		if texts[0] != texts[1] {
			t.Errorf("texts differ: %q vs %q", texts[0], texts[1])
		}
	})

	t.Run("config default output", func(t *testing.T) {
		cfg := twoAccounts(clk, Limits{})
		cfg.DefaultOutputTokens = 5
		ts := start(t, New(cfg))
		var m MessageResponse
		mustJSON(t, do(t, ts, call{key: keyA1, body: helloBody}).body, &m)
		if m.Usage.OutputTokens != 5 {
			t.Errorf("output = %d", m.Usage.OutputTokens)
		}
	})
}

func keys(m map[string]json.RawMessage) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return strings.Join(ks, ",")
}

func TestVocabWordsAreOneToken(t *testing.T) {
	for _, w := range vocab {
		if CountText(w) != 1 {
			t.Errorf("%q is %d tokens", w, CountText(w))
		}
	}
}

func TestToolUseReply(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{}))
	ts := start(t, s)
	body := `{"model":"m","max_tokens":100,"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"weather?"}]}`
	toolCost := CountText("get_weather") + CountText("{}")
	tests := []struct {
		name, tool string
		maxTokens  string
		wantBlocks int
		wantStop   string
		wantOut    int
	}{
		{"declared tool", "get_weather", "100", 2, "tool_use", 5 + toolCost},
		{"undeclared tool ignored", "other", "100", 1, "end_turn", 5},
		{"no room for the tool", "get_weather", "6", 1, "end_turn", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := strings.Replace(body, `"max_tokens":100`, `"max_tokens":`+tt.maxTokens, 1)
			r := do(t, ts, call{key: keyA1, body: b, headers: map[string]string{OutputTokensHeader: "5", ToolUseHeader: tt.tool}})
			var m MessageResponse
			mustJSON(t, r.body, &m)
			if len(m.Content) != tt.wantBlocks || *m.StopReason != tt.wantStop || m.Usage.OutputTokens != tt.wantOut {
				t.Fatalf("reply = %s", r.body)
			}
			if tt.wantBlocks == 2 {
				tu := m.Content[1]
				if tu.Type != "tool_use" || tu.Name != "get_weather" || string(tu.Input) != "{}" || !regexp.MustCompile(`^toolu_[0-9A-Za-z]{24}$`).MatchString(tu.ID) {
					t.Errorf("tool_use = %+v", tu)
				}
			}
		})
	}
}

func TestRecordedRequests(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{}))
	ts := start(t, s)
	do(t, ts, call{key: keyA2, bearer: true, body: helloBody, path: "/v1/messages?beta=true", headers: map[string]string{"x-task-type": "summarize"}})
	do(t, ts, call{key: keyA1, body: `{"model":"m"}`})
	recs := s.Requests()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	r0 := recs[0]
	if r0.Method != "POST" || r0.Path != "/v1/messages" || r0.RawQuery != "beta=true" || r0.Account != "a" ||
		r0.Credential != keyA2 || r0.CredentialHeader != "authorization" || r0.Status != 200 || !r0.Completed ||
		r0.Header.Get("x-task-type") != "summarize" || string(r0.Body) != helloBody || !reqIDRe.MatchString(r0.RequestID) ||
		!r0.Time.Equal(clk.Now()) {
		t.Errorf("record 0 = %+v", r0)
	}
	if r0.Parsed == nil || r0.Parsed.Model != "claude-sonnet-4-6" || r0.Parsed.MaxTokens != 100 || len(r0.Parsed.Messages) != 1 ||
		!r0.Parsed.Messages[0].ContentString || r0.Parsed.Messages[0].Content[0].Text != "Hello there, world!" {
		t.Errorf("parsed = %+v", r0.Parsed)
	}
	wantIn, _ := CountTokens([]byte(helloBody))
	if r0.InputTokens != wantIn || r0.OutputTokens != 16 {
		t.Errorf("usage in record = %d/%d", r0.InputTokens, r0.OutputTokens)
	}
	if r1 := recs[1]; r1.Status != 400 || r1.ErrorType != ErrInvalidRequest || r1.Parsed != nil || r1.Completed {
		t.Errorf("record 1 = %+v", r1)
	}
	s.Reset()
	if len(s.Requests()) != 0 || s.Counters("a") != (Counters{}) {
		t.Error("Reset kept state")
	}
}
