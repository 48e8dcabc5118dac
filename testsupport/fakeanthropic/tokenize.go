package fakeanthropic

import (
	"encoding/json"
	"unicode"
)

// Fixed costs of the fake tokenizer (see the package documentation).
const (
	RequestOverhead   = 3    // every request
	MessageOverhead   = 4    // every message
	ToolOverhead      = 8    // every tool, on top of its JSON
	ToolsSystemTokens = 300  // once per request that declares tools
	ImageTokens       = 1600 // every image block
	DocumentTokens    = 1500 // every document block
)

// CountText returns the fake tokenizer's count for text: each maximal run of
// letters/digits costs one token per started 8 runes, each maximal run of
// other non-space runes one token per started 4 runes; spaces are free.
func CountText(text string) int {
	n := 0
	kind, run := 0, 0 // kind: 0 none, 1 word, 2 punctuation
	flush := func() {
		switch kind {
		case 1:
			n += (run + 7) / 8
		case 2:
			n += (run + 3) / 4
		}
		kind, run = 0, 0
	}
	for _, r := range text {
		k := 2
		switch {
		case unicode.IsSpace(r):
			k = 0
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			k = 1
		}
		if k != kind {
			flush()
			kind = k
		}
		if k != 0 {
			run++
		}
	}
	flush()
	return n
}

// segment is one cacheable unit of a prompt: a tool, a system block or a
// message block, in prompt order.
type segment struct {
	tokens int
	key    []byte        // canonical bytes for the cache hash
	cc     *CacheControl // breakpoint when non-nil
}

// segments splits req into prompt segments. The sum of their tokens plus
// RequestOverhead is the request's total input.
func segments(req *MessagesRequest) []segment {
	var segs []segment
	for i, t := range req.Tools {
		m := map[string]json.RawMessage{}
		_ = json.Unmarshal(t, &m) // validated already
		cc, _ := parseCacheControl(m, "")
		delete(m, "cache_control")
		canon, _ := json.Marshal(m)
		tok := ToolOverhead + CountText(string(canon))
		if i == 0 {
			tok += ToolsSystemTokens
		}
		segs = append(segs, segment{tokens: tok, key: append([]byte("tool:"), canon...), cc: cc})
	}
	for _, b := range req.System {
		segs = append(segs, segment{tokens: CountText(b.Text), key: []byte("system:" + b.Text), cc: b.CacheControl})
	}
	for _, m := range req.Messages {
		for j, b := range m.Content {
			s := blockSegment(b)
			s.key = append([]byte(m.Role+":"), s.key...)
			if j == 0 {
				s.tokens += MessageOverhead
				s.key = append([]byte("msg-start:"), s.key...)
			}
			segs = append(segs, s)
		}
	}
	if cc, _ := parseCacheControl(req.Raw, ""); cc != nil && len(segs) > 0 {
		segs[len(segs)-1].cc = cc
	}
	return segs
}

func blockSegment(b Block) segment {
	var m map[string]json.RawMessage
	if b.Type == "text" {
		return segment{tokens: CountText(b.Text), key: []byte("text:" + b.Text), cc: b.CacheControl}
	}
	_ = json.Unmarshal(b.Raw, &m)
	delete(m, "cache_control")
	canon, _ := json.Marshal(m)
	return segment{tokens: blockTokens(b.Type, m), key: canon, cc: b.CacheControl}
}

func blockTokens(typ string, m map[string]json.RawMessage) int {
	str := func(f string) string {
		var s string
		_ = json.Unmarshal(m[f], &s)
		return s
	}
	switch typ {
	case "text":
		return CountText(str("text"))
	case "image":
		return ImageTokens
	case "document":
		return DocumentTokens
	case "tool_use", "server_tool_use", "mcp_tool_use":
		return CountText(str("name")) + CountText(string(m["input"]))
	case "tool_result", "mcp_tool_result":
		c := m["content"]
		switch jsonKind(c) {
		case '"':
			var s string
			_ = json.Unmarshal(c, &s)
			return 2 + CountText(s)
		case '[':
			var items []map[string]json.RawMessage
			_ = json.Unmarshal(c, &items)
			n := 2
			for _, it := range items {
				var t string
				_ = json.Unmarshal(it["type"], &t)
				n += blockTokens(t, it)
			}
			return n
		}
		return 2
	case "thinking":
		return CountText(str("thinking"))
	case "redacted_thinking":
		return 0
	default:
		canon, _ := json.Marshal(m)
		return CountText(string(canon))
	}
}

// CountTokens returns the fake's total input token count of a request body
// the fake accepts, as /v1/messages/count_tokens would answer it.
func CountTokens(body []byte) (int, error) {
	req, e := parseRequest(body, Version2023, true)
	if e != nil {
		return 0, &RequestError{Message: e.message}
	}
	return totalTokens(segments(req)), nil
}

// RequestError is a body the fake rejects.
type RequestError struct{ Message string }

func (e *RequestError) Error() string { return "fakeanthropic: " + e.Message }

func totalTokens(segs []segment) int {
	n := RequestOverhead
	for _, s := range segs {
		n += s.tokens
	}
	return n
}
