package policy

import (
	"context"
	"testing"
	"time"
)

// realisticInput is a typical request: a 2 KB summarising conversation on
// sonnet from a tenant that allows rewriting, Claude healthy.
func realisticInput() *Input {
	st := healthyState()
	st.Classes[1].Headroom = 0.42
	st.Classes[1].RateLimitedRate = 0.03
	return &Input{
		Request: Request{Endpoint: "messages", Model: "claude-sonnet-4-6", MaxTokens: 1024, Stream: true,
			EstInputTokens: 610, SystemLen: 64, LastUserLen: 1020, Messages: 3,
			LastUserHead: Head("Please go through the following paragraph and tell me what you think of it. " +
				"It is about the delivery times of our shop, which customers have complained about for weeks. ")},
		Tenant: NewTenant("shop", PriorityNormal, true),
		State:  st,
		Now:    time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
	}
}

// BenchmarkDecide measures one decision of the bundled policy: building
// the input from typed values (keyword matching included), evaluating the
// compiled query, reading the decision, metrics. Target: ≤ 20 µs and
// ≤ 150 allocs; TestDecideAllocations guards the allocations.
//
//	go test ./policy -run '^$' -bench Decide -benchtime 2s -count 5 | benchstat -
func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	v, err := Compile(ctx, Bundled(), "bundled")
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(v, Options{})
	in := realisticInput()
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Decide(ctx, in, "req_bench")
		if err != nil || d.Backend != BackendClaude {
			b.Fatal(d, err)
		}
	}
}

// maxDecideAllocs is the allocation ceiling of one bundled-policy decision
// on realisticInput: 35 measured with the IR evaluator (policy/irvm; OPA
// v1.22.3, Go 1.26; 140 with topdown) plus a margin for small OPA or Go
// changes; issue 6 targets ≤ 150.
const maxDecideAllocs = 50

// TestDecideAllocations fails when a decision allocates more than
// maxDecideAllocs: allocation counts are deterministic, unlike ns/op on a
// shared machine, so `go test` catches a policy or engine change that
// makes decisions costlier (a rule whose else value OPA builds at run
// time, a keyword scan in Rego, a comprehension over a table, ...).
func TestDecideAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	ctx := context.Background()
	v := compileBundled(t)
	if v.Evaluator != "irvm" {
		t.Fatalf("the bundled policy is evaluated by %s (%s), not by the IR plan", v.Evaluator, v.EvaluatorNote)
	}
	e := NewEngine(v, Options{})
	in := realisticInput()
	if d, err := e.Decide(ctx, in, "req_test"); err != nil || d.Reason != "as-requested" {
		t.Fatal(d, err)
	}
	n := testing.AllocsPerRun(200, func() {
		if _, err := e.Decide(ctx, in, "req_test"); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations per decision (ceiling %d)", n, maxDecideAllocs)
	if n > maxDecideAllocs {
		t.Errorf("a decision allocates %.0f times, more than the ceiling of %d: see BenchmarkDecide and the performance notes in policy/rego/route.rego", n, maxDecideAllocs)
	}
}

// BenchmarkDecideOneRule is the same engine path with a one-rule policy
// (the shape of the B2 probe in shared/reference/style-and-performance.md),
// run side by side to separate OPA's per-rule cost from the engine's.
func BenchmarkDecideOneRule(b *testing.B) {
	ctx := context.Background()
	v, err := Compile(ctx, policyFS(goodDecision), "one-rule")
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(v, Options{})
	in := realisticInput()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Decide(ctx, in, "req_bench"); err != nil {
			b.Fatal(err)
		}
	}
}
