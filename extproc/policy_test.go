package extproc

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/policy"
	"github.com/claude-guardian/claude-guardian/testsupport/fakeanthropic"
	"github.com/claude-guardian/claude-guardian/testsupport/fakeollama"
)

const ollamaModel = fakeollama.DefaultChatModel

var (
	bundledOnce sync.Once
	bundledV    *policy.Version
	bundledErr  error
)

func bundledPolicy(t testing.TB) *policy.Version {
	t.Helper()
	bundledOnce.Do(func() { bundledV, bundledErr = policy.Compile(context.Background(), policy.Bundled(), "bundled") })
	if bundledErr != nil {
		t.Fatal(bundledErr)
	}
	return bundledV
}

// stateStub is a StateSource a test sets; Ollama fields come from the
// stub unless a health source is given.
type stateStub struct {
	mu     sync.Mutex
	s      policy.State
	health policy.HealthSource
}

func (s *stateStub) PolicyState() policy.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.s
	if s.health != nil {
		st.Ollama.Healthy = s.health.Healthy()
	}
	return st
}

func (s *stateStub) set(f func(*policy.State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.s)
}

func healthyClaude() policy.State {
	s := policy.State{Ollama: policy.Ollama{Configured: true, Healthy: true, Model: ollamaModel}}
	for i := range s.Classes {
		s.Classes[i].Headroom = 0.9
	}
	return s
}

// lowHeadroom leaves every class with 2 % of its capacity.
func lowHeadroom(s *policy.State) {
	for i := range s.Classes {
		s.Classes[i].Headroom = 0.02
	}
}

type policyEnv struct {
	envoy   *miniEnvoy
	h       *harness
	state   *stateStub
	claude  *fakeanthropic.Server
	ollama  *fakeollama.Server
	engine  *policy.Engine
	metrics *policy.Metrics
	reg     *prometheus.Registry
	reports *failureCounter
}

// failureCounter counts Ollama failures the front reports and passes them
// on to target, when set.
type failureCounter struct {
	mu     sync.Mutex
	n      int
	target interface{ ReportFailure() }
}

func (f *failureCounter) ReportFailure() {
	f.mu.Lock()
	f.n++
	t := f.target
	f.mu.Unlock()
	if t != nil {
		t.ReportFailure()
	}
}

// newPolicyEnv serves the processors with the routing policy v, a fake
// Anthropic holding the pool's keys, and a fake Ollama. Tenants: shop
// allows model rewriting, search does not.
func newPolicyEnv(t *testing.T, v *policy.Version) *policyEnv {
	t.Helper()
	e := &policyEnv{state: &stateStub{s: healthyClaude()}, reports: &failureCounter{}}
	e.claude = fakeanthropic.New(fakeanthropic.Config{Accounts: []fakeanthropic.Account{
		{Name: "org-a", Keys: []string{poolKeyA1}, Limits: fakeanthropic.Limits{RPM: 1000, ITPM: 1e6, OTPM: 1e6}},
		{Name: "org-b", Keys: []string{poolKeyB1}, Limits: fakeanthropic.Limits{RPM: 1000, ITPM: 1e6, OTPM: 1e6}},
	}})
	e.ollama = fakeollama.New(fakeollama.Config{})
	claudeSrv := httptest.NewServer(e.claude)
	ollamaSrv := httptest.NewServer(e.ollama)
	t.Cleanup(claudeSrv.Close)
	t.Cleanup(ollamaSrv.Close)
	e.reg = prometheus.NewRegistry()
	e.metrics = policy.NewMetrics(e.reg)
	e.engine = policy.NewEngine(v, policy.Options{Metrics: e.metrics})
	e.h = newHarness(t, harnessOpts{
		clients: []config.Client{{Name: "shop", Key: shopKey, AllowModelRewrite: true, Priority: "high"}, {Name: "search", Key: searchKey}},
		policy: func(*harness) *FrontPolicy {
			return &FrontPolicy{Engine: e.engine, State: e.state, Ollama: e.reports}
		},
	})
	e.envoy = &miniEnvoy{h: e.h, claudeURL: claudeSrv.URL, ollamaURL: ollamaSrv.URL, client: claudeSrv.Client()}
	return e
}

func messagesBody(model, text string, stream bool) string {
	b, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 64, "stream": stream,
		"messages": []any{map[string]any{"role": "user", "content": text}}})
	return string(b)
}

// responseModel reads the model of a JSON reply or of an SSE stream's
// message_start.
func responseModel(t *testing.T, body []byte) string {
	t.Helper()
	s := string(body)
	if i := strings.Index(s, `"model":"`); i >= 0 {
		s = s[i+len(`"model":"`):]
		return s[:strings.IndexByte(s, '"')]
	}
	t.Fatalf("no model in response: %.300s", body)
	return ""
}

func TestPolicyRewritesModel(t *testing.T) {
	e := newPolicyEnv(t, bundledPolicy(t))
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "sse"}[stream], func(t *testing.T) {
			x := e.envoy.do(t, messagesBody("claude-sonnet-4-6", "Hello, how are you?", stream), "x-api-key", shopKey)
			if x.status != 200 || x.upstream != BackendClaude {
				t.Fatalf("status %d upstream %q: %s", x.status, x.upstream, x.body)
			}
			if m := responseModel(t, x.sentBody); m != "claude-haiku-4-5" {
				t.Errorf("model sent = %q, want claude-haiku-4-5", m)
			}
			if got := x.header[HeaderRoute]; got != "claude; model=claude-haiku-4-5; reason=short-simple" {
				t.Errorf("%s = %q", HeaderRoute, got)
			}
			if got := x.header[HeaderOriginalModel]; got != "claude-sonnet-4-6" {
				t.Errorf("%s = %q", HeaderOriginalModel, got)
			}
			if m := responseModel(t, x.body); m != "claude-haiku-4-5" {
				t.Errorf("response model = %q", m)
			}
			if x.sentHeader["x-api-key"] != poolKeyA1 {
				t.Errorf("pool key not set on the Claude request")
			}
		})
	}
	// The rest of the body is untouched.
	x := e.envoy.do(t, `{"max_tokens": 64, "model" : "claude-sonnet-4-6", "messages":[{"role":"user","content":"model: \"x\""}], "metadata": {"model": "kept"}}`, "x-api-key", shopKey)
	want := `{"max_tokens": 64, "model" : "claude-haiku-4-5", "messages":[{"role":"user","content":"model: \"x\""}], "metadata": {"model": "kept"}}`
	if string(x.sentBody) != want || x.status != 200 {
		t.Errorf("rewritten body\n got %s\nwant %s (status %d)", x.sentBody, want, x.status)
	}
}

func TestPolicyKeepsModelWithoutConsent(t *testing.T) {
	e := newPolicyEnv(t, bundledPolicy(t))
	body := messagesBody("claude-sonnet-4-6", "Hello, how are you?", false)
	x := e.envoy.do(t, body, "x-api-key", searchKey)
	if x.status != 200 || string(x.sentBody) != body {
		t.Fatalf("status %d, body sent %s", x.status, x.sentBody)
	}
	if got := x.header[HeaderRoute]; got != "claude; model=claude-sonnet-4-6; reason=as-requested" {
		t.Errorf("%s = %q", HeaderRoute, got)
	}
	if _, ok := x.header[HeaderOriginalModel]; ok {
		t.Error("original model reported although it did not change")
	}
}

func TestPolicyDegradesToOllama(t *testing.T) {
	e := newPolicyEnv(t, bundledPolicy(t))
	e.state.set(lowHeadroom)
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "sse"}[stream], func(t *testing.T) {
			x := e.envoy.do(t, messagesBody("claude-sonnet-4-6", "Bonjour, comment allez-vous ?", stream),
				"authorization", "Bearer "+searchKey, "x-guardian-task", "Translate")
			if x.status != 200 || x.upstream != BackendOllama {
				t.Fatalf("status %d upstream %q: %s", x.status, x.upstream, x.body)
			}
			if m := responseModel(t, x.sentBody); m != ollamaModel {
				t.Errorf("model sent to Ollama = %q", m)
			}
			for _, h := range []string{"x-api-key", "authorization", HeaderTask} {
				if _, ok := x.sentHeader[h]; ok {
					t.Errorf("%s reached Ollama", h)
				}
			}
			if got := x.header[HeaderRoute]; got != "ollama; model="+ollamaModel+"; reason=degraded-low-headroom" {
				t.Errorf("%s = %q", HeaderRoute, got)
			}
			if x.header[HeaderOriginalModel] != "claude-sonnet-4-6" {
				t.Errorf("original model = %q", x.header[HeaderOriginalModel])
			}
			if stream && strings.Contains(string(x.body), "event: ping") {
				t.Error("Ollama streams have no ping (the fake is wrong)")
			}
		})
	}
	eventually(t, "Ollama's usage counted", func() bool {
		return testutil.ToFloat64(e.h.metrics.tokens.WithLabelValues("search", ollamaModel, "ollama", "output")) > 0
	})
	if n := e.decisions(t, "ollama", ollamaModel, "degraded-low-headroom"); n != 2 {
		t.Errorf("ollama decisions = %v, want 2", n)
	}
	if n := len(e.claude.Requests()); n != 0 {
		t.Errorf("Claude got %d requests", n)
	}
}

func TestPolicyComplexWorkQueuesForClaude(t *testing.T) {
	e := newPolicyEnv(t, bundledPolicy(t))
	e.state.set(lowHeadroom)
	x := e.envoy.do(t, messagesBody("claude-sonnet-4-6", "Prove step by step that the scheduler is fair.", false), "x-api-key", searchKey)
	if x.status != 200 || x.upstream != BackendClaude {
		t.Fatalf("status %d upstream %q", x.status, x.upstream)
	}
	if got := x.header[HeaderRoute]; got != "claude; model=claude-sonnet-4-6; reason=queued-low-headroom" {
		t.Errorf("%s = %q", HeaderRoute, got)
	}
}

func TestPolicyRejectsWhenQueueIsFull(t *testing.T) {
	e := newPolicyEnv(t, bundledPolicy(t))
	e.state.set(func(s *policy.State) { lowHeadroom(s); s.QueueDepth = 1500 })
	x := e.envoy.do(t, messagesBody("claude-sonnet-4-6", "Explain step by step.", true), "x-api-key", searchKey)
	if x.status != 429 || x.upstream != "" {
		t.Fatalf("status %d upstream %q", x.status, x.upstream)
	}
	if x.immediateErr.Error.Type != "rate_limit_error" || !strings.Contains(x.immediateErr.Error.Message, "1500 requests are already waiting") {
		t.Errorf("error = %+v", x.immediateErr.Error)
	}
	if got := x.header[HeaderRoute]; got != "claude; model=claude-sonnet-4-6; reason=queue-full" {
		t.Errorf("%s = %q", HeaderRoute, got)
	}
	eventually(t, "rejection counted", func() bool {
		return testutil.ToFloat64(e.h.metrics.requests.WithLabelValues("search", "messages", OutcomeRejected)) == 1
	})
}

// TestPolicyOllamaFailureIsSeen: Ollama answers 503; the front reports it,
// the health source turns unhealthy, and the next simple request queues
// for Claude instead.
func TestPolicyOllamaFailureIsSeen(t *testing.T) {
	e := newPolicyEnv(t, bundledPolicy(t))
	health := policy.NewOllamaHealth(e.envoy.ollamaURL, time.Hour, nil)
	if err := health.Check(context.Background()); err != nil || !health.Healthy() {
		t.Fatalf("fake Ollama not healthy: %v", err)
	}
	e.state.set(lowHeadroom)
	e.state.mu.Lock()
	e.state.health = health
	e.state.mu.Unlock()
	e.reports.mu.Lock()
	e.reports.target = health
	e.reports.mu.Unlock()
	e.ollama.SetUnhealthy(true)
	body := messagesBody("claude-haiku-4-5", "Translate into French: the parcel is late.", false)
	x := e.envoy.do(t, body, "x-api-key", searchKey)
	if x.status != 503 || x.upstream != BackendOllama {
		t.Fatalf("status %d upstream %q: %s", x.status, x.upstream, x.body)
	}
	if health.Healthy() {
		t.Fatal("a 503 from Ollama must mark it unhealthy")
	}
	x = e.envoy.do(t, body, "x-api-key", searchKey)
	if x.status != 200 || x.upstream != BackendClaude || x.header[HeaderRoute] != "claude; model=claude-haiku-4-5; reason=queued-low-headroom" {
		t.Fatalf("status %d upstream %q route %q", x.status, x.upstream, x.header[HeaderRoute])
	}
}

func TestPolicyCallerCannotChooseBackend(t *testing.T) {
	e := newPolicyEnv(t, bundledPolicy(t))
	x := e.envoy.do(t, messagesBody("claude-sonnet-4-6", "Translate: hi", false), "x-api-key", searchKey,
		"x-guardian-backend", "ollama", "x-guardian-tenant", "shop", "x-guardian-priority", "high", "x-guardian-task", "translate")
	// Spoofing shop would have let the policy rewrite the model to haiku.
	if x.upstream != BackendClaude || x.header[HeaderRoute] != "claude; model=claude-sonnet-4-6; reason=as-requested" {
		t.Fatalf("upstream %q route %q", x.upstream, x.header[HeaderRoute])
	}
	for k := range x.sentHeader {
		if strings.HasPrefix(k, InternalPrefix) && k != HeaderRequestID { // the id is kept for retries
			t.Errorf("%s reached Anthropic", k)
		}
	}
}

func TestPolicyFailureFallsBackToClaude(t *testing.T) {
	v, err := policy.Compile(context.Background(), fstest.MapFS{"p.rego": {Data: []byte(`package guardian.route
decision := {"backend": "claude", "model": "claude-haiku-4-5", "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": "x"} if input.request.last_user_head != "boom"
`)}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	e := newPolicyEnv(t, v)
	body := messagesBody("claude-sonnet-4-6", "boom", false)
	x := e.envoy.do(t, body, "x-api-key", shopKey)
	if x.status != 200 || string(x.sentBody) != body || x.header[HeaderRoute] != "claude; model=claude-sonnet-4-6; reason=policy-error" {
		t.Fatalf("status %d route %q body %s", x.status, x.header[HeaderRoute], x.sentBody)
	}
}

func TestReplaceModel(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{`{"model":"a","x":1}`, `{"model":"b\"c","x":1}`, ""},
		{` { "x" : [1, {"model": "n"}], "model":"a" } `, ` { "x" : [1, {"model": "n"}], "model":"b\"c" } `, ""},
		{`{"m\"odel":"a","model":"z"}`, `{"m\"odel":"a","model":"b\"c"}`, ""},
		{`{"x":1}`, "", "no model member"},
		{`{"model":5}`, "", "model is not a string"},
		{`[1]`, "", "not a JSON object"},
	}
	for _, tt := range tests {
		got, err := replaceModel([]byte(tt.in), `b"c`)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: got %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

// decisions reads guardian_policy_decisions_total{backend,model,reason}.
func (e *policyEnv) decisions(t *testing.T, backend, model, reason string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "guardian_policy_decisions_total" {
			continue
		}
		for _, m := range mf.Metric {
			l := map[string]string{}
			for _, lp := range m.Label {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["backend"] == backend && l["model"] == model && l["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestRatelimitFilter429IsNotClaudes: the ratelimit filter's own 429 (a
// tenant over its budget, x-envoy-ratelimited) says nothing about Claude:
// it must not feed the upstream rates the policy degrades on, while
// Anthropic's own 429s do.
func TestRatelimitFilter429IsNotClaudes(t *testing.T) {
	rates := &policy.UpstreamRates{}
	h := newHarness(t, harnessOpts{policy: func(*harness) *FrontPolicy {
		return &FrontPolicy{Engine: policy.NewEngine(bundledPolicy(t), policy.Options{}), State: &stateStub{s: healthyClaude()}, Rates: rates}
	}})
	answer := func(kv ...string) {
		s := h.open(t, RoleFront)
		sendRequest(t, s, helloBody)
		s.roundTrip(respHeaders(true, kv...))
		s.close()
	}
	for range 6 {
		answer(":status", "429", "x-envoy-ratelimited", "true", "content-type", "application/json")
	}
	if _, limited := rates.Rates("sonnet", time.Now()); limited != 0 {
		t.Fatalf("the ratelimit filter's 429s counted as Claude's: rate-limited share %v", limited)
	}
	for range 6 {
		answer(":status", "429", "content-type", "application/json", "retry-after", "3")
	}
	if _, limited := rates.Rates("sonnet", time.Now()); limited != 1 {
		t.Fatalf("Anthropic's 429s: rate-limited share %v, want 1", limited)
	}
}
