package emulator

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/claude-guardian/claude-guardian/internal/testcert"
)

// anthropicTLS starts a TLS upstream whose certificate is valid for
// api.anthropic.com, trusted by the returned pool.
func anthropicTLS(t *testing.T, h http.HandlerFunc) (*seen, string, *x509.CertPool) {
	t.Helper()
	cert, pool := testcert.New(t, "api.anthropic.com")
	s := &seen{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.add(r, "")
		h(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return s, strings.TrimPrefix(srv.URL, "https://"), pool
}

// guardian is the shipped envoy.yaml with scripted front/upstream processors,
// a fake RLS, a TLS "Anthropic" and a plain "Ollama".
type guardian struct {
	e         *Envoy
	rls       *fakeRLS
	anthropic *seen
	ollama    *seen
	keys      []string
	mu        sync.Mutex
}

type frontScript struct {
	tenant   string         // x-guardian-tenant set on request headers ("" = none)
	backend  string         // x-guardian-backend set on the body response
	metadata map[string]any // dynamic_metadata of the body response
	edit     func(string) string
}

func startGuardian(t *testing.T, fs frontScript, rls func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error), anth http.HandlerFunc) *guardian {
	t.Helper()
	g := &guardian{rls: &fakeRLS{answer: rls}}
	var n atomic.Int32
	_, paddr := startProc(t, func(p *procStream) error {
		if p.role() == "upstream" {
			p.recv()
			key := "key-" + string(rune('0'+n.Add(1)))
			g.mu.Lock()
			g.keys = append(g.keys, key)
			g.mu.Unlock()
			p.send(hdrsResp(mut([]string{"x-guardian-tenant"}, setRaw("x-api-key", key))))
			if _, err := p.st.Recv(); err == nil {
				p.send(respHdrsResp(nil))
			}
			p.drain()
			return nil
		}
		p.recv()
		var set []*corev3HeaderValueOption
		if fs.tenant != "" {
			set = append(set, setRaw("x-guardian-tenant", fs.tenant))
		}
		p.send(hdrsResp(mut([]string{"x-api-key"}, set...)))
		p.recv()
		resp := reqBodyResp(&extprocv3.CommonResponse{HeaderMutation: mut(nil, setRaw("x-guardian-backend", fs.backend)), ClearRouteCache: true})
		if fs.metadata != nil {
			md, err := structpb.NewStruct(fs.metadata)
			if err != nil {
				t.Error(err)
			}
			resp.DynamicMetadata = md
		}
		p.send(resp)
		return continueAll(p)
	})
	rlsAddr := serveGRPC(t, func(s *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(s, g.rls) })
	if anth == nil {
		anth = func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"type":"message"}`)) }
	}
	var aaddr string
	var pool *x509.CertPool
	g.anthropic, aaddr, pool = anthropicTLS(t, anth)
	var oaddr string
	g.ollama, oaddr = upstream(t, nil)
	b, err := os.ReadFile("../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if fs.edit != nil {
		b = []byte(fs.edit(string(b)))
	}
	g.e = start(t, b, Options{RootCAs: pool, Clusters: map[string]string{
		"guardian_extproc": paddr, "guardian_ratelimit": rlsAddr, "anthropic": aaddr, "ollama": oaddr}})
	return g
}

func okRLS(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}, nil
}

const messages = `{"model":"claude-x","max_tokens":10,"messages":[]}`

func TestLoad_ShippedEnvoyYAML(t *testing.T) {
	b, err := os.ReadFile("../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(b, Options{}); err != nil {
		t.Fatalf("envoy/envoy.yaml: %v", err)
	}
}

func TestLoad_UnimplementedFieldIsAnError(t *testing.T) {
	b, err := os.ReadFile("../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "          request_timeout: 0s\n", "          request_timeout: 0s\n          stream_idle_timeout: 10s\n", 1)
	_, err = Load([]byte(y), Options{})
	if err == nil || !strings.Contains(err.Error(), "stream_idle_timeout") {
		t.Fatalf("err = %v, want a load error naming stream_idle_timeout", err)
	}
	y = strings.Replace(string(b), "request_body_mode: BUFFERED", "request_body_mode: FULL_DUPLEX_STREAMED", 1)
	if _, err = Load([]byte(y), Options{}); err == nil {
		t.Fatal("FULL_DUPLEX_STREAMED accepted")
	}
	if _, err = Load([]byte("static_resources: {bogus: 1}"), Options{}); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestLoad_UnknownRouteClusterIsAnError(t *testing.T) {
	b, err := os.ReadFile("../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "cluster: ollama\n", "cluster: nope\n", 1)
	if _, err := Load([]byte(y), Options{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v (static routes validate clusters)", err)
	}
}

func TestEnvoyYAML_RequestThroughAllFilters(t *testing.T) {
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude",
		metadata: map[string]any{"claude-guardian": map[string]any{"input_tokens_estimate": 42}}}, okRLS, nil)
	r := do(t, g.e, "POST", "/v1/messages", messages, map[string]string{"x-api-key": "gateway-key"})
	if r.status != 200 || r.body != `{"type":"message"}` {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	req, _ := g.anthropic.last()
	if req.Host != "api.anthropic.com" || req.Header.Get("x-api-key") != "key-1" || req.Header.Get("x-envoy-attempt-count") != "1" ||
		req.Header.Get("x-guardian-tenant") != "" || req.TLS == nil {
		t.Fatalf("upstream request host %q headers %v tls %v", req.Host, req.Header, req.TLS != nil)
	}
	reqs := g.rls.requests()
	if len(reqs) != 1 || reqs[0].GetDomain() != "claude-guardian" || len(reqs[0].GetDescriptors()) != 3 {
		t.Fatalf("RLS requests %v", reqs)
	}
	d0, d1, d2 := reqs[0].GetDescriptors()[0], reqs[0].GetDescriptors()[1], reqs[0].GetDescriptors()[2]
	if d0.GetEntries()[0].GetValue() != "acme" || d0.GetEntries()[1].GetValue() != "requests" || d0.GetHitsAddend() != nil {
		t.Errorf("descriptor 0 %v", d0)
	}
	if d1.GetEntries()[1].GetValue() != "requests_per_day" || d1.GetHitsAddend() != nil {
		t.Errorf("descriptor 1 %v", d1)
	}
	if d2.GetEntries()[1].GetValue() != "input_tokens" || d2.GetHitsAddend().GetValue() != 42 {
		t.Errorf("descriptor 2 %v", d2)
	}
	waitStat(t, g.e, "cluster.guardian_ratelimit.ratelimit.ok", 1)
	waitStat(t, g.e, "http.claude_gateway.ext_proc.streams_started", 1)
	waitStat(t, g.e, "cluster.anthropic.ext_proc.streams_started", 1)
}

func TestExtProc_SendAndReceiveDynamicMetadata(t *testing.T) {
	// Only namespaces in receiving_namespaces.untyped are kept: the estimate
	// in another namespace is dropped, so the hits_addend descriptor is too.
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude",
		metadata: map[string]any{"not-received": map[string]any{"input_tokens_estimate": 42}}}, okRLS, nil)
	do(t, g.e, "POST", "/v1/messages", messages, nil)
	reqs := g.rls.requests()
	if len(reqs) != 1 || len(reqs[0].GetDescriptors()) != 2 {
		t.Fatalf("RLS requests %v", reqs)
	}
}

func TestEnvoyYAML_OllamaRouteAfterClearRouteCache(t *testing.T) {
	g := startGuardian(t, frontScript{tenant: "acme", backend: "ollama"}, okRLS, nil)
	if r := do(t, g.e, "POST", "/v1/messages", messages, nil); r.status != 200 || r.body != "upstream body" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if g.ollama.n() != 1 || g.anthropic.n() != 0 {
		t.Fatalf("ollama %d anthropic %d", g.ollama.n(), g.anthropic.n())
	}
}

func TestRateLimit_OverLimitLocalReply(t *testing.T) {
	over := func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT, RawBody: []byte("slow down"),
			ResponseHeadersToAdd: []*corev3HeaderValue{{Key: "retry-after", Value: "7"}},
			Statuses: []*rlsv3.RateLimitResponse_DescriptorStatus{
				{Code: rlsv3.RateLimitResponse_OVER_LIMIT, LimitRemaining: 0, DurationUntilReset: durationpb.New(7 * time.Second),
					CurrentLimit: &rlsv3.RateLimitResponse_RateLimit{Name: "rpm", RequestsPerUnit: 10, Unit: rlsv3.RateLimitResponse_RateLimit_MINUTE}},
				{Code: rlsv3.RateLimitResponse_OK, LimitRemaining: 900,
					CurrentLimit: &rlsv3.RateLimitResponse_RateLimit{RequestsPerUnit: 1000, Unit: rlsv3.RateLimitResponse_RateLimit_HOUR}},
			}}, nil
	}
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude",
		metadata: map[string]any{"claude-guardian": map[string]any{"input_tokens_estimate": 5}}}, over, nil)
	r := do(t, g.e, "POST", "/v1/messages", messages, nil)
	if r.status != 429 || r.body != "slow down" || r.header.Get("x-envoy-ratelimited") != "true" || r.header.Get("retry-after") != "7" {
		t.Fatalf("got %d %q %v", r.status, r.body, r.header)
	}
	if got := r.header.Get("x-ratelimit-limit"); got != `10, 10;w=60;name="rpm", 1000;w=3600` {
		t.Errorf("x-ratelimit-limit %q", got)
	}
	if r.header.Get("x-ratelimit-remaining") != "0" || r.header.Get("x-ratelimit-reset") != "7" {
		t.Errorf("headers %v", r.header)
	}
	if g.anthropic.n() != 0 {
		t.Error("upstream called")
	}
	waitStat(t, g.e, "cluster.guardian_ratelimit.ratelimit.over_limit", 1)
}

func TestRateLimit_OkAddsRequestAndResponseHeaders(t *testing.T) {
	ok := func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK,
			RequestHeadersToAdd:  []*corev3HeaderValue{{Key: "x-rl-upstream", Value: "1"}},
			ResponseHeadersToAdd: []*corev3HeaderValue{{Key: "x-rl-client", Value: "2"}}}, nil
	}
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude"}, ok, nil)
	r := do(t, g.e, "POST", "/v1/messages", messages, nil)
	if r.status != 200 || r.header.Get("x-rl-client") != "2" {
		t.Fatalf("got %d %v", r.status, r.header)
	}
	if req, _ := g.anthropic.last(); req.Header.Get("x-rl-upstream") != "1" {
		t.Fatalf("upstream headers %v", req.Header)
	}
}

func TestRateLimit_ErrorFailureModeAllow(t *testing.T) {
	fail := func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) { return nil, errors.New("rls down") }
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude"}, fail, nil)
	if r := do(t, g.e, "POST", "/v1/messages", messages, nil); r.status != 200 {
		t.Fatalf("status %d: failure_mode_deny false lets the request through", r.status)
	}
	waitStat(t, g.e, "cluster.guardian_ratelimit.ratelimit.error", 1)
	waitStat(t, g.e, "cluster.guardian_ratelimit.ratelimit.failure_mode_allowed", 1)
}

func TestRateLimit_TimeoutIsAnError(t *testing.T) {
	slow := func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		time.Sleep(400 * time.Millisecond) // the filter's timeout is 0.1 s
		return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT}, nil
	}
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude"}, slow, nil)
	if r := do(t, g.e, "POST", "/v1/messages", messages, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	waitStat(t, g.e, "cluster.guardian_ratelimit.ratelimit.error", 1)
}

func TestRateLimit_NoDescriptorsNoCall(t *testing.T) {
	g := startGuardian(t, frontScript{backend: "claude"}, okRLS, nil)
	if r := do(t, g.e, "POST", "/v1/messages", messages, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if n := len(g.rls.requests()); n != 0 {
		t.Fatalf("%d RLS calls without x-guardian-tenant", n)
	}
}

func TestEnvoyYAML_RetryOn429GetsAFreshKey(t *testing.T) {
	var calls atomic.Int32
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude"}, okRLS, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("retry-after", "1")
			w.WriteHeader(429)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	t0 := time.Now()
	r := do(t, g.e, "POST", "/v1/messages", messages, nil)
	if r.status != 200 || r.body != "ok" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if time.Since(t0) < time.Second {
		t.Error("retry-after not honoured")
	}
	req, _ := g.anthropic.last()
	if g.anthropic.n() != 2 || req.Header.Get("x-api-key") != "key-2" || req.Header.Get("x-envoy-attempt-count") != "2" {
		t.Fatalf("attempts %d last key %q count %q", g.anthropic.n(), req.Header.Get("x-api-key"), req.Header.Get("x-envoy-attempt-count"))
	}
	waitStat(t, g.e, "cluster.anthropic.upstream_rq_retry", 1)
}

// streamDoneEdit adds an apply_on_stream_done entry whose first action is
// tenantAction.
func streamDoneEdit(tenantAction string) func(string) string {
	return func(y string) string {
		return strings.Replace(y, "              routes:\n", `                  - actions:
                    - `+tenantAction+`
                    - generic_key: {descriptor_key: axis, descriptor_value: correction}
                    hits_addend: {format: "%DYNAMIC_METADATA(claude-guardian:correction)%", is_negative_hits: true}
                    apply_on_stream_done: true
              routes:
`, 1)
	}
}

func waitRLS(g *guardian, n int) []*rlsv3.RateLimitRequest {
	deadline := time.Now().Add(3 * time.Second)
	for len(g.rls.requests()) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return g.rls.requests()
}

func TestRateLimit_ApplyOnStreamDone(t *testing.T) {
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude",
		edit:     streamDoneEdit("metadata: {descriptor_key: tenant, metadata_key: {key: claude-guardian, path: [{key: tenant}]}}"),
		metadata: map[string]any{"claude-guardian": map[string]any{"input_tokens_estimate": 5, "correction": 3, "tenant": "acme"}}}, okRLS, nil)
	if r := do(t, g.e, "POST", "/v1/messages", messages, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	reqs := waitRLS(g, 2)
	// The shipped stream-done corrections are dropped: their metadata
	// (input_tokens_refund/extra) is absent here.
	if len(reqs) != 2 || len(reqs[0].GetDescriptors()) != 3 || len(reqs[1].GetDescriptors()) != 1 {
		t.Fatalf("RLS requests %v", reqs)
	}
	d := reqs[1].GetDescriptors()[0]
	if d.GetEntries()[0].GetValue() != "acme" || d.GetEntries()[1].GetValue() != "correction" ||
		d.GetHitsAddend().GetValue() != 3 || !d.GetIsNegativeHits() {
		t.Fatalf("stream-done descriptor %v", d)
	}
}

// TestEnvoyYAML_StreamDoneCorrections: the shipped envoy.yaml sends the
// front processor's end-of-stream correction of the input-token estimate:
// a refund (negative hits) and an extra charge (guardian_adjust), keyed on
// the tenant from dynamic metadata.
func TestEnvoyYAML_StreamDoneCorrections(t *testing.T) {
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude",
		metadata: map[string]any{"claude-guardian": map[string]any{"input_tokens_estimate": "50", "tenant": "acme",
			"input_tokens_refund": "30", "input_tokens_extra": "0"}}}, okRLS, nil)
	if r := do(t, g.e, "POST", "/v1/messages", messages, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	reqs := waitRLS(g, 2)
	if len(reqs) != 2 || len(reqs[1].GetDescriptors()) != 2 {
		t.Fatalf("RLS requests %v", reqs)
	}
	refund, extra := reqs[1].GetDescriptors()[0], reqs[1].GetDescriptors()[1]
	if refund.GetEntries()[0].GetValue() != "acme" || refund.GetEntries()[1].GetValue() != "input_tokens" ||
		refund.GetHitsAddend().GetValue() != 30 || !refund.GetIsNegativeHits() {
		t.Errorf("refund descriptor %v", refund)
	}
	if len(extra.GetEntries()) != 3 || extra.GetEntries()[2].GetKey() != "guardian_adjust" || extra.GetHitsAddend().GetValue() != 0 || extra.GetIsNegativeHits() {
		t.Errorf("extra descriptor %v", extra)
	}
	waitStreamDone(t, g.e, 1, 0)
}

// A stream-done call the RLS fails is counted as failed, and the response
// the client already has is unaffected.
func TestRateLimit_ApplyOnStreamDoneFailureCounted(t *testing.T) {
	failCorrections := func(r *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		if len(r.GetDescriptors()) == 1 {
			return nil, errors.New("rls down")
		}
		return okRLS(r)
	}
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude",
		edit:     streamDoneEdit("metadata: {descriptor_key: tenant, metadata_key: {key: claude-guardian, path: [{key: tenant}]}}"),
		metadata: map[string]any{"claude-guardian": map[string]any{"input_tokens_estimate": 5, "correction": 3, "tenant": "acme"}}}, failCorrections, nil)
	if r := do(t, g.e, "POST", "/v1/messages", messages, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	waitStreamDone(t, g.e, 0, 1)
}

// waitStreamDone waits until the emulator has finished the given numbers of
// stream-done calls, answered and failed.
func waitStreamDone(t *testing.T, e *Envoy, answered, failed uint64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		a, f := e.StreamDoneCalls()
		if a == answered && f == failed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream-done calls: %d answered, %d failed; want %d, %d", a, f, answered, failed)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// In Envoy the upstream filters mutate the same request header map the
// ratelimit filter re-reads in onDestroy: the upstream processor strips
// x-guardian-tenant, so a stream-done descriptor keyed on that header is
// dropped (and no call is made).
func TestRateLimit_ApplyOnStreamDoneSeesUpstreamFilterHeaderMutations(t *testing.T) {
	g := startGuardian(t, frontScript{tenant: "acme", backend: "claude",
		edit:     streamDoneEdit("request_headers: {header_name: x-guardian-tenant, descriptor_key: tenant}"),
		metadata: map[string]any{"claude-guardian": map[string]any{"input_tokens_estimate": 5, "correction": 3}}}, okRLS, nil)
	if r := do(t, g.e, "POST", "/v1/messages", messages, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	time.Sleep(200 * time.Millisecond)
	if reqs := waitRLS(g, 1); len(reqs) != 1 {
		t.Fatalf("RLS requests %v, want only the request-path call", reqs)
	}
	waitStreamDone(t, g.e, 0, 0)
}

// The shipped anthropic cluster allows many retries outstanding: at
// Envoy's default of 3, a burst of 429s would reach callers.
func TestEnvoyYAML_AnthropicRetryBudget(t *testing.T) {
	b, err := os.ReadFile("../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Load(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.cfg.clusters["anthropic"].maxRetries; n < 1000 {
		t.Errorf("anthropic cluster max_retries = %d", n)
	}
}
