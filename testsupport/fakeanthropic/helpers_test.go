package fakeanthropic

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/internal/testclock"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a settable clock.
type fakeClock = testclock.Clock

func newClock() *fakeClock { return testclock.New(time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)) }

const (
	keyA1 = "sk-ant-a1"
	keyA2 = "sk-ant-a2"
	keyB  = "sk-ant-b"
	orgA  = "org-aaaa"
	orgB  = "org-bbbb"
)

func twoAccounts(clk *fakeClock, l Limits) Config {
	return Config{
		Now: clk.Now,
		Accounts: []Account{
			{Name: "a", OrgID: orgA, Keys: []string{keyA1, keyA2}, Limits: l},
			{Name: "b", OrgID: orgB, Keys: []string{keyB}, Limits: l},
		},
	}
}

// start runs s behind a real HTTP server.
func start(t *testing.T, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

type call struct {
	method  string // default POST
	path    string // default /v1/messages
	key     string // sent as x-api-key unless bearer
	bearer  bool
	version string // default 2023-06-01; "-" sends none
	headers map[string]string
	body    string
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) errBody(t *testing.T) ErrorBody {
	t.Helper()
	var e ErrorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

func do(t *testing.T, ts *httptest.Server, c call) result {
	t.Helper()
	resp := send(t, ts, c)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

func send(t *testing.T, ts *httptest.Server, c call) *http.Response {
	t.Helper()
	req := newReq(t, ts.URL, c)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

func newReq(t *testing.T, base string, c call) *http.Request {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.path == "" {
		c.path = "/v1/messages"
	}
	req, err := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.key != "" {
		if c.bearer {
			req.Header.Set("Authorization", "Bearer "+c.key)
		} else {
			req.Header.Set("x-api-key", c.key)
		}
	}
	switch c.version {
	case "":
		req.Header.Set("anthropic-version", Version2023)
	case "-":
	default:
		req.Header.Set("anthropic-version", c.version)
	}
	req.Header.Set("content-type", "application/json")
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	return req
}

const helloBody = `{"model":"claude-sonnet-4-6","max_tokens":100,"messages":[{"role":"user","content":"Hello there, world!"}]}`

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	name string
	data json.RawMessage
}

func (e sseEvent) typ(t *testing.T) string {
	t.Helper()
	var v struct{ Type string }
	if err := json.Unmarshal(e.data, &v); err != nil {
		t.Fatalf("event %s data %q: %v", e.name, e.data, err)
	}
	return v.Type
}

// parseSSE reads events until EOF; it returns the events and the read error
// (nil on clean EOF). It checks the exact "event: X\ndata: Y\n\n" framing.
func parseSSE(t *testing.T, r io.Reader) ([]sseEvent, error) {
	t.Helper()
	br := bufio.NewReader(r)
	var evs []sseEvent
	for {
		l1, err := br.ReadString('\n')
		if err == io.EOF && l1 == "" {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		l2, err := br.ReadString('\n')
		if err != nil {
			return evs, err
		}
		l3, err := br.ReadString('\n')
		if err != nil {
			return evs, err
		}
		name, ok1 := strings.CutPrefix(l1, "event: ")
		data, ok2 := strings.CutPrefix(l2, "data: ")
		if !ok1 || !ok2 || l3 != "\n" {
			t.Fatalf("bad SSE framing: %q %q %q", l1, l2, l3)
		}
		evs = append(evs, sseEvent{name: strings.TrimSuffix(name, "\n"), data: json.RawMessage(bytes.TrimSuffix([]byte(data), []byte("\n")))})
	}
}

func names(evs []sseEvent) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.name)
	}
	return strings.Join(s, ",")
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("unmarshal %q: %v", b, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func sortStrings(s []string) { slices.Sort(s) }
