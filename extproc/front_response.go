package extproc

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/policy"
)

// ProcessResponseHeaders implements [ResponseHeadersProcessor]: it notes the
// status, the serving account (which the upstream processor reports in an
// internal header, removed here) and whether the body is an SSE stream.
func (s *frontStream) ProcessResponseHeaders(_ context.Context, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	var remove []string
	ct, answered := "", false // answered: the upstream processor saw Anthropic's answer
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch k := hv.Key; {
		case k == ":status":
			s.status, _ = strconv.Atoi(headerValue(hv))
		case k == "content-type":
			ct = strings.ToLower(headerValue(hv))
			s.sse = strings.HasPrefix(ct, "text/event-stream")
		case k == HeaderAccount:
			s.account, answered = headerValue(hv), true
			remove = appendOnce(remove, k)
		case k == "x-envoy-ratelimited":
			s.rateLimited = true // the ratelimit filter's own 429: nothing was charged
		case strings.HasPrefix(k, InternalPrefix):
			remove = appendOnce(remove, k)
		}
	}
	if s.status >= 400 && !answered && !s.rateLimited && !s.sse && !strings.HasPrefix(ct, "application/json") {
		return s.envoyErrorAsAnthropic(), nil
	}
	mut := &extprocv3.HeaderMutation{RemoveHeaders: remove}
	if s.requestID != "" {
		mut.SetHeaders = []*corev3.HeaderValueOption{setHeader(HeaderRequestID, s.requestID)}
	}
	mut.SetHeaders = s.routeHeaders(mut.SetHeaders)
	if s.reservation != nil {
		mut.SetHeaders = append(mut.SetHeaders, s.queueWaitHeader())
	}
	s.observeUpstream()
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
		ResponseHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: mut}},
	}}
	if h.EndOfStream {
		s.settle()
		resp.DynamicMetadata = s.correction()
	}
	return resp, nil
}

// ProcessResponseBody implements [ResponseBodyProcessor]. In STREAMED mode
// each chunk is read as it passes and sent on unchanged.
func (s *frontStream) ProcessResponseBody(_ context.Context, b *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error) {
	switch {
	case s.sse:
		s.stream.Write(b.Body)
	case !s.tooBig:
		if int64(len(s.body)+len(b.Body)) > s.f.cfg.MaxResponseScanBytes {
			s.tooBig, s.body = true, nil
		} else {
			s.body = append(s.body, b.Body...)
		}
	}
	if b.EndOfStream {
		s.settle()
		if md := s.correction(); md != nil {
			return &extprocv3.ProcessingResponse{
				Response:        &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}},
				DynamicMetadata: md,
			}, nil
		}
	}
	return continueResponseBody, nil
}

// envoyErrorAsAnthropic answers an error Envoy made itself, with no
// backend's answer behind it (a refused or reset connection after the
// retries, a timeout, a circuit breaker), in Anthropic's error format with
// the request id, as the SDKs read errors, instead of Envoy's plain text.
// The request is settled here, as any answer that is not a 2xx.
func (s *frontStream) envoyErrorAsAnthropic() *extprocv3.ProcessingResponse {
	s.observeUpstream()
	s.settle()
	var msg string
	switch s.status {
	case http.StatusServiceUnavailable:
		msg = "claude-guardian: the backend could not be reached (connection refused or reset, or too many requests in flight at the gateway); retry later"
	case http.StatusGatewayTimeout:
		msg = "claude-guardian: the backend did not answer in time"
	default:
		who := "the gateway"
		if s.decision.Backend == policy.BackendOllama {
			who = "the gateway or Ollama (an Ollama without /v1/messages answers 404)"
		}
		msg = fmt.Sprintf("claude-guardian: %s answered %d %s, not in Anthropic's format", who, s.status, http.StatusText(s.status))
	}
	extra := s.routeHeaders(nil)
	if s.reservation != nil {
		extra = append(extra, s.queueWaitHeader())
	}
	resp := errorResponse(s.status, anthropic.ErrorTypeFor(s.status), msg, s.requestID, extra...)
	resp.DynamicMetadata = s.correction()
	return resp
}

// correction is the metadata that corrects the ratelimit filter's input
// token count at the end of the stream (apply_on_stream_done): the
// estimate it was charged, minus (refund) or plus (extra) what Anthropic
// counted toward ITPM. A request Anthropic did not answer 2xx, or that the
// ratelimit filter itself refused, counts nothing.
func (s *frontStream) correction() *structpb.Struct {
	if s.req == nil || s.req.EstimatedInputTokens == 0 {
		return nil
	}
	est, act := s.req.EstimatedInputTokens, int64(0)
	switch {
	case s.rateLimited:
		est = 0 // the filter refused before charging
	case s.status >= 200 && s.status < 300:
		act = s.itpm
	}
	str := func(n int64) *structpb.Value { return structpb.NewStringValue(strconv.FormatInt(n, 10)) }
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"input_tokens_actual": str(act),
			"input_tokens_refund": str(max(0, est-act)),
			"input_tokens_extra":  str(max(0, act-est)),
		}}),
	}}
}

// Close implements [StreamProcessor]: a stream that ends before its
// response did (client gone, reset, timeout) is settled with what was seen.
func (s *frontStream) Close(end StreamEnd) {
	if !s.settled {
		if s.outcome == "" && end != EndComplete {
			s.outcome = OutcomeAbandoned
		}
		s.settle()
	}
}

// settle records the request's outcome and usage once.
func (s *frontStream) settle() {
	if s.settled {
		return
	}
	s.settled = true
	m := s.f.metrics
	var usage anthropic.Usage
	var upstreamErr *anthropic.Error
	known := false
	switch {
	case s.sse:
		usage, upstreamErr = s.stream.Usage(), s.stream.Err()
		known = s.stream.Model() != "" // message_start was read
	case len(s.body) > 0:
		var err error
		usage, upstreamErr, err = anthropic.ParseResponse(s.body)
		known = err == nil
		if err != nil && s.status < 300 {
			s.f.log.Warn("response body not readable: usage unknown", "request_id", s.requestID, "err", err)
		}
	}
	// Anthropic charged the request if it answered 2xx (a stream cut short
	// included); anything else is refunded whole.
	reached := s.status >= 200 && s.status < 300
	if reached && !known && s.reservation != nil {
		// Usage unknown: keep what was reserved rather than refund it.
		usage = anthropic.Usage{InputTokens: s.reservation.Input, OutputTokens: s.reservation.Output}
	}
	s.settleReservation(usage, reached)
	s.itpm = usage.ITPMTokens()
	if s.outcome == "" {
		s.outcome = OutcomeOK
		if s.status >= 300 || upstreamErr != nil || s.status == 0 {
			s.outcome = OutcomeUpstreamError
		}
	}
	tenant := "none"
	if s.tenant != nil {
		tenant = s.tenant.Name
	}
	m.requests.WithLabelValues(tenant, endpointLabel(s.endpoint), s.outcome).Inc()
	if s.req != nil && s.endpoint == anthropic.Messages {
		model := m.models.Value(s.servedModel())
		account := s.account
		if account == "" {
			account = "unknown"
		}
		for _, t := range []struct {
			kind string
			n    int64
		}{
			{"input", usage.InputTokens},
			{"output", usage.OutputTokens},
			{"cache_read", usage.CacheReadInputTokens},
			{"cache_creation", usage.CacheCreationInputTokens},
		} {
			if t.n > 0 {
				m.tokens.WithLabelValues(tenant, model, account, t.kind).Add(float64(t.n))
			}
		}
		total := usage.InputTokens + usage.CacheCreationInputTokens + usage.CacheReadInputTokens
		if total > 0 && s.req.EstimatedInputTokens > 0 {
			m.estimate.Observe(float64(total) / float64(s.req.EstimatedInputTokens))
		}
	}
	if s.f.log.Enabled(context.Background(), slog.LevelDebug) {
		s.f.log.Debug("request settled", "request_id", s.requestID, "tenant", tenant,
			"outcome", s.outcome, "status", s.status, "account", s.account,
			"input_tokens", usage.InputTokens, "output_tokens", usage.OutputTokens)
	}
}

func endpointLabel(e anthropic.Endpoint) string {
	switch e {
	case anthropic.Messages:
		return "messages"
	case anthropic.CountTokens:
		return "count_tokens"
	}
	return "other"
}
