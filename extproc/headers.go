package extproc

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/claude-guardian/claude-guardian/anthropic"
)

// Headers guardian sets for Envoy's routing and for its own processors.
// Callers can never set them: the front processor removes every header with
// InternalPrefix that a request arrives with.
const (
	InternalPrefix  = "x-guardian-"
	HeaderBackend   = "x-guardian-backend"    // claude | ollama: Envoy routes on it
	HeaderTenant    = "x-guardian-tenant"     // the authenticated client's name
	HeaderRequestID = "x-guardian-request-id" // also returned to the caller
	HeaderAccount   = "x-guardian-account"    // response: account that served it
	// HeaderRetry, on an upstream response, asks Envoy to retry the attempt
	// ("key": its key was refused and is out of service, another can take
	// it); envoy.yaml's retry policy lists it in retriable_headers.
	HeaderRetry       = "x-guardian-retry"
	HeaderRequestKind = "x-guardian-endpoint" // messages | count_tokens
)

// Backend values of HeaderBackend.
const (
	BackendClaude = "claude"
	BackendOllama = "ollama"
)

// headerValue returns a header's value. Envoy sends raw_value (bytes) by
// default and value only with the send_header_raw_value runtime flag off.
func headerValue(h *corev3.HeaderValue) string {
	if len(h.RawValue) > 0 {
		return string(h.RawValue)
	}
	return h.Value
}

// setHeader builds a set_headers entry. Envoy reads only raw_value of a
// mutation (a value-only entry sets an empty header, envoy#31555), and
// append unset means overwrite.
func setHeader(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: name, RawValue: []byte(value)}}
}

// bearerToken returns the token of an "Authorization: Bearer …" value.
func bearerToken(v string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// appendOnce adds name to list unless it is there already.
func appendOnce(list []string, name string) []string {
	for _, n := range list {
		if n == name {
			return list
		}
	}
	return append(list, name)
}

// errorResponse answers the request itself with Anthropic's error JSON, so
// that SDKs report it like an API error.
func errorResponse(status int, t anthropic.ErrorType, message, requestID string, extra ...*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	return immediate(status, anthropic.ErrorBody(t, message, requestID), requestID, "guardian_"+string(t), extra...)
}

func immediate(status int, body []byte, requestID, details string, extra ...*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	set := make([]*corev3.HeaderValueOption, 0, 3+len(extra))
	set = append(set, setHeader("content-type", "application/json"))
	if requestID != "" {
		set = append(set, setHeader("request-id", requestID), setHeader(HeaderRequestID, requestID))
	}
	set = append(set, extra...)
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: &extprocv3.HeaderMutation{SetHeaders: set},
			Body:    body,
			Details: details,
		}}}
}
