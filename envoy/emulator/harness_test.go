package emulator

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// procStream is the fake processor's view of one ext_proc stream, like the
// fake processor in Envoy's integration tests.
type procStream struct {
	t  *testing.T
	st extprocv3.ExternalProcessor_ProcessServer
}

func (p *procStream) recv() *extprocv3.ProcessingRequest {
	r, err := p.st.Recv()
	if err != nil {
		p.t.Errorf("processor recv: %v", err)
		return &extprocv3.ProcessingRequest{}
	}
	return r
}

func (p *procStream) send(r *extprocv3.ProcessingResponse) {
	if err := p.st.Send(r); err != nil {
		p.t.Errorf("processor send: %v", err)
	}
}

// role is the x-guardian-role initial metadata of the stream.
func (p *procStream) role() string {
	md, _ := metadata.FromIncomingContext(p.st.Context())
	if v := md.Get("x-guardian-role"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// drain waits for the client's half-close (END_STREAM).
func (p *procStream) drain() {
	for {
		if _, err := p.st.Recv(); err != nil {
			return
		}
	}
}

type fakeProc struct {
	extprocv3.UnimplementedExternalProcessorServer
	t       *testing.T
	handler func(*procStream) error
	mu      sync.Mutex
	streams int
}

func (f *fakeProc) Process(st extprocv3.ExternalProcessor_ProcessServer) error {
	f.mu.Lock()
	f.streams++
	f.mu.Unlock()
	return f.handler(&procStream{t: f.t, st: st})
}

func (f *fakeProc) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams
}

type fakeRLS struct {
	rlsv3.UnimplementedRateLimitServiceServer
	mu     sync.Mutex
	reqs   []*rlsv3.RateLimitRequest
	answer func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error)
}

func (f *fakeRLS) ShouldRateLimit(_ context.Context, r *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.mu.Unlock()
	return f.answer(r)
}

func (f *fakeRLS) requests() []*rlsv3.RateLimitRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*rlsv3.RateLimitRequest(nil), f.reqs...)
}

// serveGRPC starts a gRPC server on loopback.
func serveGRPC(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	register(s)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return ln.Addr().String()
}

func startProc(t *testing.T, h func(*procStream) error) (*fakeProc, string) {
	f := &fakeProc{t: t, handler: h}
	return f, serveGRPC(t, func(s *grpc.Server) { extprocv3.RegisterExternalProcessorServer(s, f) })
}

// seen records what an upstream received.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
	body []string
}

func (s *seen) add(r *http.Request, b string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
	s.body = append(s.body, b)
}

func (s *seen) n() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.reqs) }

func (s *seen) last() (*http.Request, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return nil, ""
	}
	return s.reqs[len(s.reqs)-1], s.body[len(s.body)-1]
}

// upstream starts an HTTP upstream that records requests and answers with h.
func upstream(t *testing.T, h http.HandlerFunc) (*seen, string) {
	s := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.add(r, string(b))
		if h == nil {
			w.Header().Set("x-upstream", "yes")
			_, _ = io.WriteString(w, "upstream body")
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return s, strings.TrimPrefix(srv.URL, "http://")
}

// extProcYAML fills testdata/extproc.yaml with extra ExternalProcessor fields.
func extProcYAML(t *testing.T, extra string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/extproc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(extra), "\n") {
		if l != "" {
			lines = append(lines, "              "+l)
		}
	}
	return []byte(strings.Replace(string(b), "__EXTPROC__", strings.Join(lines, "\n"), 1))
}

// start loads and starts an emulator; it is closed at test end.
func start(t *testing.T, yamlBytes []byte, o Options) *Envoy {
	t.Helper()
	e, err := Load(yamlBytes, o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// env is the common ext_proc test set-up: processor, upstreams, emulator.
type env struct {
	e       *Envoy
	proc    *fakeProc
	backend *seen
	other   *seen
}

func newEnv(t *testing.T, extra string, h func(*procStream) error, up http.HandlerFunc) *env {
	t.Helper()
	p, paddr := startProc(t, h)
	b, baddr := upstream(t, up)
	o, oaddr := upstream(t, nil)
	e := start(t, extProcYAML(t, extra), Options{Clusters: map[string]string{"proc": paddr, "backend": baddr, "other": oaddr}})
	return &env{e: e, proc: p, backend: b, other: o}
}

type result struct {
	status int
	header http.Header
	body   string
}

var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}

func do(t *testing.T, e *Envoy, method, path string, body string, hdr map[string]string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+e.Addr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

// waitStat polls a counter (stream-end stats are recorded asynchronously).
func waitStat(t *testing.T, e *Envoy, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if e.Stats()[name] == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("stat %s = %d, want %d", name, e.Stats()[name], want)
}

// Response builders.
func hdrsResp(m *extprocv3.HeaderMutation) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: m}}}}
}

func respHdrsResp(m *extprocv3.HeaderMutation) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
		ResponseHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: m}}}}
}

func reqBodyResp(cr *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
		RequestBody: &extprocv3.BodyResponse{Response: cr}}}
}

func respBodyResp(cr *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
		ResponseBody: &extprocv3.BodyResponse{Response: cr}}}
}

func immediate(code int, body string, m *extprocv3.HeaderMutation) *extprocv3.ProcessingResponse {
	ir := &extprocv3.ImmediateResponse{Body: []byte(body), Headers: m, Details: "denied by test"}
	if code != 0 {
		ir.Status = &typeHTTPStatus{Code: typeStatusCode(code)}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: ir}}
}

func setRaw(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}}
}

func mut(remove []string, set ...*corev3.HeaderValueOption) *extprocv3.HeaderMutation {
	return &extprocv3.HeaderMutation{RemoveHeaders: remove, SetHeaders: set}
}

func headerOf(h *extprocv3.HttpHeaders, k string) (string, bool) {
	for _, e := range h.GetHeaders().GetHeaders() {
		if e.GetKey() == k {
			return string(e.GetRawValue()), true
		}
	}
	return "", false
}
