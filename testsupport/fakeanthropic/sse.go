package fakeanthropic

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// sseWriter writes server-sent events, flushing after each one.
type sseWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	ctx   context.Context
	delay time.Duration // before every event (FaultSlowStream)
}

// event writes "event: name\ndata: json\n\n"; an error means the client is gone.
func (sw *sseWriter) event(name string, v any) error {
	if !sleepCtx(sw.ctx, sw.delay) {
		return sw.ctx.Err()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(sw.w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		return err
	}
	return sw.rc.Flush()
}

type (
	msgStartEvent struct {
		Type    string          `json:"type"`
		Message MessageResponse `json:"message"`
	}
	blockStartEvent struct {
		Type         string       `json:"type"`
		Index        int          `json:"index"`
		ContentBlock ContentBlock `json:"content_block"`
	}
	blockDeltaEvent struct {
		Type  string    `json:"type"`
		Index int       `json:"index"`
		Delta deltaBody `json:"delta"`
	}
	deltaBody struct {
		Type        string  `json:"type"`
		Text        *string `json:"text,omitempty"`
		PartialJSON *string `json:"partial_json,omitempty"`
	}
	indexEvent struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}
	msgDeltaEvent struct {
		Type  string       `json:"type"`
		Delta msgDeltaBody `json:"delta"`
		Usage DeltaUsage   `json:"usage"`
	}
	msgDeltaBody struct {
		StopReason   *string `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}
	typeEvent struct {
		Type string `json:"type"`
	}
	errorEvent struct {
		Type  string      `json:"type"`
		Error ErrorDetail `json:"error"`
	}
)

// stream serves an admitted streaming request (reference §2, SSE streaming).
func (x *exchange) stream(req *MessagesRequest, p reply, plan cachePlan, msgID, toolID string, f Fault) {
	cfg := &x.s.cfg
	sw := &sseWriter{w: x.w, rc: http.NewResponseController(x.w), ctx: x.r.Context()}
	if f.Kind == FaultSlowStream {
		sw.delay = f.Delay
	}
	produced := 0
	x.rec.InputTokens = plan.input
	x.rec.CacheCreationInputTokens, x.rec.CacheReadInputTokens = plan.creation(), plan.read
	defer func() {
		x.settleReservation(req, produced)
		x.rec.OutputTokens = produced
	}()

	x.s.mu.Lock()
	x.setHeadersLocked(x.s.now())
	x.s.mu.Unlock()
	h := x.w.Header()
	h.Set("content-type", "text/event-stream; charset=utf-8")
	h.Set("cache-control", "no-cache")
	x.w.WriteHeader(http.StatusOK)
	x.rec.Status = http.StatusOK
	if err := sw.rc.Flush(); err != nil {
		x.rec.ErrorType = "client_gone"
		return
	}

	emit := func(name string, v any) bool {
		if err := sw.event(name, v); err != nil {
			x.rec.ErrorType = "client_gone"
			return false
		}
		return true
	}
	ping := func() bool { return emit("ping", typeEvent{Type: "ping"}) }

	if !emit("message_start", msgStartEvent{Type: "message_start", Message: message(msgID, req.Model, p, toolID, plan, true)}) {
		return
	}
	empty := ""
	if !emit("content_block_start", blockStartEvent{Type: "content_block_start", Index: 0, ContentBlock: ContentBlock{Type: "text", Text: &empty}}) {
		return
	}
	if cfg.PingEvery >= 0 && !ping() {
		return
	}
	per := cfg.TokensPerDelta
	if per <= 0 {
		per = 4
	}
	texts := chunks(p.words, per)
	// fault fires once `sent` deltas went out; -1 = never
	faultAt := -1
	if f.Kind == FaultStreamError || f.Kind == FaultDropMidStream {
		faultAt = min(max(f.AfterDeltas, 0), len(texts))
	}
	sent := 0
	fire := func() bool { // reports whether the stream must end
		if sent != faultAt {
			return false
		}
		if f.Kind == FaultDropMidStream {
			x.rec.ErrorType = "dropped"
			x.drop()
			return true
		}
		x.rec.ErrorType = ErrOverloaded
		_ = emit("error", errorEvent{Type: "error", Error: ErrorDetail{Type: ErrOverloaded, Message: "Overloaded"}})
		return true
	}
	for i, t := range texts {
		if fire() {
			return
		}
		if !emit("content_block_delta", blockDeltaEvent{Type: "content_block_delta", Index: 0, Delta: deltaBody{Type: "text_delta", Text: &t}}) {
			return
		}
		n := min(per, len(p.words)-i*per)
		produced += n
		x.chargeOutput(n)
		sent++
		if cfg.PingEvery > 0 && sent%cfg.PingEvery == 0 && !ping() {
			return
		}
	}
	if fire() {
		return
	}
	if !emit("content_block_stop", indexEvent{Type: "content_block_stop", Index: 0}) {
		return
	}
	if p.tool != "" {
		if !emit("content_block_start", blockStartEvent{Type: "content_block_start", Index: 1,
			ContentBlock: ContentBlock{Type: "tool_use", ID: toolID, Name: p.tool, Input: json.RawMessage(`{}`)}}) {
			return
		}
		for _, part := range []string{"", "{}"} {
			if !emit("content_block_delta", blockDeltaEvent{Type: "content_block_delta", Index: 1, Delta: deltaBody{Type: "input_json_delta", PartialJSON: &part}}) {
				return
			}
		}
		produced += p.toolTokens
		x.chargeOutput(p.toolTokens)
		if !emit("content_block_stop", indexEvent{Type: "content_block_stop", Index: 1}) {
			return
		}
	}
	nd := max(cfg.MessageDeltas, 1)
	total := p.outputTokens()
	for i := 1; i <= nd; i++ {
		md := msgDeltaEvent{Type: "message_delta", Usage: DeltaUsage{
			InputTokens:              plan.input,
			CacheCreationInputTokens: plan.creation(),
			CacheReadInputTokens:     plan.read,
			OutputTokens:             total * i / nd,
		}}
		if i == nd {
			sr := p.stopReason
			md.Delta.StopReason = &sr
		}
		if !emit("message_delta", md) {
			return
		}
	}
	if emit("message_stop", typeEvent{Type: "message_stop"}) {
		x.rec.Completed = true
	}
}
