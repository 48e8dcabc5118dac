package fakeollama

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

type (
	msgStart struct {
		Type    string           `json:"type"`
		Message MessagesResponse `json:"message"`
	}
	blockStart struct {
		Type         string       `json:"type"`
		Index        int          `json:"index"`
		ContentBlock ContentBlock `json:"content_block"`
	}
	blockDelta struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
		Delta struct {
			Type string `json:"type"`
			Text string `json:"text,omitempty"`
		} `json:"delta"`
	}
	blockStop struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}
	msgDelta struct {
		Type  string `json:"type"`
		Delta struct {
			StopReason string `json:"stop_reason,omitempty"`
		} `json:"delta"`
		Usage Usage `json:"usage"`
	}
	msgStop struct {
		Type string `json:"type"`
	}
)

// stream writes Ollama's event sequence; it reports whether it finished.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, model string, in int, out []string, stop string, delay time.Duration) bool {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return false
	}
	emit := func(name string, v any) bool {
		if !sleepCtx(r.Context(), delay) {
			return false
		}
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	empty := ""
	if !emit("message_start", msgStart{Type: "message_start", Message: MessagesResponse{
		ID: hexID("msg"), Type: "message", Role: "assistant", Model: model, Content: []ContentBlock{},
		Usage: Usage{InputTokens: in},
	}}) {
		return false
	}
	if !emit("content_block_start", blockStart{Type: "content_block_start", ContentBlock: ContentBlock{Type: "text", Text: &empty}}) {
		return false
	}
	per := s.cfg.TokensPerDelta
	for i := 0; i < len(out); i += per {
		d := blockDelta{Type: "content_block_delta"}
		d.Delta.Type = "text_delta"
		d.Delta.Text = strings.Join(out[i:min(i+per, len(out))], " ")
		if i > 0 {
			d.Delta.Text = " " + d.Delta.Text
		}
		if !emit("content_block_delta", d) {
			return false
		}
	}
	if !emit("content_block_stop", blockStop{Type: "content_block_stop"}) {
		return false
	}
	md := msgDelta{Type: "message_delta", Usage: Usage{InputTokens: in, OutputTokens: len(out)}}
	md.Delta.StopReason = stop
	if !emit("message_delta", md) {
		return false
	}
	return emit("message_stop", msgStop{Type: "message_stop"})
}
