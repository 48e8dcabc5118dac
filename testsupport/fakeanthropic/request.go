package fakeanthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// API versions the fake accepts.
const (
	Version2023 = "2023-06-01"
	Version2026 = "2026-10-21"
)

// MessagesRequest is a validated request body, as the fake understood it.
// Tests can read it from [RecordedRequest.Parsed].
type MessagesRequest struct {
	Model         string
	MaxTokens     int64 // 0 for count_tokens
	Stream        bool
	System        []Block // a string system prompt becomes one text block
	SystemString  bool    // the system prompt was a JSON string
	Messages      []Message
	Tools         []json.RawMessage
	StopSequences []string
	Metadata      json.RawMessage
	// Raw holds every top-level member, including the ones not modelled above.
	Raw map[string]json.RawMessage
}

// Message is one entry of messages.
type Message struct {
	Role          string
	Content       []Block // string content becomes one text block
	ContentString bool    // content was a JSON string
}

// Block is one content block.
type Block struct {
	Type         string
	Text         string        // text blocks
	CacheControl *CacheControl // nil when absent
	Raw          json.RawMessage
}

// CacheControl is a block's cache_control.
type CacheControl struct {
	Type string `json:"type"`
	TTL  string `json:"ttl,omitempty"`
}

// jsonKind classifies a raw JSON value by its first byte.
func jsonKind(r json.RawMessage) byte {
	r = bytes.TrimLeft(r, " \t\r\n")
	if len(r) == 0 {
		return 0
	}
	switch c := r[0]; {
	case c == '"', c == '{', c == '[', c == 'n':
		return c
	case c == 't', c == 'f':
		return 'b'
	default:
		return '0'
	}
}

func want(loc, what string) *apiError {
	return invalid(fmt.Sprintf("%s: Input should be a valid %s", loc, what))
}

func required(loc string) *apiError { return invalid(loc + ": Field required") }

func parseString(raw json.RawMessage, loc string) (string, *apiError) {
	var s string
	if jsonKind(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		return "", want(loc, "string")
	}
	return s, nil
}

func parseInt(raw json.RawMessage, loc string) (int64, *apiError) {
	if jsonKind(raw) != '0' {
		return 0, want(loc, "integer")
	}
	if n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64); err == nil {
		return n, nil
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, invalid(loc + ": Input should be a valid integer, got a number with a fractional part")
	}
	return int64(f), nil
}

func parseObject(raw json.RawMessage, loc string) (map[string]json.RawMessage, *apiError) {
	var m map[string]json.RawMessage
	if jsonKind(raw) != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, want(loc, "dictionary")
	}
	return m, nil
}

func parseList(raw json.RawMessage, loc string) ([]json.RawMessage, *apiError) {
	var l []json.RawMessage
	if jsonKind(raw) != '[' || json.Unmarshal(raw, &l) != nil {
		return nil, want(loc, "list")
	}
	return l, nil
}

// parseRequest validates body for the Messages endpoint (countTokens false)
// or count_tokens (true) on API version.
func parseRequest(body []byte, version string, countTokens bool) (*MessagesRequest, *apiError) {
	if !json.Valid(body) {
		return nil, invalid("There was an error parsing the body of your request: invalid JSON")
	}
	raw, e := parseObject(body, "body")
	if e != nil {
		return nil, e
	}
	req := &MessagesRequest{Raw: raw}

	if version == Version2026 {
		for _, f := range []string{"temperature", "top_p", "top_k"} {
			if _, ok := raw[f]; ok {
				return nil, invalid(f + ": Extra inputs are not permitted")
			}
		}
	}

	v, ok := raw["model"]
	if !ok {
		return nil, required("model")
	}
	if req.Model, e = parseString(v, "model"); e != nil {
		return nil, e
	}
	if req.Model == "" {
		return nil, invalid("model: String should have at least 1 character")
	}

	if !countTokens {
		v, ok = raw["max_tokens"]
		if !ok {
			return nil, required("max_tokens")
		}
		if req.MaxTokens, e = parseInt(v, "max_tokens"); e != nil {
			return nil, e
		}
		if req.MaxTokens < 1 {
			return nil, invalid("max_tokens: Input should be greater than or equal to 1")
		}
	}

	v, ok = raw["messages"]
	if !ok {
		return nil, required("messages")
	}
	msgs, e := parseList(v, "messages")
	if e != nil {
		return nil, e
	}
	if len(msgs) == 0 {
		return nil, invalid("messages: at least one message is required")
	}
	for i, m := range msgs {
		msg, e := parseMessage(m, fmt.Sprintf("messages.%d", i), version)
		if e != nil {
			return nil, e
		}
		req.Messages = append(req.Messages, msg)
	}

	if v, ok = raw["system"]; ok && jsonKind(v) != 'n' {
		switch jsonKind(v) {
		case '"':
			s, _ := parseString(v, "system")
			req.SystemString = true
			req.System = []Block{{Type: "text", Text: s, Raw: v}}
		case '[':
			items, _ := parseList(v, "system")
			for j, it := range items {
				b, e := parseBlock(it, fmt.Sprintf("system.%d", j))
				if e != nil {
					return nil, e
				}
				if b.Type != "text" {
					return nil, invalid(fmt.Sprintf("system.%d.type: Input should be 'text'", j))
				}
				req.System = append(req.System, b)
			}
		default:
			return nil, invalid("system: Input should be a valid string or a valid list")
		}
	}

	if v, ok = raw["stream"]; ok && jsonKind(v) != 'n' {
		if jsonKind(v) != 'b' {
			return nil, want("stream", "boolean")
		}
		req.Stream = bytes.Equal(bytes.TrimSpace(v), []byte("true"))
	}

	if v, ok = raw["stop_sequences"]; ok && jsonKind(v) != 'n' {
		items, e := parseList(v, "stop_sequences")
		if e != nil {
			return nil, e
		}
		for j, it := range items {
			s, e := parseString(it, fmt.Sprintf("stop_sequences.%d", j))
			if e != nil {
				return nil, e
			}
			req.StopSequences = append(req.StopSequences, s)
		}
	}

	if v, ok = raw["tools"]; ok && jsonKind(v) != 'n' {
		items, e := parseList(v, "tools")
		if e != nil {
			return nil, e
		}
		for j, it := range items {
			loc := fmt.Sprintf("tools.%d", j)
			t, e := parseObject(it, loc)
			if e != nil {
				return nil, e
			}
			if _, typed := t["type"]; !typed || string(t["type"]) == `"custom"` {
				if _, ok := t["name"]; !ok {
					return nil, required(loc + ".name")
				}
				if _, ok := t["input_schema"]; !ok {
					return nil, required(loc + ".input_schema")
				}
			}
			if _, e := parseCacheControl(t, loc); e != nil {
				return nil, e
			}
			req.Tools = append(req.Tools, it)
		}
	}

	if v, ok = raw["metadata"]; ok && jsonKind(v) != 'n' {
		if _, e := parseObject(v, "metadata"); e != nil {
			return nil, e
		}
		req.Metadata = v
	}
	if _, e := parseCacheControl(raw, ""); e != nil {
		return nil, e
	}
	for _, f := range []string{"temperature", "top_p"} {
		if v, ok := raw[f]; ok && jsonKind(v) != '0' && jsonKind(v) != 'n' {
			return nil, invalid(f + ": Input should be a valid number")
		}
	}
	if v, ok := raw["top_k"]; ok && jsonKind(v) != 'n' {
		if _, e := parseInt(v, "top_k"); e != nil {
			return nil, e
		}
	}
	return req, nil
}

var blockTypes = map[string]bool{
	"text": true, "image": true, "document": true, "tool_use": true, "tool_result": true,
	"thinking": true, "redacted_thinking": true, "search_result": true, "server_tool_use": true,
	"web_search_tool_result": true, "web_fetch_tool_result": true, "code_execution_tool_result": true,
	"container_upload": true, "mcp_tool_use": true, "mcp_tool_result": true,
}

func parseMessage(raw json.RawMessage, loc, version string) (Message, *apiError) {
	var msg Message
	m, e := parseObject(raw, loc)
	if e != nil {
		return msg, e
	}
	v, ok := m["role"]
	if !ok {
		return msg, required(loc + ".role")
	}
	role, _ := parseString(v, loc+".role")
	if role != "user" && role != "assistant" {
		return msg, invalid(loc + ".role: Input should be 'user' or 'assistant'")
	}
	msg.Role = role
	v, ok = m["content"]
	if !ok {
		return msg, required(loc + ".content")
	}
	switch jsonKind(v) {
	case '"':
		s, _ := parseString(v, loc+".content")
		msg.ContentString = true
		msg.Content = []Block{{Type: "text", Text: s, Raw: v}}
	case '[':
		items, _ := parseList(v, loc+".content")
		if len(items) == 0 {
			return msg, invalid(loc + ".content: List should have at least 1 item after validation, not 0")
		}
		for j, it := range items {
			bloc := fmt.Sprintf("%s.content.%d", loc, j)
			b, e := parseBlock(it, bloc)
			if e != nil {
				return msg, e
			}
			if version == Version2026 {
				if role == "assistant" && b.Type == "document" {
					return msg, invalid(bloc + ": document blocks are not permitted in assistant messages")
				}
				if role == "user" && b.Type == "text" {
					var c struct {
						Citations []json.RawMessage `json:"citations"`
					}
					if json.Unmarshal(it, &c) == nil && len(c.Citations) > 0 {
						return msg, invalid(bloc + ".citations: Extra inputs are not permitted")
					}
				}
			}
			msg.Content = append(msg.Content, b)
		}
	default:
		return msg, invalid(loc + ".content: Input should be a valid string or a valid list")
	}
	return msg, nil
}

func parseBlock(raw json.RawMessage, loc string) (Block, *apiError) {
	b := Block{Raw: raw}
	m, e := parseObject(raw, loc)
	if e != nil {
		return b, e
	}
	v, ok := m["type"]
	if !ok {
		return b, required(loc + ".type")
	}
	if b.Type, e = parseString(v, loc+".type"); e != nil {
		return b, e
	}
	if !blockTypes[b.Type] {
		return b, invalid(fmt.Sprintf("%s: Input tag '%s' found using 'type' does not match any of the expected tags", loc, b.Type))
	}
	switch b.Type {
	case "text":
		v, ok := m["text"]
		if !ok {
			return b, required(loc + ".text")
		}
		if b.Text, e = parseString(v, loc+".text"); e != nil {
			return b, e
		}
	case "image", "document":
		if _, ok := m["source"]; !ok {
			return b, required(loc + ".source")
		}
	case "tool_use":
		for _, f := range []string{"id", "name", "input"} {
			if _, ok := m[f]; !ok {
				return b, required(loc + "." + f)
			}
		}
	case "tool_result":
		if _, ok := m["tool_use_id"]; !ok {
			return b, required(loc + ".tool_use_id")
		}
	}
	if b.CacheControl, e = parseCacheControl(m, loc); e != nil {
		return b, e
	}
	return b, nil
}

// parseCacheControl reads m["cache_control"]; loc is the location of m.
func parseCacheControl(m map[string]json.RawMessage, loc string) (*CacheControl, *apiError) {
	v, ok := m["cache_control"]
	if !ok || jsonKind(v) == 'n' {
		return nil, nil
	}
	ccLoc := strings.TrimPrefix(loc+".cache_control", ".")
	var cc CacheControl
	if jsonKind(v) != '{' || json.Unmarshal(v, &cc) != nil {
		return nil, want(ccLoc, "dictionary")
	}
	if cc.Type != "ephemeral" {
		return nil, invalid(ccLoc + ".type: Input should be 'ephemeral'")
	}
	switch cc.TTL {
	case "":
		cc.TTL = "5m"
	case "5m", "1h":
	default:
		return nil, invalid(ccLoc + ".ttl: Input should be '5m' or '1h'")
	}
	return &cc, nil
}
