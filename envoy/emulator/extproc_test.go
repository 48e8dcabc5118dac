package emulator

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	epv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

const headersOnly = "processing_mode: {request_header_mode: SEND, response_header_mode: SKIP}"

// continueAll answers every message with an empty response of its kind.
func continueAll(p *procStream) error {
	for {
		r, err := p.st.Recv()
		if err != nil {
			return nil
		}
		switch r.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			p.send(hdrsResp(nil))
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			p.send(respHdrsResp(nil))
		case *extprocv3.ProcessingRequest_RequestBody:
			p.send(reqBodyResp(nil))
		case *extprocv3.ProcessingRequest_ResponseBody:
			p.send(respBodyResp(nil))
		}
	}
}

func TestExtProc_GetAndCloseStream(t *testing.T) {
	ev := newEnv(t, headersOnly, func(p *procStream) error {
		p.recv()
		return nil // close the stream without answering: the request continues unmodified
	}, nil)
	r := do(t, ev.e, "GET", "/test", "", nil)
	if r.status != 200 || r.body != "upstream body" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	waitStat(t, ev.e, "http.test.ext_proc.streams_closed", 1)
}

func TestExtProc_GetAndFailStream(t *testing.T) {
	ev := newEnv(t, headersOnly, func(p *procStream) error {
		p.recv()
		return status.Error(codes.Internal, "boom")
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 500 {
		t.Fatalf("status %d, want 500", r.status)
	}
	if ev.backend.n() != 0 {
		t.Error("upstream was called")
	}
	waitStat(t, ev.e, "http.test.ext_proc.streams_failed", 1)
}

func TestExtProc_GetAndFailStreamWithFailureModeAllow(t *testing.T) {
	ev := newEnv(t, headersOnly+"\nfailure_mode_allow: true", func(p *procStream) error {
		p.recv()
		return status.Error(codes.Internal, "boom")
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 200 {
		t.Fatalf("status %d, want 200", r.status)
	}
	waitStat(t, ev.e, "http.test.ext_proc.failure_mode_allowed", 1)
}

func TestExtProc_GetAndCloseStreamOnResponse(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_header_mode: SEND, response_header_mode: SEND}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		return nil
	}, nil)
	r := do(t, ev.e, "GET", "/test", "", nil)
	if r.status != 200 || r.header.Get("x-upstream") != "yes" {
		t.Fatalf("got %d %v", r.status, r.header)
	}
}

func TestExtProc_GetAndFailStreamOnResponse(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_header_mode: SEND, response_header_mode: SEND}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		return status.Error(codes.Unavailable, "boom")
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 500 {
		t.Fatalf("status %d, want 500", r.status)
	}
}

func TestExtProc_RequestMessageTimeout(t *testing.T) {
	ev := newEnv(t, headersOnly+"\nmessage_timeout: 0.05s", func(p *procStream) error {
		p.recv()
		p.drain() // never answers
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 504 {
		t.Fatalf("status %d, want 504", r.status)
	}
	waitStat(t, ev.e, "http.test.ext_proc.message_timeouts", 1)
}

func TestExtProc_RequestMessageTimeoutIgnoreError(t *testing.T) {
	ev := newEnv(t, headersOnly+"\nmessage_timeout: 0.05s\nfailure_mode_allow: true", func(p *procStream) error {
		p.recv()
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 200 {
		t.Fatalf("status %d, want 200", r.status)
	}
	waitStat(t, ev.e, "http.test.ext_proc.failure_mode_allowed", 1)
}

func TestExtProc_ResponseMessageTimeout(t *testing.T) {
	ev := newEnv(t, "message_timeout: 0.05s", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 504 {
		t.Fatalf("status %d, want 504", r.status)
	}
}

func TestExtProc_RequestMessageNewTimeout(t *testing.T) {
	ev := newEnv(t, headersOnly+"\nmessage_timeout: 0.2s\nmax_message_timeout: 5s", func(p *procStream) error {
		p.recv()
		p.send(&extprocv3.ProcessingResponse{OverrideMessageTimeout: durationpb.New(3 * time.Second)})
		time.Sleep(500 * time.Millisecond) // past the original 200 ms
		p.send(hdrsResp(nil))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 200 {
		t.Fatalf("status %d, want 200", r.status)
	}
	waitStat(t, ev.e, "http.test.ext_proc.override_message_timeout_received", 1)
}

func TestExtProc_RequestMessageNewTimeoutNegativeTestTimeoutNotAcceptedDefaultMax(t *testing.T) {
	// max_message_timeout unset: the override is ignored and the 50 ms timer fires.
	ev := newEnv(t, headersOnly+"\nmessage_timeout: 0.05s", func(p *procStream) error {
		p.recv()
		p.send(&extprocv3.ProcessingResponse{OverrideMessageTimeout: durationpb.New(3 * time.Second)})
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 504 {
		t.Fatalf("status %d, want 504", r.status)
	}
	waitStat(t, ev.e, "http.test.ext_proc.override_message_timeout_ignored", 1)
}

func TestExtProc_GetAndSetHeaders(t *testing.T) {
	ev := newEnv(t, headersOnly, func(p *procStream) error {
		r := p.recv()
		h := r.GetRequestHeaders()
		if !h.GetEndOfStream() {
			t.Error("GET headers should have end_of_stream")
		}
		if v, ok := headerOf(h, "x-remove-this"); !ok || v != "yes" {
			t.Errorf("x-remove-this = %q %v (keys lower case, value in raw_value)", v, ok)
		}
		if v, _ := headerOf(h, ":path"); v != "/test" {
			t.Errorf(":path = %q", v)
		}
		p.send(hdrsResp(mut([]string{"x-remove-this"}, setRaw("x-new-header", "new"))))
		p.drain()
		return nil
	}, nil)
	r := do(t, ev.e, "GET", "/test", "", map[string]string{"X-Remove-This": "yes"})
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	req, _ := ev.backend.last()
	if req.Header.Get("x-new-header") != "new" || req.Header.Get("x-remove-this") != "" {
		t.Fatalf("upstream headers %v", req.Header)
	}
}

func TestExtProc_ValueOnlyHeaderMutationSetsEmptyValue(t *testing.T) {
	ev := newEnv(t, headersOnly, func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(mut(nil, &corev3HeaderValueOption{Header: &corev3HeaderValue{Key: "x-value-only", Value: "ignored"}})))
		p.drain()
		return nil
	}, nil)
	do(t, ev.e, "GET", "/test", "", nil)
	req, _ := ev.backend.last()
	if v, ok := req.Header["X-Value-Only"]; !ok || len(v) != 1 || v[0] != "" {
		t.Fatalf("x-value-only = %q, want one empty value (Envoy reads raw_value only)", v)
	}
}

func TestExtProc_GetAndSetPathHeader(t *testing.T) {
	ev := newEnv(t, headersOnly, func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(mut(nil, setRaw(":path", "/mutated_path/bluh"))))
		p.drain()
		return nil
	}, nil)
	do(t, ev.e, "GET", "/test", "", nil)
	if req, _ := ev.backend.last(); req.URL.Path != "/mutated_path/bluh" {
		t.Fatalf("upstream path %q", req.URL.Path)
	}
}

func TestExtProc_SetHostHeaderRoutingSucceeded(t *testing.T) {
	ev := newEnv(t, headersOnly+"\nmutation_rules: {allow_all_routing: true}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(mut(nil, setRaw(":authority", "new.host.test"))))
		p.drain()
		return nil
	}, nil)
	do(t, ev.e, "GET", "/test", "", nil)
	if req, _ := ev.backend.last(); req.Host != "new.host.test" {
		t.Fatalf("upstream host %q", req.Host)
	}
}

func TestExtProc_SetHostHeaderIgnoredWithoutAllowAllRouting(t *testing.T) {
	ev := newEnv(t, headersOnly, func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(mut(nil, setRaw(":authority", "new.host.test"), setRaw("x-envoy-foo", "1"), setRaw("x-ok", "1"))))
		p.drain()
		return nil
	}, nil)
	do(t, ev.e, "GET", "/test", "", nil)
	req, _ := ev.backend.last()
	if req.Host == "new.host.test" || req.Header.Get("x-envoy-foo") != "" || req.Header.Get("x-ok") != "1" {
		t.Fatalf("host %q headers %v", req.Host, req.Header)
	}
	waitStat(t, ev.e, "http.test.ext_proc.rejected_header_mutations", 2)
}

func TestExtProc_GetAndSetHeadersNonUtf8WithValueInBytes(t *testing.T) {
	val := string([]byte{'a', 0xe9, 0xff, 'z'})
	ev := newEnv(t, headersOnly, func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(mut(nil, setRaw("x-non-utf8", val))))
		p.drain()
		return nil
	}, nil)
	do(t, ev.e, "GET", "/test", "", nil)
	if req, _ := ev.backend.last(); req.Header.Get("x-non-utf8") != val {
		t.Fatalf("got %q", req.Header.Get("x-non-utf8"))
	}
}

func TestExtProc_SetHeaderMutationFailWithRequestHeader(t *testing.T) {
	ev := newEnv(t, headersOnly+"\nmutation_rules: {disallow_is_error: true}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(mut(nil, setRaw("x-envoy-foo", "1"))))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 500 {
		t.Fatalf("status %d, want 500", r.status)
	}
	if ev.backend.n() != 0 {
		t.Error("upstream was called")
	}
}

func TestExtProc_RemoveHeaderMutationFailWithResponseHeader(t *testing.T) {
	ev := newEnv(t, "mutation_rules: {disallow_is_error: true}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		p.send(respHdrsResp(mut([]string{":status"})))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 500 {
		t.Fatalf("status %d, want 500", r.status)
	}
}

func TestExtProc_GetAndSetHeadersOnResponse(t *testing.T) {
	ev := newEnv(t, "", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		r := p.recv()
		if v, _ := headerOf(r.GetResponseHeaders(), ":status"); v != "200" {
			t.Errorf(":status %q", v)
		}
		p.send(respHdrsResp(mut(nil, setRaw(":status", "201"), setRaw("x-response-processed", "1"))))
		p.drain()
		return nil
	}, nil)
	r := do(t, ev.e, "GET", "/test", "", nil)
	if r.status != 201 || r.header.Get("x-response-processed") != "1" {
		t.Fatalf("got %d %v", r.status, r.header)
	}
}

func TestExtProc_GetAndSetHeadersOnResponseBadStatus(t *testing.T) {
	ev := newEnv(t, "", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		p.send(respHdrsResp(mut(nil, setRaw(":status", "100"), setRaw("x-response-processed", "1"))))
		p.drain()
		return nil
	}, nil)
	r := do(t, ev.e, "GET", "/test", "", nil)
	if r.status != 200 || r.header.Get("x-response-processed") != "1" {
		t.Fatalf("got %d %v", r.status, r.header)
	}
}

func TestExtProc_GetBufferedButNoBodies(t *testing.T) {
	var kinds []string
	ev := newEnv(t, "processing_mode: {request_body_mode: BUFFERED, response_body_mode: BUFFERED}", func(p *procStream) error {
		for {
			r, err := p.st.Recv()
			if err != nil {
				return nil
			}
			switch r.GetRequest().(type) {
			case *extprocv3.ProcessingRequest_RequestHeaders:
				kinds = append(kinds, "request_headers")
				p.send(hdrsResp(nil))
			case *extprocv3.ProcessingRequest_ResponseHeaders:
				kinds = append(kinds, "response_headers")
				p.send(respHdrsResp(nil))
			default:
				kinds = append(kinds, "body")
				p.send(reqBodyResp(nil))
			}
		}
	}, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	waitStat(t, ev.e, "http.test.ext_proc.stream_msgs_received", 2)
	if len(kinds) != 2 {
		t.Fatalf("messages %v, want only headers", kinds)
	}
}

func TestExtProc_BufferBodyOverridePostWithRequestBody(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_body_mode: BUFFERED, response_header_mode: SKIP}", func(p *procStream) error {
		r := p.recv()
		if r.GetRequestHeaders().GetEndOfStream() {
			t.Error("POST headers have end_of_stream")
		}
		if r.GetProtocolConfig().GetRequestBodyMode() != epv3.ProcessingMode_BUFFERED {
			t.Errorf("protocol_config %v", r.GetProtocolConfig())
		}
		p.send(hdrsResp(nil))
		b := p.recv()
		if string(b.GetRequestBody().GetBody()) != "hello world" || !b.GetRequestBody().GetEndOfStream() {
			t.Errorf("body message %v", b.GetRequestBody())
		}
		if b.GetProtocolConfig() != nil {
			t.Error("protocol_config sent again")
		}
		p.send(reqBodyResp(nil))
		p.drain()
		return nil
	}, nil)
	do(t, ev.e, "POST", "/test", "hello world", nil)
	if _, b := ev.backend.last(); b != "hello world" {
		t.Fatalf("upstream body %q", b)
	}
}

func TestExtProc_ProtocolConfigurationEncodingTest(t *testing.T) {
	var first, second *extprocv3.ProtocolConfiguration
	ev := newEnv(t, "processing_mode: {response_body_mode: STREAMED}", func(p *procStream) error {
		r := p.recv()
		first = r.GetProtocolConfig()
		p.send(hdrsResp(nil))
		r = p.recv()
		second = r.GetProtocolConfig()
		p.send(respHdrsResp(nil))
		return continueAll(p)
	}, nil)
	do(t, ev.e, "GET", "/test", "", nil)
	if first.GetResponseBodyMode() != epv3.ProcessingMode_STREAMED || second != nil {
		t.Fatalf("first %v second %v", first, second)
	}
}

func TestExtProc_GetAndSetBodyOnBoth(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_body_mode: BUFFERED, response_body_mode: STREAMED}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		p.send(reqBodyResp(&extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte("replaced request")}}}))
		p.recv()
		p.send(respHdrsResp(nil))
		for {
			r, err := p.st.Recv()
			if err != nil {
				return nil
			}
			out := bytes.ToUpper(r.GetResponseBody().GetBody())
			p.send(respBodyResp(&extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}}}))
		}
	}, nil)
	r := do(t, ev.e, "POST", "/test", "original", nil)
	if _, b := ev.backend.last(); b != "replaced request" {
		t.Fatalf("upstream body %q", b)
	}
	if r.body != "UPSTREAM BODY" {
		t.Fatalf("response body %q", r.body)
	}
}

func TestExtProc_MismatchedContentLengthAndBodyLength(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_body_mode: BUFFERED, response_header_mode: SKIP}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		p.send(reqBodyResp(&extprocv3.CommonResponse{HeaderMutation: mut(nil, setRaw("content-length", "100")),
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte("short")}}}))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "POST", "/test", "original body", nil); r.status != 500 {
		t.Fatalf("status %d, want 500", r.status)
	}
}

func TestExtProc_BufferedModeOverSizeRequestLocalReply(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_body_mode: BUFFERED, response_header_mode: SKIP}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "POST", "/test", string(make([]byte, 4096)), nil); r.status != 413 {
		t.Fatalf("status %d, want 413", r.status)
	}
}

func TestExtProc_ReplaceCompleteRequest(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_body_mode: BUFFERED, response_header_mode: SKIP}", func(p *procStream) error {
		p.recv()
		p.send(&extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
			Response: &extprocv3.CommonResponse{Status: extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
				BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte("Hello, World!")}}}}}})
		p.drain()
		return nil
	}, nil)
	do(t, ev.e, "POST", "/test", "original", nil)
	if _, b := ev.backend.last(); b != "Hello, World!" {
		t.Fatalf("upstream body %q", b)
	}
	waitStat(t, ev.e, "http.test.ext_proc.stream_msgs_sent", 1)
}

func TestExtProc_GetAndRespondImmediately(t *testing.T) {
	ev := newEnv(t, "", func(p *procStream) error {
		p.recv()
		p.send(immediate(401, "{\"reason\": \"Not authorized\"}", mut(nil, setRaw("x-failure-reason", "testing"), setRaw("content-type", "application/json"))))
		p.drain()
		return nil
	}, nil)
	r := do(t, ev.e, "GET", "/test", "", nil)
	if r.status != 401 || r.header.Get("x-failure-reason") != "testing" || r.header.Get("content-type") != "application/json" || r.body != "{\"reason\": \"Not authorized\"}" {
		t.Fatalf("got %d %v %q", r.status, r.header, r.body)
	}
	if ev.backend.n() != 0 {
		t.Error("upstream was called")
	}
}

func TestExtProc_GetAndRespondImmediatelyOnRequestBody(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_body_mode: BUFFERED}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		p.send(immediate(401, "denied", nil))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "POST", "/test", "body", nil); r.status != 401 || r.body != "denied" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
}

func TestExtProc_GetAndRespondImmediatelyOnResponse(t *testing.T) {
	ev := newEnv(t, "", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		p.send(immediate(401, "denied on response", nil))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 401 || r.body != "denied on response" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
}

func TestExtProc_GetAndRespondImmediatelyOnResponseBody(t *testing.T) {
	ev := newEnv(t, "processing_mode: {response_body_mode: BUFFERED}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		p.send(respHdrsResp(nil))
		p.recv()
		p.send(immediate(401, "denied on body", nil))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 401 || r.body != "denied on body" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
}

func TestExtProc_GetAndRespondImmediatelyWithBadStatus(t *testing.T) {
	ev := newEnv(t, "", func(p *procStream) error {
		p.recv()
		p.send(immediate(100, "bad status", nil))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 200 || r.body != "bad status" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
}

func TestExtProc_GetAndRespondImmediatelyWithEnvoyHeaderMutation(t *testing.T) {
	ev := newEnv(t, "", func(p *procStream) error {
		p.recv()
		p.send(immediate(401, "x", mut(nil, setRaw("x-envoy-foo", "bar"), setRaw("x-ok", "1"))))
		p.drain()
		return nil
	}, nil)
	r := do(t, ev.e, "GET", "/test", "", nil)
	if r.status != 401 || r.header.Get("x-envoy-foo") != "" || r.header.Get("x-ok") != "1" {
		t.Fatalf("got %d %v", r.status, r.header)
	}
}

func TestExtProc_GetAndImmediateRespondMutationAllowEnvoy(t *testing.T) {
	ev := newEnv(t, "mutation_rules: {allow_envoy: true}", func(p *procStream) error {
		p.recv()
		p.send(immediate(401, "x", mut(nil, setRaw("x-envoy-foo", "bar"))))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.header.Get("x-envoy-foo") != "bar" {
		t.Fatalf("headers %v", r.header)
	}
}

func TestExtProc_ServerSendOutOfOrderResponse(t *testing.T) {
	ev := newEnv(t, headersOnly, func(p *procStream) error {
		p.recv()
		p.send(respHdrsResp(nil)) // a response_headers answer to request_headers
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 500 {
		t.Fatalf("status %d, want 500", r.status)
	}
	waitStat(t, ev.e, "http.test.ext_proc.spurious_msgs_received", 1)
}

func TestExtProc_ProcessingModeResponseOnly(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_header_mode: SKIP, response_header_mode: SEND}", func(p *procStream) error {
		r := p.recv()
		if r.GetResponseHeaders() == nil {
			t.Errorf("first message %T, want response_headers", r.GetRequest())
		}
		p.send(respHdrsResp(mut(nil, setRaw("x-response-processed", "1"))))
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.header.Get("x-response-processed") != "1" {
		t.Fatalf("headers %v", r.header)
	}
}

func TestExtProc_ModeOverrideAllowed(t *testing.T) {
	ev := newEnv(t, "allow_mode_override: true", func(p *procStream) error {
		p.recv()
		r := hdrsResp(nil)
		r.ModeOverride = &epv3.ProcessingMode{ResponseHeaderMode: epv3.ProcessingMode_SKIP}
		p.send(r)
		p.drain()
		return nil
	}, nil)
	if r := do(t, ev.e, "GET", "/test", "", nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	waitStat(t, ev.e, "http.test.ext_proc.stream_msgs_sent", 1)
}

func TestExtProc_ModeOverrideDisallowed(t *testing.T) {
	ev := newEnv(t, "allow_mode_override: true\nallowed_override_modes: [{response_header_mode: SEND, response_body_mode: BUFFERED}]", func(p *procStream) error {
		p.recv()
		r := hdrsResp(nil)
		r.ModeOverride = &epv3.ProcessingMode{ResponseHeaderMode: epv3.ProcessingMode_SKIP}
		p.send(r)
		p.recv() // response headers still sent
		p.send(respHdrsResp(nil))
		p.drain()
		return nil
	}, nil)
	do(t, ev.e, "GET", "/test", "", nil)
	waitStat(t, ev.e, "http.test.ext_proc.stream_msgs_sent", 2)
}

func TestExtProc_GetAndSetBodyOnBothWithClearRouteCache(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_body_mode: BUFFERED, response_header_mode: SKIP}", func(p *procStream) error {
		p.recv()
		p.send(hdrsResp(nil))
		p.recv()
		p.send(reqBodyResp(&extprocv3.CommonResponse{HeaderMutation: mut(nil, setRaw("x-route", "other")), ClearRouteCache: true}))
		p.drain()
		return nil
	}, nil)
	do(t, ev.e, "POST", "/test", "body", nil)
	if ev.other.n() != 1 || ev.backend.n() != 0 {
		t.Fatalf("other %d backend %d: route not re-selected", ev.other.n(), ev.backend.n())
	}
}

func TestExtProc_ClearRouteCacheIgnoredWithoutHeaderMutation(t *testing.T) {
	ev := newEnv(t, headersOnly, func(p *procStream) error {
		p.recv()
		r := hdrsResp(nil)
		r.GetRequestHeaders().Response.ClearRouteCache = true
		p.send(r)
		p.drain()
		return nil
	}, nil)
	do(t, ev.e, "GET", "/test", "", map[string]string{})
	waitStat(t, ev.e, "http.test.ext_proc.clear_route_cache_ignored", 1)
}

func TestExtProc_StreamedResponseBodyChunkByChunk(t *testing.T) {
	release := make(chan struct{})
	var got []string
	ev := newEnv(t, "processing_mode: {request_header_mode: SKIP, response_body_mode: STREAMED}", func(p *procStream) error {
		r := p.recv()
		if _, ok := headerOf(r.GetResponseHeaders(), "content-length"); ok {
			t.Error("content-length sent in STREAMED mode")
		}
		p.send(respHdrsResp(nil))
		for {
			r, err := p.st.Recv()
			if err != nil {
				return nil
			}
			got = append(got, string(r.GetResponseBody().GetBody()))
			if len(got) == 1 {
				close(release) // the second chunk is only written after the first was processed
			}
			p.send(respBodyResp(nil))
		}
	}, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("chunk1"))
		w.(http.Flusher).Flush()
		<-release
		_, _ = w.Write([]byte("chunk2"))
	})
	r := do(t, ev.e, "GET", "/test", "", nil)
	if r.body != "chunk1chunk2" || len(got) < 2 || got[0] != "chunk1" || got[1] != "chunk2" {
		t.Fatalf("body %q messages %q", r.body, got)
	}
}

func TestExtProc_GetAndIncorrectlyModifyHeaderOnBody(t *testing.T) {
	ev := newEnv(t, "processing_mode: {request_header_mode: SKIP, response_body_mode: STREAMED}", func(p *procStream) error {
		p.recv()
		p.send(respHdrsResp(nil))
		for {
			if _, err := p.st.Recv(); err != nil {
				return nil
			}
			p.send(respBodyResp(&extprocv3.CommonResponse{HeaderMutation: mut(nil, setRaw("x-too-late", "1"))}))
		}
	}, nil)
	r := do(t, ev.e, "GET", "/test", "", nil)
	if r.status != 200 || r.header.Get("x-too-late") != "" {
		t.Fatalf("got %d %v", r.status, r.header)
	}
}
