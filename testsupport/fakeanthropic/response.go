package fakeanthropic

import "encoding/json"

// MessageResponse is the body of a non-streaming reply and the "message" of
// message_start (reference §2, Non-streaming response).
type MessageResponse struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []ContentBlock `json:"content"`
	StopReason   *string        `json:"stop_reason"`
	StopSequence *string        `json:"stop_sequence"`
	Usage        ResponseUsage  `json:"usage"`
}

// ContentBlock is a reply content block (text or tool_use).
type ContentBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

// ResponseUsage is usage of a reply.
type ResponseUsage struct {
	InputTokens              int           `json:"input_tokens"`
	CacheCreationInputTokens int           `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int           `json:"cache_read_input_tokens"`
	CacheCreation            CacheCreation `json:"cache_creation"`
	OutputTokens             int           `json:"output_tokens"`
	ServiceTier              string        `json:"service_tier"`
}

// CacheCreation splits cache writes by TTL.
type CacheCreation struct {
	Ephemeral5mInputTokens int `json:"ephemeral_5m_input_tokens"`
	Ephemeral1hInputTokens int `json:"ephemeral_1h_input_tokens"`
}

// DeltaUsage is the cumulative usage of a message_delta event.
type DeltaUsage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
}

// CountTokensResponse is the body of a count_tokens reply.
type CountTokensResponse struct {
	InputTokens int `json:"input_tokens"`
}

func usageOf(p cachePlan, output int) ResponseUsage {
	return ResponseUsage{
		InputTokens:              p.input,
		CacheCreationInputTokens: p.creation(),
		CacheReadInputTokens:     p.read,
		CacheCreation:            CacheCreation{Ephemeral5mInputTokens: p.write5m, Ephemeral1hInputTokens: p.write1h},
		OutputTokens:             output,
		ServiceTier:              "standard",
	}
}

// message builds the reply body; when partial it is the message_start
// shape (empty content, null stop_reason, output_tokens 1).
func message(id, model string, p reply, toolID string, plan cachePlan, partial bool) MessageResponse {
	m := MessageResponse{ID: id, Type: "message", Role: "assistant", Model: model, Content: []ContentBlock{}}
	if partial {
		m.Usage = usageOf(plan, 1)
		return m
	}
	text := p.text()
	m.Content = append(m.Content, ContentBlock{Type: "text", Text: &text})
	if p.tool != "" {
		m.Content = append(m.Content, ContentBlock{Type: "tool_use", ID: toolID, Name: p.tool, Input: json.RawMessage(`{}`)})
	}
	sr := p.stopReason
	m.StopReason = &sr
	m.Usage = usageOf(plan, p.outputTokens())
	return m
}
