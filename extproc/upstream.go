package extproc

import (
	"context"
	"log/slog"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/keypool"
)

// Upstream is the processor Envoy runs as an upstream filter of the
// anthropic cluster: once per attempt, retries included, with request
// headers SEND, response headers SEND and no bodies. It puts a pool key on
// the attempt and learns from Anthropic's answer.
//
// It must not rely on headers it removed itself: Envoy hands every attempt
// the same request header map, so a retry sees the previous attempt's
// mutations.
type Upstream struct {
	pool *keypool.Pool
	log  *slog.Logger
}

// NewUpstream builds the upstream processor.
func NewUpstream(pool *keypool.Pool, log *slog.Logger) *Upstream {
	return &Upstream{pool: pool, log: log}
}

// NewStream implements [StreamFactory].
func (u *Upstream) NewStream(context.Context) StreamProcessor {
	return &upstreamStream{u: u}
}

type upstreamStream struct {
	u         *Upstream
	key       *keypool.Key
	requestID string
}

// ProcessRequestHeaders implements [RequestHeadersProcessor].
func (s *upstreamStream) ProcessRequestHeaders(_ context.Context, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	remove := []string{"authorization"}
	for _, hv := range h.GetHeaders().GetHeaders() {
		if k := hv.Key; strings.HasPrefix(k, InternalPrefix) {
			if k == HeaderRequestID {
				s.requestID = headerValue(hv)
			}
			remove = appendOnce(remove, k)
		}
	}
	mut := &extprocv3.HeaderMutation{RemoveHeaders: remove}
	if s.key = s.u.pool.Pick(); s.key != nil {
		mut.SetHeaders = []*corev3.HeaderValueOption{setHeader("x-api-key", s.key.Secret())}
	} else {
		// Upstream filters cannot answer locally (Envoy ignores an
		// immediate response there); Anthropic will answer 401.
		mut.RemoveHeaders = append(mut.RemoveHeaders, "x-api-key")
		s.u.log.Error("no usable pool key for an upstream attempt", "request_id", s.requestID)
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: mut}},
	}}, nil
}

// ProcessResponseHeaders implements [ResponseHeadersProcessor]: the status
// and anthropic-ratelimit-* headers update the account; the account's name
// goes back to the front processor in an internal header.
func (s *upstreamStream) ProcessResponseHeaders(_ context.Context, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	if s.key == nil {
		return continueResponseHeaders, nil
	}
	var reading anthropic.RateLimitReading
	status := 0
	for _, hv := range h.GetHeaders().GetHeaders() {
		if hv.Key == ":status" {
			status, _ = strconv.Atoi(headerValue(hv))
			continue
		}
		reading.Observe(hv.Key, headerValue(hv))
	}
	s.u.pool.Observe(s.key, status, &reading)
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
		ResponseHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				setHeader(HeaderAccount, s.key.Account.Name),
			}},
		}},
	}}, nil
}

// Close implements [StreamProcessor].
func (s *upstreamStream) Close(StreamEnd) {}
