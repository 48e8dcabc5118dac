package fakeanthropic

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAnthropicVersion(t *testing.T) {
	clk := newClock()
	ts := start(t, New(twoAccounts(clk, Limits{RPM: 1000, ITPM: 1e6, OTPM: 1e6})))
	const base = `"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name, version, body, path string
		wantStatus                int
		wantMsg                   string
	}{
		{"missing", "-", "{" + base + "}", "", 400, "anthropic-version: header is required"},
		{"unknown", "2024-01-01", "{" + base + "}", "", 400, `anthropic-version: "2024-01-01" is not a valid version`},
		{"2023 plain", Version2023, "{" + base + "}", "", 200, ""},
		{"2026 plain", Version2026, "{" + base + "}", "", 200, ""},
		{"2023 temperature", Version2023, `{` + base + `,"temperature":0.7,"top_p":0.9,"top_k":5}`, "", 200, ""},
		{"2026 temperature", Version2026, `{` + base + `,"temperature":1.0}`, "", 400, "temperature: Extra inputs are not permitted"},
		{"2026 top_p", Version2026, `{` + base + `,"top_p":1}`, "", 400, "top_p: Extra inputs are not permitted"},
		{"2026 top_k", Version2026, `{` + base + `,"top_k":null}`, "", 400, "top_k: Extra inputs are not permitted"},
		{"2026 count_tokens temperature", Version2026, `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}`, "/v1/messages/count_tokens", 400, "temperature: Extra inputs are not permitted"},
		{"2026 assistant document", Version2026, `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}}]}]}`, "", 400, "messages.1.content.0: document blocks are not permitted in assistant messages"},
		{"2023 assistant document", Version2023, `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}}]}]}`, "", 200, ""},
		{"2026 user citations", Version2026, `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"hi","citations":[{"type":"char_location"}]}]}]}`, "", 400, "messages.0.content.0.citations: Extra inputs are not permitted"},
		{"2026 user empty citations", Version2026, `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"hi","citations":[]}]}]}`, "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts, call{key: keyA1, version: tt.version, body: tt.body, path: tt.path})
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantMsg != "" {
				e := r.errBody(t)
				if e.Error.Type != ErrInvalidRequest || e.Error.Message != tt.wantMsg {
					t.Errorf("error = %+v, want %q", e.Error, tt.wantMsg)
				}
				if r.header.Get("anthropic-ratelimit-input-tokens-limit") != "1000000" {
					t.Errorf("400 lacks rate-limit headers: %v", r.header)
				}
			}
		})
	}
}

func TestBodyValidation(t *testing.T) {
	clk := newClock()
	ts := start(t, New(twoAccounts(clk, Limits{RPM: 1000, ITPM: 1e6, OTPM: 1e6})))
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name, path, body, wantMsg string
	}{
		{"malformed JSON", "", `{"model":`, "There was an error parsing the body of your request: invalid JSON"},
		{"not an object", "", `[1,2]`, "body: Input should be a valid dictionary"},
		{"missing model", "", `{"max_tokens":10,` + msgs + `}`, "model: Field required"},
		{"model not string", "", `{"model":5,"max_tokens":10,` + msgs + `}`, "model: Input should be a valid string"},
		{"empty model", "", `{"model":"","max_tokens":10,` + msgs + `}`, "model: String should have at least 1 character"},
		{"missing max_tokens", "", `{"model":"m",` + msgs + `}`, "max_tokens: Field required"},
		{"max_tokens string", "", `{"model":"m","max_tokens":"10",` + msgs + `}`, "max_tokens: Input should be a valid integer"},
		{"max_tokens fractional", "", `{"model":"m","max_tokens":1.5,` + msgs + `}`, "max_tokens: Input should be a valid integer, got a number with a fractional part"},
		{"max_tokens zero", "", `{"model":"m","max_tokens":0,` + msgs + `}`, "max_tokens: Input should be greater than or equal to 1"},
		{"max_tokens negative", "", `{"model":"m","max_tokens":-3,` + msgs + `}`, "max_tokens: Input should be greater than or equal to 1"},
		{"missing messages", "", `{"model":"m","max_tokens":10}`, "messages: Field required"},
		{"messages not list", "", `{"model":"m","max_tokens":10,"messages":{}}`, "messages: Input should be a valid list"},
		{"messages empty", "", `{"model":"m","max_tokens":10,"messages":[]}`, "messages: at least one message is required"},
		{"message not object", "", `{"model":"m","max_tokens":10,"messages":["hi"]}`, "messages.0: Input should be a valid dictionary"},
		{"bad role", "", `{"model":"m","max_tokens":10,"messages":[{"role":"system","content":"hi"}]}`, "messages.0.role: Input should be 'user' or 'assistant'"},
		{"missing role", "", `{"model":"m","max_tokens":10,"messages":[{"content":"hi"}]}`, "messages.0.role: Field required"},
		{"missing content", "", `{"model":"m","max_tokens":10,"messages":[{"role":"user"}]}`, "messages.0.content: Field required"},
		{"content number", "", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":3}]}`, "messages.0.content: Input should be a valid string or a valid list"},
		{"content empty list", "", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[]}]}`, "messages.0.content: List should have at least 1 item after validation, not 0"},
		{"block unknown type", "", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"video"}]}]}`, "messages.0.content.0: Input tag 'video' found using 'type' does not match any of the expected tags"},
		{"text block without text", "", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages.0.content.0.text: Field required"},
		{"second message bad", "", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_use","id":"x","name":"n"}]}]}`, "messages.1.content.0.input: Field required"},
		{"stream not bool", "", `{"model":"m","max_tokens":10,` + msgs + `,"stream":"yes"}`, "stream: Input should be a valid boolean"},
		{"system number", "", `{"model":"m","max_tokens":10,` + msgs + `,"system":1}`, "system: Input should be a valid string or a valid list"},
		{"system image", "", `{"model":"m","max_tokens":10,` + msgs + `,"system":[{"type":"image","source":{}}]}`, "system.0.type: Input should be 'text'"},
		{"tool without schema", "", `{"model":"m","max_tokens":10,` + msgs + `,"tools":[{"name":"x"}]}`, "tools.0.input_schema: Field required"},
		{"bad cache ttl", "", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral","ttl":"2h"}}]}]}`, "messages.0.content.0.cache_control.ttl: Input should be '5m' or '1h'"},
		{"temperature string", "", `{"model":"m","max_tokens":10,` + msgs + `,"temperature":"hot"}`, "temperature: Input should be a valid number"},
		{"count_tokens missing model", "/v1/messages/count_tokens", `{` + msgs + `}`, "model: Field required"},
		{"count_tokens missing messages", "/v1/messages/count_tokens", `{"model":"m"}`, "messages: Field required"},
		{"bad output header", "", `{"model":"m","max_tokens":10,` + msgs + `}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := call{key: keyA1, body: tt.body, path: tt.path}
			want := tt.wantMsg
			if tt.name == "bad output header" {
				c.headers = map[string]string{OutputTokensHeader: "lots"}
				want = "x-fake-output-tokens: must be a positive integer"
			}
			r := do(t, ts, c)
			if r.status != 400 {
				t.Fatalf("status = %d: %s", r.status, r.body)
			}
			if e := r.errBody(t); e.Error.Type != ErrInvalidRequest || e.Error.Message != want {
				t.Errorf("error = %+v\nwant message %q", e.Error, want)
			}
		})
	}

	t.Run("count_tokens without max_tokens is valid", func(t *testing.T) {
		r := do(t, ts, call{key: keyA1, path: "/v1/messages/count_tokens", body: `{"model":"m",` + msgs + `}`})
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("unknown top-level fields are accepted", func(t *testing.T) {
		r := do(t, ts, call{key: keyA1, body: `{"model":"m","max_tokens":10,` + msgs + `,"speed":"fast","future_field":{"x":1}}`})
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
}

func TestBodyTooLarge(t *testing.T) {
	s := New(Config{})
	body := bytes.Repeat([]byte(" "), MaxBodyBytes+1)
	req := httptest.NewRequest(http.MethodPost, "/v1/messages", bytes.NewReader(body))
	req.Header.Set("x-api-key", DefaultKey)
	req.Header.Set("anthropic-version", Version2023)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d", w.Code)
	}
	if !strings.Contains(w.Body.String(), `"type":"request_too_large"`) {
		t.Errorf("body = %s", w.Body)
	}

	// Exactly the limit is read and then judged on its merits (invalid JSON here).
	req = httptest.NewRequest(http.MethodPost, "/v1/messages", bytes.NewReader(body[:MaxBodyBytes]))
	req.Header.Set("x-api-key", DefaultKey)
	req.Header.Set("anthropic-version", Version2023)
	w = httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("status at the limit = %d", w.Code)
	}
}
