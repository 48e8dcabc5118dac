package anthropic

import (
	"strings"
	"testing"
)

func TestParseRequestValid(t *testing.T) {
	body := `{"model":"claude-sonnet-4-6","max_tokens":1024,"stream":true,
	 "system":[{"type":"text","text":"You are terse."}],
	 "tools":[{"name":"get_weather","description":"d","input_schema":{"type":"object"}}],
	 "thinking":{"type":"enabled","budget_tokens":2000},
	 "messages":[
	  {"role":"user","content":"first question"},
	  {"role":"assistant","content":[{"type":"text","text":"answer"},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
	  {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"},{"type":"text","text":"and tomorrow?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}
	 ]}`
	r, err := ParseRequest([]byte(body), Messages)
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Endpoint: Messages, Model: "claude-sonnet-4-6", MaxTokens: 1024, Stream: true,
		SystemBytes: len("You are terse."), Messages: 3, LastUserText: "and tomorrow?",
		HasTools: true, Thinking: true, Images: 1}
	got := *r
	got.EstimatedInputTokens, got.Conversation = 0, 0 // tested on their own
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if r.EstimatedInputTokens < toolsOverhead+mediaTokens {
		t.Errorf("estimate %d misses the tools and image costs", r.EstimatedInputTokens)
	}
}

func TestParseRequestCountTokens(t *testing.T) {
	r, err := ParseRequest([]byte(`{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}`), CountTokens)
	if err != nil {
		t.Fatal(err)
	}
	if r.MaxTokens != 0 || r.LastUserText != "hi" || r.Endpoint != CountTokens {
		t.Errorf("%+v", r)
	}
}

func TestParseRequestInvalid(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"empty", ``, "request body is empty: send a JSON Messages request"},
		{"spaces", "  \n", "request body is empty: send a JSON Messages request"},
		{"not json", `{"model":`, "request body is not valid JSON: unexpected end of JSON input (at byte 9)"},
		{"syntax", `{"model" "x"}`, "request body is not valid JSON: invalid character '\"' after object key (at byte 10)"},
		{"array", `[1,2]`, "request body: Input should be a JSON object"},
		{"no model", `{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, "model: Field required"},
		{"empty model", `{"model":"","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, "model: String should have at least 1 character"},
		{"model number", `{"model":5,"max_tokens":5,"messages":[]}`, "model: Input should be a valid string"},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "max_tokens: Field required"},
		{"max_tokens zero", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens: Input should be greater than or equal to 1"},
		{"max_tokens string", `{"model":"m","max_tokens":"5","messages":[]}`, "max_tokens: Input should be a valid integer"},
		{"max_tokens float", `{"model":"m","max_tokens":1.5,"messages":[]}`, "max_tokens: Input should be a valid integer"},
		{"no messages", `{"model":"m","max_tokens":5}`, "messages: Field required"},
		{"messages null", `{"model":"m","max_tokens":5,"messages":null}`, "messages: Field required"},
		{"messages empty", `{"model":"m","max_tokens":5,"messages":[]}`, "messages: List should have at least 1 item after validation, not 0"},
		{"messages object", `{"model":"m","max_tokens":5,"messages":{}}`, "messages: Input should be a valid list"},
		{"bad role", `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`, "messages.0.role: Input should be 'user' or 'assistant'"},
		{"no role", `{"model":"m","max_tokens":5,"messages":[{"content":"x"}]}`, "messages.0.role: Field required"},
		{"no content", `{"model":"m","max_tokens":5,"messages":[{"role":"user"}]}`, "messages.0.content: Field required"},
		{"content number", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":7}]}`, "messages.1.content: Input should be a valid string or a list of content blocks"},
		{"block without type", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"text":"x"}]}]}`, "messages.0.content.0.type: Field required"},
		{"stream string", `{"model":"m","max_tokens":5,"stream":"yes","messages":[{"role":"user","content":"x"}]}`, "stream: Input should be a valid boolean"},
		{"system number", `{"model":"m","max_tokens":5,"system":3,"messages":[{"role":"user","content":"x"}]}`, "system: Input should be a valid string or a list of text blocks"},
		{"system block type", `{"model":"m","max_tokens":5,"system":[{"type":"image"}],"messages":[{"role":"user","content":"x"}]}`, "system.0.type: Input should be 'text'"},
		{"tools object", `{"model":"m","max_tokens":5,"tools":{},"messages":[{"role":"user","content":"x"}]}`, "tools: Input should be a valid list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest([]byte(tt.body), Messages)
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if e.Type != InvalidRequestError || e.Message != tt.want {
				t.Errorf("got  %s: %s\nwant %s", e.Type, e.Message, tt.want)
			}
		})
	}
}

func TestEndpointFor(t *testing.T) {
	tests := map[string]Endpoint{
		"/v1/messages":                     Messages,
		"/v1/messages?beta=true":           Messages,
		"/v1/messages/":                    Messages,
		"/v1/messages/count_tokens":        CountTokens,
		"/v1/messages/count_tokens?beta=1": CountTokens,
		"/v1/messages/batches":             0,
		"/v1/models":                       0,
		"/":                                0,
		"/v1/messagesX":                    0,
	}
	for p, want := range tests {
		if got := EndpointFor(p); got != want {
			t.Errorf("EndpointFor(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestErrorBodyAndRequestID(t *testing.T) {
	got := string(ErrorBody(RateLimitError, `over "limit"`, "req_1"))
	want := `{"type":"error","error":{"type":"rate_limit_error","message":"over \"limit\""},"request_id":"req_1"}`
	if got != want {
		t.Errorf("ErrorBody = %s", got)
	}
	seen := map[string]bool{}
	for range 1000 {
		id := NewRequestID()
		if len(id) != 28 || !strings.HasPrefix(id, "req_") || strings.Trim(id[4:], base62) != "" {
			t.Fatalf("bad request id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate request id %q", id)
		}
		seen[id] = true
	}
	for _, tt := range []struct {
		t    ErrorType
		want int
	}{{InvalidRequestError, 400}, {AuthenticationError, 401}, {PermissionError, 403}, {NotFoundError, 404},
		{RequestTooLarge, 413}, {RateLimitError, 429}, {APIError, 500}, {TimeoutError, 504}, {OverloadedError, 529}} {
		if got := tt.t.Status(); got != tt.want {
			t.Errorf("%s.Status() = %d, want %d", tt.t, got, tt.want)
		}
	}
}

func TestConversationKey(t *testing.T) {
	conv := func(system, first, last string) uint64 {
		body := `{"model":"m","max_tokens":5,"system":` + system + `,"messages":[{"role":"user","content":` + first + `},{"role":"assistant","content":"ok"},{"role":"user","content":` + last + `}]}`
		r, err := ParseRequest([]byte(body), Messages)
		if err != nil {
			t.Fatal(err)
		}
		return r.Conversation
	}
	a := conv(`"be brief"`, `"hello"`, `"next"`)
	if a == 0 || a != conv(`"be brief"`, `"hello"`, `"a later turn"`) {
		t.Error("later turns must not change the conversation key")
	}
	if a == conv(`"be verbose"`, `"hello"`, `"next"`) || a == conv(`"be brief"`, `"hi"`, `"next"`) {
		t.Error("another system prompt or first message is another conversation")
	}
}

func TestErrorTypeFor(t *testing.T) {
	for _, et := range []ErrorType{InvalidRequestError, AuthenticationError, BillingError, PermissionError,
		NotFoundError, RequestTooLarge, RateLimitError, APIError, TimeoutError} {
		if got := ErrorTypeFor(et.Status()); got != et {
			t.Errorf("ErrorTypeFor(%d) = %s, want %s", et.Status(), got, et)
		}
	}
	for status, want := range map[int]ErrorType{418: InvalidRequestError, 503: OverloadedError, 529: OverloadedError, 502: APIError} {
		if got := ErrorTypeFor(status); got != want {
			t.Errorf("ErrorTypeFor(%d) = %s, want %s", status, got, want)
		}
	}
}
