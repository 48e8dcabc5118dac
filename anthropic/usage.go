package anthropic

import (
	"encoding/json"
	"fmt"
)

// Usage is the token usage of one response.
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// ITPMTokens is what counts toward an input-tokens-per-minute limit on
// current models: uncached input plus cache writes; cache reads do not count.
func (u Usage) ITPMTokens() int64 { return u.InputTokens + u.CacheCreationInputTokens }

// wireUsage has pointer fields so that a message_delta can say which counts
// it carries: the counts it carries are cumulative and replace earlier ones.
type wireUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
}

func (w *wireUsage) mergeInto(u *Usage) {
	if w == nil {
		return
	}
	set := func(dst *int64, src *int64) {
		if src != nil && *src >= 0 {
			*dst = *src
		}
	}
	set(&u.InputTokens, w.InputTokens)
	set(&u.OutputTokens, w.OutputTokens)
	set(&u.CacheCreationInputTokens, w.CacheCreationInputTokens)
	set(&u.CacheReadInputTokens, w.CacheReadInputTokens)
}

// Response is what the gateway reads from a non-streaming response body.
type Response struct {
	Type       string     `json:"type"` // "message" or "error"
	Model      string     `json:"model"`
	StopReason string     `json:"stop_reason"`
	Usage      *wireUsage `json:"usage"`
	Error      *Error     `json:"error"`
	// InputTokens is count_tokens' answer.
	InputTokens *int64 `json:"input_tokens"`
}

// ParseResponse reads usage (or the error) from a JSON response body of
// /v1/messages or /v1/messages/count_tokens.
func ParseResponse(body []byte) (Usage, *Error, error) {
	var r Response
	if err := json.Unmarshal(body, &r); err != nil {
		return Usage{}, nil, fmt.Errorf("anthropic: response body: %w", err)
	}
	var u Usage
	r.Usage.mergeInto(&u)
	if r.Type == "error" && r.Error != nil {
		return u, r.Error, nil
	}
	return u, nil, nil
}
