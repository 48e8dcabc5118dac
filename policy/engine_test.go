package policy

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestBundledRegoTests runs every bundled Rego test through OPA's tester,
// one subtest each, as `opa test policy/rego` does.
func TestBundledRegoTests(t *testing.T) {
	results, err := RunTests(context.Background(), Bundled())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 30 {
		t.Fatalf("only %d Rego tests found", len(results))
	}
	for _, r := range results {
		t.Run(r.Name, func(t *testing.T) {
			if !r.Passed {
				t.Fatal(r.Err)
			}
		})
	}
}

func compileBundled(t testing.TB) *Version {
	t.Helper()
	v, err := Compile(context.Background(), Bundled(), "bundled")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDecideTypedInputs drives the bundled policy through the typed input,
// so the Go input builder and the Rego rules agree on every field.
func TestDecideTypedInputs(t *testing.T) {
	v := compileBundled(t)
	reg := prometheus.NewRegistry()
	e := NewEngine(v, Options{Metrics: NewMetrics(reg)})
	rewrite := NewTenant("shop", PriorityHigh, true)
	plain := NewTenant("search", "", false)
	low := healthyState()
	low.Classes[0].Headroom = 0.02 // haiku
	low.Classes[1].Headroom = 0.02 // sonnet
	tests := []struct {
		name   string
		tenant *Tenant
		state  State
		req    Request
		want   Decision
	}{
		{"short simple to haiku", rewrite, healthyState(),
			Request{Endpoint: "messages", Model: "claude-sonnet-4-6", MaxTokens: 100, EstInputTokens: 20, LastUserLen: 20, LastUserHead: Head("Hello!"), Messages: 1},
			Decision{Backend: "claude", Model: "claude-haiku-4-5", Priority: "high", Action: "allow", MaxWaitMS: 60000, Cache: CacheRule{true, true}, Reason: "short-simple"}},
		{"rewrite off keeps the model", plain, healthyState(),
			Request{Endpoint: "messages", Model: "claude-sonnet-4-6", MaxTokens: 100, EstInputTokens: 20, LastUserLen: 20, Messages: 1},
			Decision{Backend: "claude", Model: "claude-sonnet-4-6", Priority: "normal", Action: "allow", MaxWaitMS: 30000, Cache: CacheRule{true, true}, Reason: "as-requested"}},
		{"declared translation degrades", plain, low,
			Request{Endpoint: "messages", Model: "claude-sonnet-4-6", MaxTokens: 100, EstInputTokens: 20, LastUserLen: 20, Messages: 1, Task: "translate"},
			Decision{Backend: "ollama", Model: "llama3.1:8b-instruct-q4_K_M", Priority: "normal", Action: "allow", MaxWaitMS: 30000, Cache: CacheRule{true, false}, Reason: "degraded-low-headroom"}},
		{"detected translation degrades", plain, low,
			Request{Endpoint: "messages", Model: "claude-haiku-4-5", MaxTokens: 100, EstInputTokens: 20, LastUserLen: 20, LastUserHead: Head("Translate into German: good morning"), Messages: 1},
			Decision{Backend: "ollama", Model: "llama3.1:8b-instruct-q4_K_M", Priority: "normal", Action: "allow", MaxWaitMS: 30000, Cache: CacheRule{true, false}, Reason: "degraded-low-headroom"}},
		{"reasoning queues", plain, low,
			Request{Endpoint: "messages", Model: "claude-sonnet-4-6", MaxTokens: 100, EstInputTokens: 20, LastUserLen: 20, Messages: 1, Thinking: true},
			Decision{Backend: "claude", Model: "claude-sonnet-4-6", Priority: "normal", Action: "queue", MaxWaitMS: 30000, Cache: CacheRule{true, true}, Reason: "queued-low-headroom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &Input{Request: tt.req, Tenant: tt.tenant, State: tt.state, Now: sampleTime}
			got, err := e.Decide(context.Background(), in, "req_test")
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Revision = v.Revision
			if got != tt.want {
				t.Errorf("decision\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if n := testutil.ToFloat64(e.metrics.decisions.WithLabelValues("ollama", "llama3.1:8b-instruct-q4_K_M", "degraded-low-headroom")); n != 2 {
		t.Errorf("ollama decisions counted = %v, want 2", n)
	}
}

// TestInputDocumentMatchesJSON checks that the value built from typed
// input is exactly the documented JSON document (testdata/input.json).
func TestInputDocumentMatchesJSON(t *testing.T) {
	raw, err := os.ReadFile("testdata/input.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ast.ValueFromReader(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	st := healthyState()
	st.Classes = [3]ClassState{
		{Headroom: 0.05, RateLimitedRate: 0.2},
		{Headroom: 0.8},
		{Headroom: 1},
	}
	in := &Input{
		Request: Request{Endpoint: "messages", Model: "claude-sonnet-4-6", MaxTokens: 512, EstInputTokens: 180,
			SystemLen: 64, LastUserLen: 120, LastUserHead: "translate into french: the parcel will arrive on tuesday morning.", Messages: 1},
		Tenant: NewTenant("shop", "normal", true),
		State:  st,
		Now:    sampleTime,
	}
	var sc stateCache
	got := sc.value(in, compileBundled(t).keywords)
	if got.Compare(want) != 0 {
		t.Errorf("typed input\n%v\nwant (testdata/input.json)\n%v", got, want)
	}
	// And the schema lists exactly these fields.
	schema := readSchema(t, "schema/input.json")
	for _, part := range []string{"request", "tenant", "state", "time"} {
		obj := want.(ast.Object).Get(ast.StringTerm(part)).Value.(ast.Object)
		props := schema["properties"].(map[string]any)[part].(map[string]any)["properties"].(map[string]any)
		for _, k := range obj.Keys() {
			if _, ok := props[string(k.Value.(ast.String))]; !ok {
				t.Errorf("schema/input.json: %s.%s not documented", part, k)
			}
		}
		if len(props) != obj.Len() {
			t.Errorf("schema/input.json: %s documents %d fields, the input has %d", part, len(props), obj.Len())
		}
	}
}

func readSchema(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// policyFS is a one-file policy.
func policyFS(rego string) fstest.MapFS {
	return fstest.MapFS{"p.rego": {Data: []byte(rego)}}
}

const goodDecision = `package guardian.route
decision := {"backend": "claude", "model": input.request.model, "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": "fixed"}
`

func TestCompileRejectsBadVersions(t *testing.T) {
	tests := []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"syntax error", policyFS("package guardian.route\ndecision := {"), "rego_parse_error"},
		{"no files", fstest.MapFS{"README": {Data: []byte("x")}}, "no .rego files"},
		{"failing test", fstest.MapFS{
			"p.rego":      {Data: []byte(goodDecision)},
			"p_test.rego": {Data: []byte("package guardian.route_test\nimport data.guardian.route\ntest_wrong if route.decision.reason == \"other\" with input as {\"request\": {\"model\": \"m\"}}\n")},
		}, "1 of 1 Rego tests failed: guardian.route_test.test_wrong"},
		{"undefined decision", policyFS("package guardian.route\ndecision := {\"backend\": \"claude\"} if input.request.model == \"never\"\n"), "decision undefined"},
		{"malformed decision", policyFS("package guardian.route\ndecision := {\"backend\": \"mars\", \"model\": \"m\"}\n"), `backend "mars" is not claude or ollama`},
		{"bad reason", policyFS(strings.Replace(goodDecision, `"fixed"`, `"Bad Reason!"`, 1)), "reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(context.Background(), tt.fs, "test")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestDecideFallsBackToSafeDefault: a version that passed its samples can
// still be undefined or malformed on some input; the request then goes to
// Claude unchanged and the error is counted.
func TestDecideFallsBackToSafeDefault(t *testing.T) {
	v, err := Compile(context.Background(), policyFS(`package guardian.route
decision := {"backend": "claude", "model": input.request.model, "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": "fixed"} if not input.request.model in {"undefined-please", "malformed-please"}
decision := {"backend": "claude", "model": input.request.model, "priority": "normal", "action": "allow", "max_wait_ms": -1, "reason": "fixed"} if input.request.model == "malformed-please"
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	e := NewEngine(v, Options{Metrics: NewMetrics(reg), Log: slog.New(slog.NewTextHandler(&logs, nil))})
	tenant := NewTenant("shop", PriorityLow, true)
	for _, tt := range []struct{ model, code string }{{"undefined-please", "undefined"}, {"malformed-please", "malformed"}} {
		in := &Input{Request: Request{Endpoint: "messages", Model: tt.model}, Tenant: tenant}
		d, err := e.Decide(context.Background(), in, "req_x")
		if err == nil {
			t.Fatalf("%s: no error", tt.model)
		}
		want := Decision{Backend: "claude", Model: tt.model, Priority: "low", Action: "allow", Reason: ReasonPolicyError}
		if d != want {
			t.Errorf("%s: decision %+v, want the safe default %+v", tt.model, d, want)
		}
		if n := testutil.ToFloat64(e.metrics.errors.WithLabelValues(tt.code)); n != 1 {
			t.Errorf("errors{code=%s} = %v", tt.code, n)
		}
	}
	if !errors.Is(func() error {
		_, err := NewEngine(nil, Options{}).Decide(context.Background(), &Input{}, "")
		return err
	}(), ErrNoPolicy) {
		t.Error("an engine without a version must say so")
	}
	if !strings.Contains(logs.String(), "safe default") {
		t.Errorf("failure not logged: %s", logs.String())
	}
}

func TestDecisionLogSampling(t *testing.T) {
	v := compileBundled(t)
	var all, none strings.Builder
	in := realisticInput()
	NewEngine(v, Options{LogSampleRate: 1, Log: slog.New(slog.NewJSONHandler(&all, nil))}).Decide(context.Background(), in, "req_1")
	NewEngine(v, Options{LogSampleRate: 0, Log: slog.New(slog.NewJSONHandler(&none, nil))}).Decide(context.Background(), in, "req_1")
	var line map[string]any
	if err := json.Unmarshal([]byte(all.String()), &line); err != nil {
		t.Fatalf("%v: %s", err, all.String())
	}
	for k, want := range map[string]any{"msg": "policy decision", "tenant": "shop", "backend": "claude", "model": "claude-sonnet-4-6", "reason": "as-requested", "revision": v.Revision, "request_id": "req_1"} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	if none.Len() != 0 {
		t.Errorf("rate 0 logged: %s", none.String())
	}
}

func TestReadSourcesSkipsConfigMapInternals(t *testing.T) {
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_11_28_12_00_00.1")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "p.rego"), []byte(goodDecision), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")))
	must(t, os.Symlink(filepath.Join("..data", "p.rego"), filepath.Join(dir, "p.rego")))
	srcs, err := readSources(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 || srcs[0].name != "p.rego" {
		t.Fatalf("sources = %v", srcs)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
