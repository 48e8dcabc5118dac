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
// the input from typed values, evaluating the prepared query, reading the
// decision, metrics. Target: ≤ 20 µs and ≤ 150 allocs.
//
//	go test ./policy -run '^$' -bench Decide -benchtime 2s -count 3 | benchstat -
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
