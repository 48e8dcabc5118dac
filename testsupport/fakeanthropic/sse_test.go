package fakeanthropic

import (
	"encoding/json"
	"strings"
	"testing"
)

const streamBody = `{"model":"claude-sonnet-4-6","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Hello there, world!"}]}`

// streamOf runs one streaming request and returns its events.
func streamOf(t *testing.T, cfg Config, body string, headers map[string]string) ([]sseEvent, *Server) {
	t.Helper()
	s := New(cfg)
	ts := start(t, s)
	resp := send(t, ts, call{key: keyA1, body: body, headers: headers})
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("content-type"); ct != "text/event-stream; charset=utf-8" {
		t.Errorf("content-type = %q", ct)
	}
	if resp.Header.Get("anthropic-ratelimit-requests-remaining") == "" || !reqIDRe.MatchString(resp.Header.Get("request-id")) {
		t.Errorf("stream headers = %v", resp.Header)
	}
	evs, err := parseSSE(t, resp.Body)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	for _, e := range evs {
		if e.typ(t) != e.name {
			t.Errorf("event %s has data.type %s", e.name, e.typ(t))
		}
	}
	return evs, s
}

func TestStreamingEventOrder(t *testing.T) {
	clk := newClock()
	tests := []struct {
		name      string
		ping      int
		perDelta  int
		deltas    int
		outTokens int
		want      string
	}{
		{"default: one ping after block start, 4 tokens per delta", 0, 0, 0, 10,
			"message_start,content_block_start,ping,content_block_delta,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop"},
		{"ping every 2 deltas", 2, 1, 0, 5,
			"message_start,content_block_start,ping,content_block_delta,content_block_delta,ping,content_block_delta,content_block_delta,ping,content_block_delta,content_block_stop,message_delta,message_stop"},
		{"no pings", -1, 5, 0, 5,
			"message_start,content_block_start,content_block_delta,content_block_stop,message_delta,message_stop"},
		{"three message_deltas", -1, 5, 3, 5,
			"message_start,content_block_start,content_block_delta,content_block_stop,message_delta,message_delta,message_delta,message_stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := twoAccounts(clk, Limits{})
			cfg.PingEvery, cfg.TokensPerDelta, cfg.MessageDeltas = tt.ping, tt.perDelta, tt.deltas
			evs, _ := streamOf(t, cfg, streamBody, out(tt.outTokens))
			if got := names(evs); got != tt.want {
				t.Errorf("events:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestStreamingPayloads(t *testing.T) {
	clk := newClock()
	cfg := twoAccounts(clk, Limits{})
	cfg.MessageDeltas = 2
	cfg.PingEvery = -1
	evs, s := streamOf(t, cfg, streamBody, out(10))
	wantIn, _ := CountTokens([]byte(streamBody))

	var start struct {
		Message map[string]json.RawMessage
	}
	mustJSON(t, evs[0].data, &start)
	var usage map[string]json.RawMessage
	mustJSON(t, start.Message["usage"], &usage)
	if string(start.Message["content"]) != "[]" || string(start.Message["stop_reason"]) != "null" ||
		string(start.Message["stop_sequence"]) != "null" || !msgIDRe.MatchString(strings.Trim(string(start.Message["id"]), `"`)) {
		t.Errorf("message_start = %s", evs[0].data)
	}
	if string(usage["input_tokens"]) != itoa(wantIn) || string(usage["output_tokens"]) != "1" ||
		string(usage["cache_read_input_tokens"]) != "0" || string(usage["cache_creation_input_tokens"]) != "0" {
		t.Errorf("message_start usage = %s", start.Message["usage"])
	}
	if string(evs[1].data) != `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}` {
		t.Errorf("content_block_start = %s", evs[1].data)
	}
	var text strings.Builder
	i := 2
	for ; evs[i].name == "content_block_delta"; i++ {
		var d struct {
			Index int
			Delta struct{ Type, Text string }
		}
		mustJSON(t, evs[i].data, &d)
		if d.Index != 0 || d.Delta.Type != "text_delta" {
			t.Errorf("delta = %s", evs[i].data)
		}
		text.WriteString(d.Delta.Text)
	}
	if CountText(text.String()) != 10 || strings.Contains(text.String(), "  ") {
		t.Errorf("streamed text %q", text.String())
	}
	if string(evs[i].data) != `{"type":"content_block_stop","index":0}` {
		t.Errorf("content_block_stop = %s", evs[i].data)
	}
	wantDeltas := []string{
		`{"type":"message_delta","delta":{"stop_reason":null,"stop_sequence":null},"usage":{"input_tokens":` + itoa(wantIn) + `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5}}`,
		`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":` + itoa(wantIn) + `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":10}}`,
	}
	for j, w := range wantDeltas {
		if got := string(evs[i+1+j].data); got != w {
			t.Errorf("message_delta %d:\n got %s\nwant %s", j, got, w)
		}
	}
	if string(evs[len(evs)-1].data) != `{"type":"message_stop"}` {
		t.Errorf("last = %s", evs[len(evs)-1].data)
	}
	rec := s.Requests()[0]
	if !rec.Completed || rec.OutputTokens != 10 || rec.Status != 200 {
		t.Errorf("record = %+v", rec)
	}
	if c := s.Counters("a"); c.OutputTokens != 10 || c.InputTokens != int64(wantIn) || c.Succeeded != 1 {
		t.Errorf("counters = %+v", c)
	}
}

func TestStreamingMaxTokensAndToolUse(t *testing.T) {
	clk := newClock()
	cfg := twoAccounts(clk, Limits{})
	cfg.PingEvery = -1
	body := strings.Replace(streamBody, `"max_tokens":100`, `"max_tokens":3`, 1)
	evs, _ := streamOf(t, cfg, body, out(10))
	last := evs[len(evs)-2]
	if !strings.Contains(string(last.data), `"stop_reason":"max_tokens"`) || !strings.Contains(string(last.data), `"output_tokens":3`) {
		t.Errorf("message_delta = %s", last.data)
	}

	body = `{"model":"m","max_tokens":100,"stream":true,"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"weather?"}]}`
	evs, _ = streamOf(t, cfg, body, map[string]string{OutputTokensHeader: "2", ToolUseHeader: "get_weather"})
	want := "message_start,content_block_start,content_block_delta,content_block_stop,content_block_start,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop"
	if names(evs) != want {
		t.Fatalf("events %s", names(evs))
	}
	var bs struct {
		Index        int
		ContentBlock map[string]json.RawMessage `json:"content_block"`
	}
	mustJSON(t, evs[4].data, &bs)
	if bs.Index != 1 || string(bs.ContentBlock["type"]) != `"tool_use"` || string(bs.ContentBlock["name"]) != `"get_weather"` || string(bs.ContentBlock["input"]) != "{}" {
		t.Errorf("tool block start = %s", evs[4].data)
	}
	if string(evs[6].data) != `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}` {
		t.Errorf("input_json_delta = %s", evs[6].data)
	}
	if !strings.Contains(string(evs[8].data), `"stop_reason":"tool_use"`) {
		t.Errorf("message_delta = %s", evs[8].data)
	}
}

func TestStreamingChargesOutputAsProduced(t *testing.T) {
	clk := newClock()
	cfg := twoAccounts(clk, Limits{RPM: 100, ITPM: 1e6, OTPM: 1000})
	_, s := streamOf(t, cfg, streamBody, out(30))
	if lv := s.Snapshot()["a"].OutputTokens; lv != 970 {
		t.Errorf("output level = %v", lv)
	}
	cfg.OTPMAtStart = true
	_, s = streamOf(t, cfg, streamBody, out(30))
	if lv := s.Snapshot()["a"].OutputTokens; lv != 970 { // 100 reserved, 70 refunded
		t.Errorf("output level with reservation = %v", lv)
	}
}
