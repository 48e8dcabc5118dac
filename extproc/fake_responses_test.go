package extproc

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/claude-guardian/claude-guardian/testsupport/fakeanthropic"
	"github.com/claude-guardian/claude-guardian/testsupport/fakeollama"
)

// fetch calls a fake and returns the response's status, content type and
// body bytes as Envoy would pass them on.
func fetch(t *testing.T, h http.Handler, path, body string) (int, string, []byte) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	req.Header.Set("x-api-key", fakeanthropic.DefaultKey)
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("content-type"), b
}

// TestFrontReadsFakeResponses feeds the front processor the exact bytes the
// fakes of Anthropic and Ollama produce, streamed and not, in small chunks,
// and checks the usage it counts against what the fakes reported.
func TestFrontReadsFakeResponses(t *testing.T) {
	fa := fakeanthropic.New(fakeanthropic.Config{PingEvery: 2, MessageDeltas: 3})
	fo := fakeollama.New(fakeollama.Config{})
	stream := strings.Replace(helloBody, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)
	ollamaBody := strings.Replace(helloBody, "claude-sonnet-4-6", "llama3.1:8b-instruct-q4_K_M", 1)
	ollamaStream := strings.Replace(stream, "claude-sonnet-4-6", "llama3.1:8b-instruct-q4_K_M", 1)
	tests := []struct {
		name    string
		h       http.Handler
		body    string
		usage   func() (int, int)
		account string
	}{
		{"anthropic json", fa, helloBody, func() (int, int) { r := fa.Requests(); l := r[len(r)-1]; return l.InputTokens, l.OutputTokens }, "org-a"},
		{"anthropic sse", fa, stream, func() (int, int) { r := fa.Requests(); l := r[len(r)-1]; return l.InputTokens, l.OutputTokens }, "org-b"},
		{"ollama json", fo, ollamaBody, nil, "ollama"},
		{"ollama sse", fo, ollamaStream, nil, "ollama"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, ctype, body := fetch(t, tt.h, "/v1/messages", tt.body)
			if status != 200 {
				t.Fatalf("fake answered %d: %s", status, body)
			}
			var wantIn, wantOut int
			if tt.usage != nil {
				wantIn, wantOut = tt.usage()
			} else { // Ollama reports usage only in its body: read it independently.
				wantIn, wantOut = ollamaUsage(t, body)
			}
			h := newHarness(t, harnessOpts{})
			s := h.open(t, RoleFront)
			sendRequest(t, s, tt.body)
			s.roundTrip(respHeaders(false, ":status", "200", "content-type", ctype, HeaderAccount, tt.account))
			for chunk := range slices.Chunk(body, 13) {
				s.roundTrip(respBody(string(chunk), false))
			}
			s.roundTrip(respBody("", true))
			s.close()
			model := "claude-sonnet-4-6"
			if tt.h == fo {
				model = "llama3.1:8b-instruct-q4_K_M"
			}
			gotIn, gotOut := tokens(h, "shop", model, tt.account, "input"), tokens(h, "shop", model, tt.account, "output")
			if int(gotIn) != wantIn || int(gotOut) != wantOut || wantOut == 0 {
				t.Errorf("counted %v in / %v out; the fake reported %d / %d", gotIn, gotOut, wantIn, wantOut)
			}
		})
	}
}

var usageRE = regexp.MustCompile(`^"usage":\s*\{\s*"input_tokens":\s*(\d+),\s*"output_tokens":\s*(\d+)\s*\}`)

// ollamaUsage reads the final usage of an Ollama response (JSON or SSE) by
// plain string search, independent of the anthropic package.
func ollamaUsage(t *testing.T, body []byte) (int, int) {
	t.Helper()
	s := string(body)
	i := strings.LastIndex(s, `"usage":`)
	if i < 0 {
		t.Fatalf("no usage in %s", s)
	}
	m := usageRE.FindStringSubmatch(s[i:])
	if m == nil {
		t.Fatalf("usage not in the expected shape: %.200s", s[i:])
	}
	in, _ := strconv.Atoi(m[1])
	out, _ := strconv.Atoi(m[2])
	return in, out
}
