package anthropic

import (
	"strings"
	"testing"
)

// docStream is the streaming docs' example, with the event names and data
// exactly as documented.
const docStream = `event: message_start
data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-5-5", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}

event: message_stop
data: {"type": "message_stop"}

`

type streamWant struct {
	usage     Usage
	model     string
	stop      string
	done      bool
	errType   ErrorType
	malformed int
}

func checkStream(t *testing.T, s *StreamReader, w streamWant) {
	t.Helper()
	if s.Usage() != w.usage || s.Model() != w.model || s.StopReason() != w.stop || s.Done() != w.done || s.Malformed() != w.malformed {
		t.Errorf("got usage %+v model %q stop %q done %v malformed %d\nwant %+v", s.Usage(), s.Model(), s.StopReason(), s.Done(), s.Malformed(), w)
	}
	var got ErrorType
	if s.Err() != nil {
		got = s.Err().Type
	}
	if got != w.errType {
		t.Errorf("error = %q, want %q", got, w.errType)
	}
}

var docWant = streamWant{usage: Usage{InputTokens: 25, OutputTokens: 15}, model: "claude-opus-5-5", stop: "end_turn", done: true}

func TestStreamReaderEverySplit(t *testing.T) {
	for _, text := range []string{docStream, strings.ReplaceAll(docStream, "\n", "\r\n"), strings.ReplaceAll(docStream, "\n", "\r")} {
		// Two chunks, split at every byte.
		for i := range len(text) + 1 {
			var s StreamReader
			s.Write([]byte(text[:i]))
			s.Write([]byte(text[i:]))
			checkStream(t, &s, docWant)
			if t.Failed() {
				t.Fatalf("split at byte %d of %q", i, text[max(0, i-20):min(len(text), i+20)])
			}
		}
		// One byte at a time.
		var s StreamReader
		for i := range len(text) {
			s.Write([]byte{text[i]})
		}
		checkStream(t, &s, docWant)
	}
}

func TestStreamReaderCases(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   streamWant
	}{
		{"cumulative deltas replace", `event: message_start
data: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":10,"cache_read_input_tokens":5,"cache_creation_input_tokens":2,"output_tokens":1}}}

event: message_delta
data: {"type":"message_delta","delta":{},"usage":{"output_tokens":7}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"input_tokens":12,"output_tokens":30}}

event: message_stop
data: {"type":"message_stop"}

`, streamWant{usage: Usage{InputTokens: 12, OutputTokens: 30, CacheReadInputTokens: 5, CacheCreationInputTokens: 2}, model: "m", stop: "max_tokens", done: true}},
		{"error after 200", `event: message_start
data: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":9,"output_tokens":1}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}

event: error
data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

`, streamWant{usage: Usage{InputTokens: 9, OutputTokens: 1}, model: "m", errType: OverloadedError}},
		{"ollama: no ping, one delta with input and output", `event: message_start
data: {"type":"message_start","message":{"id":"msg_0123456789abcdef01234567","type":"message","role":"assistant","model":"llama3.1:8b","content":[],"usage":{"input_tokens":14,"output_tokens":0}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Bonjour"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":14,"output_tokens":3}}

event: message_stop
data: {"type":"message_stop"}

`, streamWant{usage: Usage{InputTokens: 14, OutputTokens: 3}, model: "llama3.1:8b", stop: "end_turn", done: true}},
		{"unknown events, comments and fields ignored", `: keep-alive comment
id: 7
retry: 100
event: brand_new_event
data: {"type":"brand_new_event","usage":{"output_tokens":999}}

event: message_delta
data: {"type":"message_delta","usage":{"output_tokens":4}}

`, streamWant{usage: Usage{OutputTokens: 4}}},
		{"malformed data is counted and skipped", `event: message_delta
data: {"type":"message_delta","usage":{"output_tokens":

event: message_delta
data: {"type":"message_delta","usage":{"output_tokens":6}}

`, streamWant{usage: Usage{OutputTokens: 6}, malformed: 1}},
		{"no event line: type from data", `data: {"type":"message_delta","usage":{"output_tokens":3}}

`, streamWant{usage: Usage{OutputTokens: 3}}},
		{"multi-line data joined", "event: message_delta\ndata: {\"type\":\"message_delta\",\ndata: \"usage\":{\"output_tokens\":8}}\n\n",
			streamWant{usage: Usage{OutputTokens: 8}}},
		{"cut short: no message_stop", `event: message_start
data: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":3,"output_tokens":1}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"par`,
			streamWant{usage: Usage{InputTokens: 3, OutputTokens: 1}, model: "m"}},
		{"negative counts ignored", `event: message_delta
data: {"type":"message_delta","usage":{"output_tokens":-5}}

`, streamWant{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s StreamReader
			s.Write([]byte(tt.stream))
			checkStream(t, &s, tt.want)
		})
	}
}

func TestStreamReaderOversizedEvent(t *testing.T) {
	var s StreamReader
	s.Write([]byte("event: message_delta\ndata: "))
	chunk := []byte(strings.Repeat("x", 64<<10))
	for range (maxEventBytes / len(chunk)) + 2 {
		s.Write(chunk)
	}
	s.Write([]byte("\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":2}}\n\n"))
	checkStream(t, &s, streamWant{usage: Usage{OutputTokens: 2}, malformed: 1})
	if cap(s.line) > 2*maxEventBytes || cap(s.data) > 2*maxEventBytes {
		t.Errorf("buffers grew past the cap: line %d data %d", cap(s.line), cap(s.data))
	}
}

func BenchmarkStreamReader(b *testing.B) {
	data := []byte(docStream)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var s StreamReader
		s.Write(data[:100])
		s.Write(data[100:])
	}
}
