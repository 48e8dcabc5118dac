package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Endpoint is one of the two Messages API endpoints the gateway serves.
type Endpoint uint8

const (
	// Messages is POST /v1/messages.
	Messages Endpoint = iota + 1
	// CountTokens is POST /v1/messages/count_tokens.
	CountTokens
)

// Path returns the endpoint's URL path.
func (e Endpoint) Path() string {
	if e == CountTokens {
		return "/v1/messages/count_tokens"
	}
	return "/v1/messages"
}

// EndpointFor maps a request path (query string allowed) to an endpoint, or
// 0 when the gateway does not serve it.
func EndpointFor(path string) Endpoint {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	path = strings.TrimSuffix(path, "/")
	switch path {
	case "/v1/messages":
		return Messages
	case "/v1/messages/count_tokens":
		return CountTokens
	}
	return 0
}

// Request is what the gateway needs to know of a Messages request: enough
// to route it, reserve capacity for it, and key a cache on it. The body
// itself travels on unchanged.
type Request struct {
	Endpoint  Endpoint
	Model     string
	MaxTokens int64 // 0 for count_tokens
	Stream    bool
	// SystemBytes is the length of the system prompt's text.
	SystemBytes int
	// Messages is the number of turns.
	Messages int
	// LastUserText is the text of the last user turn (text blocks joined by
	// a newline).
	LastUserText string
	HasTools     bool
	Thinking     bool
	// Images counts image and document blocks.
	Images int
	// EstimatedInputTokens is the estimator's count; see Estimate.
	EstimatedInputTokens int64
	// Conversation identifies the conversation: a hash (FNV-1a, stable
	// across processes) of the prefix every turn starts with — the system
	// prompt and the first message. Requests of one conversation share it,
	// so they can stay on one account and keep hitting Anthropic's prompt
	// cache.
	Conversation uint64
}

type wireRequest struct {
	Model     *string         `json:"model"`
	MaxTokens *int64          `json:"max_tokens"`
	Messages  []wireMessage   `json:"messages"`
	System    json.RawMessage `json:"system"`
	Stream    *bool           `json:"stream"`
	Tools     json.RawMessage `json:"tools"`
	Thinking  *struct {
		Type string `json:"type"`
	} `json:"thinking"`
}

type wireMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type wireBlock struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Thinking string          `json:"thinking"`
	Input    json.RawMessage `json:"input"`
	Content  json.RawMessage `json:"content"`
	Source   *struct {
		Data string `json:"data"`
	} `json:"source"`
}

func invalid(format string, args ...any) *Error {
	return &Error{Type: InvalidRequestError, Message: fmt.Sprintf(format, args...)}
}

// ParseRequest decodes and validates a request body for ep. Problems are
// returned as an *Error of type invalid_request_error whose message names
// the field, in the style of Anthropic's own ("max_tokens: Field required").
func ParseRequest(body []byte, ep Endpoint) (*Request, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("request body is empty: send a JSON Messages request")
	}
	var w wireRequest
	// Messages is nil until the key is seen; an explicit [] is kept non-nil.
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, decodeError(err)
	}
	r := &Request{Endpoint: ep}
	switch {
	case w.Model == nil:
		return nil, invalid("model: Field required")
	case *w.Model == "":
		return nil, invalid("model: String should have at least 1 character")
	}
	r.Model = *w.Model
	if ep == Messages {
		switch {
		case w.MaxTokens == nil:
			return nil, invalid("max_tokens: Field required")
		case *w.MaxTokens < 1:
			return nil, invalid("max_tokens: Input should be greater than or equal to 1")
		}
		r.MaxTokens = *w.MaxTokens
	}
	if w.Messages == nil {
		return nil, invalid("messages: Field required")
	}
	if len(w.Messages) == 0 {
		return nil, invalid("messages: List should have at least 1 item after validation, not 0")
	}
	if w.Stream != nil {
		r.Stream = *w.Stream
	}
	r.Thinking = w.Thinking != nil && w.Thinking.Type != "" && w.Thinking.Type != "disabled"
	var est estimate
	if err := r.readSystem(w.System, &est); err != nil {
		return nil, err
	}
	if err := r.readTools(w.Tools, &est); err != nil {
		return nil, err
	}
	r.Messages = len(w.Messages)
	for i, m := range w.Messages {
		if err := r.readMessage(i, m, &est); err != nil {
			return nil, err
		}
	}
	r.EstimatedInputTokens = est.tokens()
	h := fnvAdd(fnvOffset, w.System)
	h = fnvAdd(h, []byte{0})
	h = fnvAdd(h, w.Messages[0].Content)
	r.Conversation = h
	return r, nil
}

func (r *Request) readSystem(raw json.RawMessage, est *estimate) error {
	switch kindOf(raw) {
	case 0, 'n':
		return nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return invalid("system: Input should be a valid string")
		}
		r.SystemBytes = len(s)
		est.text(s)
		return nil
	case '[':
		var blocks []wireBlock
		if err := json.Unmarshal(raw, &blocks); err != nil {
			return invalid("system: Input should be a valid list of text blocks")
		}
		for i, b := range blocks {
			if b.Type != "text" {
				return invalid("system.%d.type: Input should be 'text'", i)
			}
			r.SystemBytes += len(b.Text)
			est.text(b.Text)
		}
		return nil
	}
	return invalid("system: Input should be a valid string or a list of text blocks")
}

func (r *Request) readTools(raw json.RawMessage, est *estimate) error {
	switch kindOf(raw) {
	case 0, 'n':
		return nil
	case '[':
		var tools []json.RawMessage
		if err := json.Unmarshal(raw, &tools); err != nil {
			return invalid("tools: Input should be a valid list")
		}
		if len(tools) > 0 {
			r.HasTools = true
			est.tools(len(raw))
		}
		return nil
	}
	return invalid("tools: Input should be a valid list")
}

func (r *Request) readMessage(i int, m wireMessage, est *estimate) error {
	if m.Role != "user" && m.Role != "assistant" {
		if m.Role == "" {
			return invalid("messages.%d.role: Field required", i)
		}
		return invalid("messages.%d.role: Input should be 'user' or 'assistant'", i)
	}
	est.message()
	// Every user turn overwrites LastUserText, so the last one stays.
	user := m.Role == "user"
	switch kindOf(m.Content) {
	case 0:
		return invalid("messages.%d.content: Field required", i)
	case '"':
		var s string
		if err := json.Unmarshal(m.Content, &s); err != nil {
			return invalid("messages.%d.content: Input should be a valid string", i)
		}
		est.text(s)
		if user {
			r.LastUserText = s
		}
		return nil
	case '[':
		var blocks []wireBlock
		if err := json.Unmarshal(m.Content, &blocks); err != nil {
			return invalid("messages.%d.content: Input should be a valid list of content blocks", i)
		}
		var texts []string
		for j, b := range blocks {
			switch b.Type {
			case "":
				return invalid("messages.%d.content.%d.type: Field required", i, j)
			case "text":
				est.text(b.Text)
				texts = append(texts, b.Text)
			case "thinking":
				est.text(b.Thinking)
			case "image", "document":
				r.Images++
				est.media(b)
			case "tool_use":
				est.json(len(b.Input))
			case "tool_result":
				est.json(len(b.Content))
			default: // redacted_thinking, server tool blocks, future types
				est.json(len(b.Text) + len(b.Input) + len(b.Content))
			}
		}
		if user {
			r.LastUserText = strings.Join(texts, "\n")
		}
		return nil
	}
	return invalid("messages.%d.content: Input should be a valid string or a list of content blocks", i)
}

// kindOf returns the first significant byte of a JSON value ('"', '[', '{',
// 'n' for null, digits…) or 0 when raw is absent.
func kindOf(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// decodeError turns encoding/json's errors into Anthropic-style messages.
func decodeError(err error) *Error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return invalid("request body is not valid JSON: %s (at byte %d)", syn.Error(), syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return invalid("request body: Input should be a JSON object")
		}
		return invalid("%s: Input should be a valid %s", field, jsonTypeName(typ.Type.Kind().String()))
	}
	return invalid("request body is not valid JSON: %s", err.Error())
}

func jsonTypeName(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"):
		return "integer"
	case goKind == "bool":
		return "boolean"
	case goKind == "string":
		return "string"
	case goKind == "slice":
		return "list"
	case goKind == "struct", goKind == "map":
		return "object"
	case strings.HasPrefix(goKind, "float"):
		return "number"
	}
	return strconv.Quote(goKind)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnvAdd folds b into an FNV-1a 64 hash.
func fnvAdd(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}
