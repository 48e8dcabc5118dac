package extproc

import (
	"fmt"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/claude-guardian/claude-guardian/config"
)

const helloBody = `{"model":"claude-sonnet-4-6","max_tokens":256,"messages":[{"role":"user","content":"Hello, Claude"}]}`

func TestFrontStripsCallerInternalHeadersAndCredential(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	s := h.open(t, RoleFront)
	resp := s.roundTrip(postMessages(
		"x-api-key", shopKey,
		"x-guardian-backend", "ollama",
		"x-guardian-tenant", "search",
		"x-guardian-priority", "0",
		"x-guardian-account", "org-b",
		"X-Guardian-Ignored-Case", "kept: Envoy lower-cases keys, so this never happens",
	))
	hr := resp.GetRequestHeaders()
	if hr == nil {
		t.Fatalf("want a headers response, got %v", resp)
	}
	m := readMutation(hr.GetResponse().GetHeaderMutation())
	for _, name := range []string{"x-guardian-backend", "x-guardian-tenant", "x-guardian-priority", "x-guardian-account", "x-api-key"} {
		if !m.removes(name) {
			t.Errorf("caller's %s not removed (removes %v)", name, m.remove)
		}
	}
	if m.set[HeaderTenant] != "shop" {
		t.Errorf("tenant = %q, want shop (from the gateway key, not the caller's header)", m.set[HeaderTenant])
	}
	if id := m.set[HeaderRequestID]; !strings.HasPrefix(id, "req_") {
		t.Errorf("request id = %q", id)
	}
	// Envoy applies removals before sets, so the tenant header survives.
	body := s.roundTrip(reqBody(helloBody, true)).GetRequestBody()
	bm := readMutation(body.GetResponse().GetHeaderMutation())
	if bm.set[HeaderBackend] != BackendClaude {
		t.Errorf("backend = %q, want claude whatever the caller asked", bm.set[HeaderBackend])
	}
	s.close()
}

func TestFrontAuthentication(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		tenant  string // "" = 401
		message string
	}{
		{"x-api-key", []string{"x-api-key", shopKey}, "shop", ""},
		{"bearer", []string{"authorization", "Bearer " + searchKey}, "search", ""},
		{"bearer lower-case scheme", []string{"authorization", "bearer " + shopKey}, "shop", ""},
		{"both: x-api-key wins", []string{"x-api-key", shopKey, "authorization", "Bearer " + searchKey}, "shop", ""},
		{"both: wrong x-api-key wins", []string{"x-api-key", "nope", "authorization", "Bearer " + searchKey}, "", "invalid x-api-key: not a claude-guardian gateway key"},
		{"missing", nil, "", "x-api-key header is required (or Authorization: Bearer) with a claude-guardian gateway key"},
		{"unknown key", []string{"x-api-key", "gw-test-unknown"}, "", "invalid x-api-key: not a claude-guardian gateway key"},
		{"a pool key is not a gateway key", []string{"x-api-key", poolKeyA1}, "", "invalid x-api-key: not a claude-guardian gateway key"},
		{"basic scheme", []string{"authorization", "Basic " + shopKey}, "", "x-api-key header is required (or Authorization: Bearer) with a claude-guardian gateway key"},
		{"empty bearer", []string{"authorization", "Bearer "}, "", "x-api-key header is required (or Authorization: Bearer) with a claude-guardian gateway key"},
		{"key with suffix", []string{"x-api-key", shopKey + "x"}, "", "invalid x-api-key: not a claude-guardian gateway key"},
	}
	h := newHarness(t, harnessOpts{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := h.open(t, RoleFront)
			resp := s.roundTrip(postMessages(tt.headers...))
			if tt.tenant != "" {
				m := readMutation(resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
				if m.set[HeaderTenant] != tt.tenant {
					t.Fatalf("tenant = %q, want %q (response %v)", m.set[HeaderTenant], tt.tenant, resp)
				}
				if !m.removes("x-api-key") && !m.removes("authorization") {
					t.Errorf("credential not removed: %v", m.remove)
				}
				return
			}
			ir := resp.GetImmediateResponse()
			if ir == nil || ir.Status.GetCode() != 401 {
				t.Fatalf("want immediate 401, got %v", resp)
			}
			e := decodeError(t, ir)
			if e.Error.Type != "authentication_error" || e.Error.Message != tt.message {
				t.Errorf("error = %+v", e.Error)
			}
		})
	}
	// Streams settle when Envoy (here: the subtest's cleanup) ends them.
	eventually(t, "7 unauthenticated requests counted", func() bool {
		return testutil.ToFloat64(h.metrics.requests.WithLabelValues("none", "other", OutcomeUnauthenticated)) == 7
	})
}

func TestFrontPathsAndMethods(t *testing.T) {
	tests := []struct {
		method, path string
		status       int // 0: accepted
	}{
		{"POST", "/v1/messages", 0},
		{"POST", "/v1/messages?beta=true", 0},
		{"POST", "/v1/messages/count_tokens", 0},
		{"GET", "/v1/messages", 404},
		{"POST", "/v1/messages/batches", 404},
		{"GET", "/v1/models", 404},
		{"POST", "/v1/complete", 404},
	}
	h := newHarness(t, harnessOpts{})
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			s := h.open(t, RoleFront)
			resp := s.roundTrip(reqHeaders(false, ":method", tt.method, ":path", tt.path, "x-api-key", shopKey))
			ir := resp.GetImmediateResponse()
			if tt.status == 0 {
				if ir != nil {
					t.Fatalf("rejected: %s", ir.Body)
				}
				return
			}
			if ir == nil || int(ir.Status.GetCode()) != tt.status {
				t.Fatalf("want %d, got %v", tt.status, resp)
			}
			e := decodeError(t, ir)
			want := fmt.Sprintf("%s %s is not served by claude-guardian: it serves POST /v1/messages and POST /v1/messages/count_tokens", tt.method, strings.Split(tt.path, "?")[0])
			if e.Error.Type != "not_found_error" || e.Error.Message != want {
				t.Errorf("error = %+v", e.Error)
			}
		})
	}
}

func TestFrontRequestBody(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		body    string
		status  int
		errType string
		message string
	}{
		{"valid", "/v1/messages", helloBody, 0, "", ""},
		{"count_tokens without max_tokens", "/v1/messages/count_tokens", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}`, 0, "", ""},
		{"malformed JSON", "/v1/messages", `{"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [`, 400, "invalid_request_error", "request body is not valid JSON: unexpected end of JSON input (at byte 62)"},
		{"wrong type", "/v1/messages", `{"model":"claude-sonnet-4-6","max_tokens":"ten","messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error", "max_tokens: Input should be a valid integer"},
		{"missing model", "/v1/messages", `{"max_tokens":10,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error", "model: Field required"},
		{"missing max_tokens", "/v1/messages", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error", "max_tokens: Field required"},
		{"missing messages", "/v1/messages", `{"model":"m","max_tokens":10}`, 400, "invalid_request_error", "messages: Field required"},
		{"over the cap", "/v1/messages", `{"model":"claude-sonnet-4-6","max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("a", 2048) + `"}]}`,
			413, "request_too_large", "request body is 2135 bytes; the limit is 2048 bytes"},
	}
	h := newHarness(t, harnessOpts{maxRequestBytes: 2048})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := h.open(t, RoleFront)
			s.roundTrip(reqHeaders(false, ":method", "POST", ":path", tt.path, "x-api-key", shopKey))
			resp := s.roundTrip(reqBody(tt.body, true))
			if tt.status != 0 {
				ir := resp.GetImmediateResponse()
				if ir == nil || int(ir.Status.GetCode()) != tt.status {
					t.Fatalf("want %d, got %v", tt.status, resp)
				}
				e := decodeError(t, ir)
				if e.Error.Type != tt.errType || e.Error.Message != tt.message {
					t.Errorf("error = %+v", e.Error)
				}
				return
			}
			br := resp.GetRequestBody()
			if br == nil {
				t.Fatalf("want a body response, got %v", resp)
			}
			cr := br.GetResponse()
			m := readMutation(cr.GetHeaderMutation())
			if m.set[HeaderBackend] != BackendClaude {
				t.Errorf("backend header = %q", m.set[HeaderBackend])
			}
			if !cr.GetClearRouteCache() {
				t.Error("clear_route_cache must come with the routing header")
			}
			if cr.GetBodyMutation() != nil {
				t.Error("body must pass unchanged")
			}
			ns := resp.GetDynamicMetadata().GetFields()[MetadataNamespace].GetStructValue().GetFields()
			if ns["tenant"].GetStringValue() != "shop" || ns["input_tokens_estimate"].GetStringValue() == "" || ns["input_tokens_estimate"].GetStringValue() == "0" || ns["backend"].GetStringValue() != "claude" {
				t.Errorf("dynamic metadata = %v", ns)
			}
			s.close()
		})
	}
}

func TestFrontEmptyBodyAndProtocolErrors(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	t.Run("headers end the stream", func(t *testing.T) {
		s := h.open(t, RoleFront)
		ir := s.roundTrip(reqHeaders(true, ":method", "POST", ":path", "/v1/messages", "x-api-key", shopKey)).GetImmediateResponse()
		if ir == nil || ir.Status.GetCode() != 400 {
			t.Fatalf("want 400, got %v", ir)
		}
		if e := decodeError(t, ir); e.Error.Message != "request body is empty: send a JSON Messages request" {
			t.Errorf("message = %q", e.Error.Message)
		}
	})
	t.Run("body before headers", func(t *testing.T) {
		s := h.open(t, RoleFront)
		if err := s.s.Send(reqBody(helloBody, true)); err != nil {
			t.Fatal(err)
		}
		_, err := s.s.Recv()
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("err = %v, want FailedPrecondition", err)
		}
	})
	t.Run("unknown role", func(t *testing.T) {
		s := h.open(t, Role("sidecar"))
		// The server refuses the stream at once; Send may already see EOF.
		_ = s.s.Send(postMessages("x-api-key", shopKey))
		_, err := s.s.Recv()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `unknown x-guardian-role "sidecar"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("trailers pass", func(t *testing.T) {
		s := h.open(t, RoleFront)
		resp := s.roundTrip(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}})
		if resp.GetRequestTrailers() == nil {
			t.Fatalf("got %v", resp)
		}
	})
}

func TestFrontNoUsableKey(t *testing.T) {
	h := newHarness(t, harnessOpts{accounts: []config.Account{
		{Name: "org-a", Keys: []config.Key{{ID: "a1", MissingEnv: "ANTHROPIC_API_KEY"}}},
	}})
	s := h.open(t, RoleFront)
	s.roundTrip(postMessages("x-api-key", shopKey))
	ir := s.roundTrip(reqBody(helloBody, true)).GetImmediateResponse()
	if ir == nil || ir.Status.GetCode() != 503 {
		t.Fatalf("want 503, got %v", ir)
	}
	e := decodeError(t, ir)
	if e.Error.Type != "api_error" || !strings.Contains(e.Error.Message, "no usable Anthropic key") {
		t.Errorf("error = %+v", e.Error)
	}
	if readMutation(ir.Headers).set["x-should-retry"] != "false" {
		t.Error("a missing key is not worth an SDK retry: want x-should-retry: false")
	}
}
