package fakeollama

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrorBody is the Anthropic-shaped error body of /v1/messages.
type ErrorBody struct {
	Type      string      `json:"type"`
	Error     ErrorDetail `json:"error"`
	RequestID string      `json:"request_id,omitempty"`
}

// ErrorDetail is ErrorBody.error.
type ErrorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// hexID returns prefix_<24 hex>, like Ollama's generateID.
func hexID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// newError mirrors Ollama's anthropic.NewError status → type mapping.
func newError(code int, message string) ErrorBody {
	var t string
	switch code {
	case http.StatusBadRequest:
		t = "invalid_request_error"
	case http.StatusUnauthorized:
		t = "authentication_error"
	case http.StatusForbidden:
		t = "permission_error"
	case http.StatusNotFound:
		t = "not_found_error"
	case http.StatusTooManyRequests:
		t = "rate_limit_error"
	case http.StatusServiceUnavailable, 529:
		t = "overloaded_error"
	default:
		t = "api_error"
	}
	return ErrorBody{Type: "error", Error: ErrorDetail{Type: t, Message: message}, RequestID: hexID("req")}
}

// messagesRequest is the part of the body Ollama decodes.
type messagesRequest struct {
	Model     string `json:"model"`
	MaxTokens int    `json:"max_tokens"`
	Messages  []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	System json.RawMessage `json:"system,omitempty"`
	Stream bool            `json:"stream,omitempty"`
}

// Usage is Ollama's usage: no cache fields.
type Usage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// ContentBlock is a reply content block.
type ContentBlock struct {
	Type string  `json:"type"`
	Text *string `json:"text,omitempty"`
}

// MessagesResponse is a non-streaming reply and message_start's message.
type MessagesResponse struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	Role       string         `json:"role"`
	Model      string         `json:"model"`
	Content    []ContentBlock `json:"content"`
	StopReason string         `json:"stop_reason,omitempty"`
	Usage      Usage          `json:"usage"`
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request, body []byte) bool {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return fail(w, http.StatusBadRequest, err.Error())
	}
	switch {
	case req.Model == "":
		return fail(w, http.StatusBadRequest, "model is required")
	case req.MaxTokens <= 0:
		return fail(w, http.StatusBadRequest, "max_tokens is required and must be positive")
	case len(req.Messages) == 0:
		return fail(w, http.StatusBadRequest, "messages is required")
	}
	unhealthy, delay, streamDelay := s.faults()
	if !sleepCtx(r.Context(), delay) {
		return false
	}
	if !s.served[normalize(req.Model)] {
		return fail(w, http.StatusNotFound, fmt.Sprintf("model %q not found, try pulling it first", req.Model))
	}
	if unhealthy {
		return fail(w, http.StatusServiceUnavailable, "server busy, please try again.  maximum pending requests exceeded")
	}
	target := s.cfg.DefaultOutputTokens
	if v := r.Header.Get(OutputTokensHeader); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fail(w, http.StatusBadRequest, OutputTokensHeader+": must be a positive integer")
		}
		target = n
	}
	stop := "end_turn"
	if target > req.MaxTokens {
		target, stop = req.MaxTokens, "max_tokens"
	}
	in := inputTokens(&req)
	out := replyWords(target)
	if req.Stream {
		return s.stream(w, r, req.Model, in, out, stop, streamDelay)
	}
	text := strings.Join(out, " ")
	writeJSON(w, http.StatusOK, MessagesResponse{
		ID: hexID("msg"), Type: "message", Role: "assistant", Model: req.Model,
		Content: []ContentBlock{{Type: "text", Text: &text}}, StopReason: stop,
		Usage: Usage{InputTokens: in, OutputTokens: len(out)},
	})
	return true
}

func fail(w http.ResponseWriter, status int, message string) bool {
	writeJSON(w, status, newError(status, message))
	return true
}

// inputTokens is the fake prompt_eval_count of a request.
func inputTokens(req *messagesRequest) int {
	n := 0
	if len(req.System) > 0 && string(req.System) != "null" {
		n += 4 + countTokens(textOf(req.System))
	}
	for _, m := range req.Messages {
		n += 4 + countTokens(textOf(m.Content))
	}
	return n
}

// textOf returns the text of a string or of an array of blocks' text members.
func textOf(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &blocks)
	var b strings.Builder
	for _, bl := range blocks {
		b.WriteString(bl.Text)
		b.WriteByte(' ')
	}
	return b.String()
}

var vocab = strings.Fields(`the model runs on a local machine and answers with short plain words so tests can count them`)

func replyWords(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = vocab[i%len(vocab)]
	}
	return out
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
