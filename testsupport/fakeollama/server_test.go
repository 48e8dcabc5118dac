package fakeollama

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, ts *httptest.Server, method, path, body string, headers map[string]string) result {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, b}
}

var (
	reqIDRe = regexp.MustCompile(`^req_[0-9a-f]{24}$`)
	msgIDRe = regexp.MustCompile(`^msg_[0-9a-f]{24}$`)
)

const hello = `{"model":"llama3.1:8b-instruct-q4_K_M","max_tokens":100,"messages":[{"role":"user","content":"Hello, world!"}]}`

func TestHealthAndTags(t *testing.T) {
	ts := start(t, New(Config{}))
	r := do(t, ts, "GET", "/", "", nil)
	if r.status != 200 || string(r.body) != "Ollama is running" {
		t.Errorf("GET / = %d %q", r.status, r.body)
	}
	if r := do(t, ts, "HEAD", "/", "", nil); r.status != 200 || len(r.body) != 0 {
		t.Errorf("HEAD / = %d", r.status)
	}
	r = do(t, ts, "GET", "/api/tags", "", nil)
	var tags TagsResponse
	if err := json.Unmarshal(r.body, &tags); err != nil || r.status != 200 {
		t.Fatalf("tags %d %s", r.status, r.body)
	}
	if len(tags.Models) != 2 || tags.Models[0].Name != DefaultChatModel || tags.Models[1].Name != "all-minilm:latest" ||
		tags.Models[0].Details.Family != "llama" || len(tags.Models[0].Digest) != 64 {
		t.Errorf("tags = %+v", tags)
	}
	if r := do(t, ts, "GET", "/api/nothing", "", nil); r.status != 404 || string(r.body) != "404 page not found" {
		t.Errorf("unknown = %d %q", r.status, r.body)
	}
	if r := do(t, ts, "GET", "/v1/messages", "", nil); r.status != 404 {
		t.Errorf("GET /v1/messages = %d", r.status)
	}
}

func TestMessagesValidationAndErrors(t *testing.T) {
	ts := start(t, New(Config{}))
	tests := []struct {
		name, body string
		status     int
		typ, msg   string
	}{
		{"malformed", `{"model":`, 400, "invalid_request_error", "unexpected end of JSON input"},
		{"missing model", `{"max_tokens":10,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error", "model is required"},
		{"missing max_tokens", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error", "max_tokens is required and must be positive"},
		{"zero max_tokens, no messages", `{"model":"m","max_tokens":0}`, 400, "invalid_request_error", "max_tokens is required and must be positive"},
		{"missing messages", `{"model":"m","max_tokens":10}`, 400, "invalid_request_error", "messages is required"},
		{"unknown model", `{"model":"qwen3:4b","max_tokens":10,"messages":[{"role":"user","content":"x"}]}`, 404, "not_found_error", `model "qwen3:4b" not found, try pulling it first`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts, "POST", "/v1/messages", tt.body, nil)
			var e ErrorBody
			if err := json.Unmarshal(r.body, &e); err != nil {
				t.Fatal(err)
			}
			if r.status != tt.status || e.Type != "error" || e.Error.Type != tt.typ || e.Error.Message != tt.msg || !reqIDRe.MatchString(e.RequestID) {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}
}

func TestMessagesNonStreaming(t *testing.T) {
	s := New(Config{})
	ts := start(t, s)
	tests := []struct {
		name     string
		body     string
		headers  map[string]string
		wantOut  int
		wantStop string
		wantIn   int
	}{
		{"no key, no version, default output", hello, nil, 16, "end_turn", 4 + 4},
		{"any key and version ignored", hello, map[string]string{"x-api-key": "whatever", "anthropic-version": "1999-01-01", OutputTokensHeader: "5"}, 5, "end_turn", 8},
		{"bearer token, cut at max_tokens", strings.Replace(hello, `"max_tokens":100`, `"max_tokens":3`, 1), map[string]string{"Authorization": "Bearer ollama"}, 3, "max_tokens", 8},
		{"untagged model name means latest, system counted", `{"model":"all-minilm","max_tokens":10,"system":[{"type":"text","text":"be brief"}],"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]},{"role":"assistant","content":"yo"}]}`, nil, 10, "max_tokens", 4 + 2 + 4 + 1 + 4 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts, "POST", "/v1/messages", tt.body, tt.headers)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &raw); err != nil {
				t.Fatal(err)
			}
			if _, ok := raw["stop_sequence"]; ok {
				t.Error("Ollama omits stop_sequence")
			}
			if want := fmt.Sprintf(`{"input_tokens":%d,"output_tokens":%d}`, tt.wantIn, tt.wantOut); string(raw["usage"]) != want {
				t.Errorf("usage %s, want %s", raw["usage"], want)
			}
			var m MessagesResponse
			_ = json.Unmarshal(r.body, &m)
			if !msgIDRe.MatchString(m.ID) || m.Type != "message" || m.Role != "assistant" || m.StopReason != tt.wantStop ||
				len(m.Content) != 1 || len(strings.Fields(*m.Content[0].Text)) != tt.wantOut {
				t.Errorf("reply %s", r.body)
			}
		})
	}
}

type event struct{ name, data string }

func readSSE(t *testing.T, r io.Reader) []event {
	t.Helper()
	sc := bufio.NewScanner(r)
	var evs []event
	for sc.Scan() {
		l1 := sc.Text()
		if !sc.Scan() {
			t.Fatalf("truncated after %q", l1)
		}
		l2 := sc.Text()
		sc.Scan()
		name, ok1 := strings.CutPrefix(l1, "event: ")
		data, ok2 := strings.CutPrefix(l2, "data: ")
		if !ok1 || !ok2 || sc.Text() != "" {
			t.Fatalf("framing %q %q %q", l1, l2, sc.Text())
		}
		evs = append(evs, event{name, data})
	}
	return evs
}

func TestMessagesStreaming(t *testing.T) {
	ts := start(t, New(Config{TokensPerDelta: 2}))
	body := strings.Replace(hello, `"max_tokens":100`, `"max_tokens":100,"stream":true`, 1)
	req, _ := http.NewRequest("POST", ts.URL+"/v1/messages", strings.NewReader(body))
	req.Header.Set(OutputTokensHeader, "5")
	resp2, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if resp2.StatusCode != 200 || resp2.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", resp2.StatusCode, resp2.Header)
	}
	evs := readSSE(t, resp2.Body)
	var names []string
	for _, e := range evs {
		names = append(names, e.name)
	}
	want := "message_start,content_block_start,content_block_delta,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop"
	if strings.Join(names, ",") != want {
		t.Fatalf("events %v", names)
	}
	start := regexp.MustCompile(`^\{"type":"message_start","message":\{"id":"msg_[0-9a-f]{24}","type":"message","role":"assistant","model":"llama3.1:8b-instruct-q4_K_M","content":\[\],"usage":\{"input_tokens":8,"output_tokens":0\}\}\}$`)
	if !start.MatchString(evs[0].data) {
		t.Errorf("message_start %s", evs[0].data)
	}
	exact := map[int]string{
		1: `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		2: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the model"}}`,
		3: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" runs on"}}`,
		4: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" a"}}`,
		5: `{"type":"content_block_stop","index":0}`,
		6: `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":8,"output_tokens":5}}`,
		7: `{"type":"message_stop"}`,
	}
	for i, w := range exact {
		if evs[i].data != w {
			t.Errorf("event %d:\n got %s\nwant %s", i, evs[i].data, w)
		}
	}
}

func TestUnhealthyAndDelays(t *testing.T) {
	s := New(Config{})
	ts := start(t, s)
	s.SetUnhealthy(true)
	r := do(t, ts, "POST", "/v1/messages", hello, nil)
	var e ErrorBody
	_ = json.Unmarshal(r.body, &e)
	if r.status != 503 || e.Error.Type != "overloaded_error" || e.Error.Message != "server busy, please try again.  maximum pending requests exceeded" {
		t.Errorf("unhealthy: %d %s", r.status, r.body)
	}
	if r := do(t, ts, "GET", "/", "", nil); r.status != 200 {
		t.Errorf("health check while unhealthy: %d", r.status)
	}
	s.SetUnhealthy(false)
	if r := do(t, ts, "POST", "/v1/messages", hello, nil); r.status != 200 {
		t.Errorf("healthy again: %d", r.status)
	}

	const d = 100 * time.Millisecond
	s.SetDelay(d)
	for _, path := range []string{"/v1/messages", "/api/embed"} {
		body := hello
		if path == "/api/embed" {
			body = `{"model":"all-minilm","input":"x"}`
		}
		t0 := time.Now()
		if r := do(t, ts, "POST", path, body, nil); r.status != 200 {
			t.Errorf("%s: %d", path, r.status)
		}
		if el := time.Since(t0); el < d {
			t.Errorf("%s answered after %v", path, el)
		}
	}
	s.SetDelay(0)
	s.SetStreamDelay(10 * time.Millisecond)
	t0 := time.Now()
	r = do(t, ts, "POST", "/v1/messages", strings.Replace(hello, `"max_tokens":100`, `"max_tokens":3,"stream":true`, 1), nil)
	if el := time.Since(t0); r.status != 200 || el < 8*10*time.Millisecond { // 8 events
		t.Errorf("slow stream %d after %v", r.status, el)
	}

	// A client that gives up ends the handler.
	s.SetDelay(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/messages", strings.NewReader(hello))
	if resp, err := ts.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("want timeout")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Requests()) < 8 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	recs := s.Requests()
	if last := recs[len(recs)-1]; last.Completed || last.Path != "/v1/messages" {
		t.Errorf("records %+v", recs)
	}
	s.Reset()
	if len(s.Requests()) != 0 {
		t.Error("Reset")
	}
}
