package extproc

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/keypool"
	"github.com/claude-guardian/claude-guardian/policy"
)

// MetadataNamespace is the dynamic-metadata namespace the front processor
// writes (Envoy keeps it only if the filter lists it in
// metadata_options.receiving_namespaces.untyped). Its keys: tenant,
// request_id, backend, model, input_tokens_estimate, max_tokens. All values
// are strings: the ratelimit filter's metadata actions take only strings, and
// %DYNAMIC_METADATA(…)% renders a string as it is (hits_addend parses it).
const MetadataNamespace = "claude-guardian"

// MetadataKeys are the keys the front processor writes in
// MetadataNamespace: on the request body, and (the last three) when the
// response ends — the correction of the input-token estimate with the real
// usage, for the ratelimit filter's apply_on_stream_done descriptors.
var MetadataKeys = []string{"tenant", "request_id", "backend", "model", "input_tokens_estimate", "max_tokens",
	"input_tokens_actual", "input_tokens_refund", "input_tokens_extra"}

// FrontConfig holds the front processor's limits.
type FrontConfig struct {
	MaxRequestBytes      int64
	MaxResponseScanBytes int64
}

// Front is the downstream processor: once per client request, with the
// processing mode request headers SEND, request body BUFFERED, response
// headers SEND, response body STREAMED.
type Front struct {
	cfg     FrontConfig
	tenants *Tenants
	pool    *keypool.Pool
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	policy  *FrontPolicy    // nil: every request to Claude unchanged
	admit   *FrontAdmission // nil: no reservation before sending
}

// NewFront builds the front processor.
func NewFront(cfg FrontConfig, tenants *Tenants, pool *keypool.Pool, log *slog.Logger, m *Metrics) *Front {
	return &Front{cfg: cfg, tenants: tenants, pool: pool, log: log, metrics: m, now: time.Now}
}

// NewStream implements [StreamFactory].
func (f *Front) NewStream(context.Context) StreamProcessor {
	return &frontStream{f: f}
}

// frontStream is one client request as it passes through the front.
type frontStream struct {
	f         *Front
	requestID string
	tenant    *Tenant
	endpoint  anthropic.Endpoint
	req       *anthropic.Request
	outcome   string // set once the request is answered or its response ends
	// Routing: the caller's declared task, the policy's decision (its
	// priority and max wait are kept for the admission queue), and what
	// the response headers report.
	task          string
	decision      policy.Decision
	routeHeader   string
	originalModel string
	// Admission: the reservation held for the request (nil when none) and
	// how long it waited for it.
	reservation   *keypool.Reservation
	reservedModel string
	queueWait     time.Duration
	// Response side.
	status  int
	account string
	sse     bool
	stream  anthropic.StreamReader
	body    []byte // non-streaming response, up to MaxResponseScanBytes
	tooBig  bool
	settled bool
	// rateLimited: the response is the ratelimit filter's local 429.
	rateLimited bool
	// itpm is what the response counted toward ITPM, once settled.
	itpm int64
}

// ProcessRequestHeaders implements [RequestHeadersProcessor]. It strips
// every x-guardian-* header the caller sent and the caller's credential,
// authenticates the gateway key and checks the path.
func (s *frontStream) ProcessRequestHeaders(_ context.Context, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	s.requestID = anthropic.NewRequestID()
	var path, method, apiKey, auth string
	var remove []string
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch k := hv.Key; {
		case k == ":path":
			path = headerValue(hv)
		case k == ":method":
			method = headerValue(hv)
		case k == "x-api-key":
			apiKey = headerValue(hv)
			remove = appendOnce(remove, k)
		case k == "authorization":
			auth = headerValue(hv)
			remove = appendOnce(remove, k)
		case k == HeaderTask:
			// Read for the policy, then removed like every internal header.
			s.task = declaredTask(headerValue(hv))
			remove = appendOnce(remove, k)
		case strings.HasPrefix(k, InternalPrefix):
			remove = appendOnce(remove, k)
		}
	}
	// x-api-key wins when both are sent, as it does at Anthropic.
	key := apiKey
	if key == "" {
		key, _ = bearerToken(auth)
	}
	if key == "" {
		return s.reject(OutcomeUnauthenticated, anthropic.AuthenticationError,
			"x-api-key header is required (or Authorization: Bearer) with a claude-guardian gateway key"), nil
	}
	if s.tenant = s.f.tenants.Authenticate(key); s.tenant == nil {
		return s.reject(OutcomeUnauthenticated, anthropic.AuthenticationError, "invalid x-api-key: not a claude-guardian gateway key"), nil
	}
	s.endpoint = anthropic.EndpointFor(path)
	if s.endpoint == 0 || method != "POST" {
		return s.reject(OutcomeNotFound, anthropic.NotFoundError,
			fmt.Sprintf("%s %s is not served by claude-guardian: it serves POST /v1/messages and POST /v1/messages/count_tokens", method, pathOnly(path))), nil
	}
	if h.EndOfStream {
		return s.reject(OutcomeInvalidRequest, anthropic.InvalidRequestError, "request body is empty: send a JSON Messages request"), nil
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation: &extprocv3.HeaderMutation{
				RemoveHeaders: remove,
				SetHeaders: []*corev3.HeaderValueOption{
					setHeader(HeaderTenant, s.tenant.Name),
					setHeader(HeaderRequestID, s.requestID),
				},
			},
		}},
	}}, nil
}

// ProcessRequestBody implements [RequestBodyProcessor]. In BUFFERED mode
// the whole body arrives in one message, while Envoy still holds the
// headers, so the routing headers set here take effect.
func (s *frontStream) ProcessRequestBody(ctx context.Context, b *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error) {
	if s.tenant == nil {
		return nil, fmt.Errorf("extproc: request_body before an accepted request_headers")
	}
	if !b.EndOfStream {
		// BUFFERED sends the whole body at once; anything else means the
		// filter was configured with a mode we cannot work with.
		return nil, fmt.Errorf("extproc: request_body without end_of_stream: the front processor needs request_body_mode BUFFERED")
	}
	if int64(len(b.Body)) > s.f.cfg.MaxRequestBytes {
		return s.reject(OutcomeTooLarge, anthropic.RequestTooLarge,
			fmt.Sprintf("request body is %d bytes; the limit is %d bytes", len(b.Body), s.f.cfg.MaxRequestBytes)), nil
	}
	req, err := anthropic.ParseRequest(b.Body, s.endpoint)
	if err != nil {
		e, _ := err.(*anthropic.Error)
		if e == nil {
			e = &anthropic.Error{Type: anthropic.InvalidRequestError, Message: err.Error()}
		}
		return s.reject(OutcomeInvalidRequest, e.Type, e.Message), nil
	}
	s.req = req
	rt := s.route(ctx, b.Body)
	if rt.reject != nil {
		return rt.reject, nil
	}
	if rt.backend == BackendClaude && !s.f.pool.Usable() {
		return s.rejectNoKey(), nil
	}
	if s.f.admit != nil && rt.backend == BackendClaude && s.endpoint == anthropic.Messages {
		if resp := s.admit(ctx, rt.model); resp != nil {
			return resp, nil
		}
	}
	md := &structpb.Struct{Fields: map[string]*structpb.Value{
		MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"tenant":                structpb.NewStringValue(s.tenant.Name),
			"request_id":            structpb.NewStringValue(s.requestID),
			"backend":               structpb.NewStringValue(rt.backend),
			"model":                 structpb.NewStringValue(rt.model),
			"input_tokens_estimate": structpb.NewStringValue(strconv.FormatInt(req.EstimatedInputTokens, 10)),
			"max_tokens":            structpb.NewStringValue(strconv.FormatInt(req.MaxTokens, 10)),
		}}),
	}}
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
			Response: &extprocv3.CommonResponse{
				HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: append([]*corev3.HeaderValueOption{
					setHeader(HeaderBackend, rt.backend),
				}, rt.headers...)},
				BodyMutation: rt.body,
				// Envoy clears the route cache only when the same response
				// carries a header mutation (reference §1.5).
				ClearRouteCache: true,
			},
		}},
		DynamicMetadata: md,
	}, nil
}

// rejectNoKey answers 503 when no pool key is in service: retrying will
// not help until the operator fixes the keys.
func (s *frontStream) rejectNoKey() *extprocv3.ProcessingResponse {
	return s.rejectWith(OutcomeNoKey, http.StatusServiceUnavailable, anthropic.APIError,
		"claude-guardian has no usable Anthropic key: every pool key is disabled (see the gateway's log)",
		setHeader("x-should-retry", "false"))
}

// reject answers the request with an Anthropic error and records why.
func (s *frontStream) reject(outcome string, t anthropic.ErrorType, msg string) *extprocv3.ProcessingResponse {
	return s.rejectWith(outcome, t.Status(), t, msg)
}

// rejectWith is reject with a status other than the error type's own.
func (s *frontStream) rejectWith(outcome string, status int, t anthropic.ErrorType, msg string, extra ...*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	s.outcome = outcome
	return errorResponse(status, t, msg, s.requestID, extra...)
}

func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}
