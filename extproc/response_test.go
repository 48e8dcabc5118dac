package extproc

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const jsonResponse = `{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-6",
"content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,
"usage":{"input_tokens":25,"output_tokens":15,"cache_creation_input_tokens":4,"cache_read_input_tokens":100,
"cache_creation":{"ephemeral_5m_input_tokens":4,"ephemeral_1h_input_tokens":0},"service_tier":"standard"}}`

const sseResponse = "event: message_start\n" +
	`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-6","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":31,"output_tokens":1}}}` + "\n\n" +
	"event: content_block_start\n" + `data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}` + "\n\n" +
	"event: ping\n" + `data: {"type": "ping"}` + "\n\n" +
	"event: content_block_delta\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}` + "\n\n" +
	"event: content_block_stop\n" + `data: {"type":"content_block_stop","index":0}` + "\n\n" +
	"event: message_delta\n" + `data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":42}}` + "\n\n" +
	"event: message_stop\n" + `data: {"type":"message_stop"}` + "\n\n"

// sendRequest runs the request half of a front stream for the shop tenant.
func sendRequest(t *testing.T, s *envoyStream, body string) {
	t.Helper()
	s.roundTrip(postMessages("x-api-key", shopKey))
	if br := s.roundTrip(reqBody(body, true)).GetRequestBody(); br == nil {
		t.Fatal("request body rejected")
	}
}

func tokens(h *harness, tenant, model, account, kind string) float64 {
	return testutil.ToFloat64(h.metrics.tokens.WithLabelValues(tenant, model, account, kind))
}

func TestFrontResponseJSONUsage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	s := h.open(t, RoleFront)
	sendRequest(t, s, helloBody)
	resp := s.roundTrip(respHeaders(false, ":status", "200", "content-type", "application/json",
		HeaderAccount, "org-b", "x-guardian-debug", "leak", "request-id", "req_upstream"))
	m := readMutation(resp.GetResponseHeaders().GetResponse().GetHeaderMutation())
	if !m.removes(HeaderAccount) || !m.removes("x-guardian-debug") {
		t.Errorf("internal response headers must not reach the caller: removes %v", m.remove)
	}
	if !strings.HasPrefix(m.set[HeaderRequestID], "req_") {
		t.Errorf("caller should get x-guardian-request-id, got %v", m.set)
	}
	// Envoy streams the body in chunks; split inside the usage object.
	cut := strings.Index(jsonResponse, `"output_tokens"`) + 5
	if r := s.roundTrip(respBody(jsonResponse[:cut], false)); r.GetResponseBody() == nil {
		t.Fatalf("got %v", r)
	}
	if r := s.roundTrip(respBody(jsonResponse[cut:], true)); r.GetResponseBody().GetResponse().GetBodyMutation() != nil {
		t.Fatal("response body must pass unchanged")
	}
	s.close()
	for kind, want := range map[string]float64{"input": 25, "output": 15, "cache_creation": 4, "cache_read": 100} {
		if got := tokens(h, "shop", "claude-sonnet-4-6", "org-b", kind); got != want {
			t.Errorf("%s tokens = %v, want %v", kind, got, want)
		}
	}
	if got := testutil.ToFloat64(h.metrics.requests.WithLabelValues("shop", "messages", OutcomeOK)); got != 1 {
		t.Errorf("ok requests = %v", got)
	}
}

func TestFrontResponseSSEUsage(t *testing.T) {
	for _, chunk := range []int{1, 7, 64, len(sseResponse)} {
		h := newHarness(t, harnessOpts{})
		s := h.open(t, RoleFront)
		sendRequest(t, s, strings.Replace(helloBody, `"max_tokens"`, `"stream":true,"max_tokens"`, 1))
		s.roundTrip(respHeaders(false, ":status", "200", "content-type", "text/event-stream; charset=utf-8", HeaderAccount, "org-a"))
		for i := 0; i < len(sseResponse); i += chunk {
			end := min(i+chunk, len(sseResponse))
			s.roundTrip(respBody(sseResponse[i:end], false))
		}
		s.roundTrip(respBody("", true))
		s.close()
		if in, out := tokens(h, "shop", "claude-sonnet-4-6", "org-a", "input"), tokens(h, "shop", "claude-sonnet-4-6", "org-a", "output"); in != 31 || out != 42 {
			t.Errorf("chunk %d: input %v output %v, want 31 and 42", chunk, in, out)
		}
	}
}

func TestFrontResponseErrors(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		body    string
		outcome string
	}{
		{"429 JSON", []string{":status", "429", "content-type", "application/json", "retry-after", "3"},
			`{"type":"error","error":{"type":"rate_limit_error","message":"slow"},"request_id":"req_x"}`, OutcomeUpstreamError},
		{"mid-stream error after 200", []string{":status", "200", "content-type", "text/event-stream"},
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n" +
				"event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n", OutcomeUpstreamError},
		{"broken JSON body", []string{":status", "200", "content-type", "application/json"}, `{"type":"message","usa`, OutcomeOK},
		{"garbage SSE", []string{":status", "200", "content-type", "text/event-stream"}, "\x00\xff\r\r\n:::\ndata: {{{\n\n", OutcomeOK},
	}
	h := newHarness(t, harnessOpts{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := h.open(t, RoleFront)
			sendRequest(t, s, helloBody)
			s.roundTrip(respHeaders(false, tt.headers...))
			s.roundTrip(respBody(tt.body, true))
			s.close()
		})
	}
	if got := testutil.ToFloat64(h.metrics.requests.WithLabelValues("shop", "messages", OutcomeUpstreamError)); got != 2 {
		t.Errorf("upstream errors = %v, want 2", got)
	}
	if got := testutil.ToFloat64(h.metrics.requests.WithLabelValues("shop", "messages", OutcomeOK)); got != 2 {
		t.Errorf("ok = %v, want 2 (unreadable bodies still pass)", got)
	}
}

// TestFrontAbandonedStream: the client goes away mid-stream; Envoy resets the
// ext_proc stream. The request is settled with what was seen and nothing is
// left running (goleak checks the whole package in TestMain).
func TestFrontAbandonedStream(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	s := h.open(t, RoleFront)
	sendRequest(t, s, helloBody)
	s.roundTrip(respHeaders(false, ":status", "200", "content-type", "text/event-stream", HeaderAccount, "org-a"))
	s.roundTrip(respBody(sseResponse[:strings.Index(sseResponse, "event: content_block_delta")], false))
	s.cancel() // Envoy resets the stream
	// The stream's end is counted last, after the request is settled and its
	// tokens counted: once it is seen, the other counters are final.
	eventually(t, "the cancelled stream to be counted", func() bool {
		return testutil.ToFloat64(h.metrics.streams.WithLabelValues("front", string(EndCancelled))) == 1
	})
	if got := testutil.ToFloat64(h.metrics.requests.WithLabelValues("shop", "messages", OutcomeAbandoned)); got != 1 {
		t.Errorf("abandoned requests = %v, want 1", got)
	}
	if got := tokens(h, "shop", "claude-sonnet-4-6", "org-a", "input"); got != 31 {
		t.Errorf("input tokens seen before the reset = %v, want 31", got)
	}
}

// TestEnvoyErrorsInAnthropicFormat: an error Envoy made itself (no
// backend answer: a reset after the retries, a timeout) reaches the caller
// as Anthropic's error JSON with the request id, as SDKs read errors;
// answers from Anthropic, and the ratelimit filter's own JSON 429, pass
// unchanged.
func TestEnvoyErrorsInAnthropicFormat(t *testing.T) {
	tests := []struct {
		name     string
		headers  []string
		status   int
		wantType string // "" : passed through
	}{
		{"reset after retries", []string{":status", "503", "content-type", "text/plain"}, 503, "overloaded_error"},
		{"upstream timeout", []string{":status", "504", "content-type", "text/plain"}, 504, "timeout_error"},
		{"no content type", []string{":status", "502"}, 502, "api_error"},
		{"Anthropic's own error", []string{":status", "503", "content-type", "text/html", HeaderAccount, "org-a"}, 503, ""},
		{"JSON error", []string{":status", "500", "content-type", "application/json"}, 500, ""},
		{"ratelimit filter", []string{":status", "429", "x-envoy-ratelimited", "true", "content-type", "application/json"}, 429, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			s := h.open(t, RoleFront)
			sendRequest(t, s, helloBody)
			resp := s.roundTrip(respHeaders(false, tt.headers...))
			ir := resp.GetImmediateResponse()
			if tt.wantType == "" {
				if ir != nil || resp.GetResponseHeaders() == nil {
					t.Fatalf("want the response passed through, got %v", resp)
				}
				return
			}
			if ir == nil || int(ir.Status.GetCode()) != tt.status {
				t.Fatalf("want an immediate %d, got %v", tt.status, resp)
			}
			e := decodeError(t, ir)
			if e.Error.Type != tt.wantType || e.RequestID == "" || !strings.HasPrefix(e.Error.Message, "claude-guardian: ") {
				t.Errorf("error = %+v", e)
			}
			hs := readMutation(ir.GetHeaders())
			if hs.set["request-id"] != e.RequestID || hs.set["content-type"] != "application/json" {
				t.Errorf("headers %v", hs.set)
			}
			eventually(t, "the request settled as an upstream error", func() bool {
				return testutil.ToFloat64(h.metrics.requests.WithLabelValues("shop", "messages", OutcomeUpstreamError)) == 1
			})
		})
	}
}
