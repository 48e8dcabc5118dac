package irvm

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// realisticInput mirrors policy.realisticInput (policy/bench_test.go) as
// the engine builds it (policy/value.go): a 2 KB summarising conversation
// on sonnet from a tenant that allows rewriting, Claude healthy, and the
// keyword_task the gateway matched in Go ("": no keyword).
func realisticInput() ast.Value { return realistic(true) }

// realistic builds realisticInput, without keyword_task when keyword is
// false (a hand-written input: the policy matches keywords in Rego).
func realistic(keyword bool) ast.Value {
	str, num, flt, boolean := ast.StringTerm, ast.IntNumberTerm, ast.FloatNumberTerm, ast.BooleanTerm
	item := func(k string, v *ast.Term) [2]*ast.Term { return [2]*ast.Term{str(k), v} }
	class := func(headroom, rateLimited float64) *ast.Term {
		return ast.ObjectTerm(item("headroom", flt(headroom)), item("cooling_down", boolean(false)),
			item("cooldown_ms", num(0)), item("error_rate", num(0)), item("rate_limited_rate", flt(rateLimited)))
	}
	head := strings.ToLower("Please go through the following paragraph and tell me what you think of it. " +
		"It is about the delivery times of our shop, which customers have complained about for weeks. ")
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	request := ast.NewObject(
		item("endpoint", str("messages")), item("model", str("claude-sonnet-4-6")),
		item("model_class", str("sonnet")), item("max_tokens", num(1024)), item("stream", boolean(true)),
		item("est_input_tokens", num(610)), item("system_len", num(64)), item("last_user_len", num(1020)),
		item("last_user_head", str(head)), item("messages", num(3)), item("has_tools", boolean(false)),
		item("thinking", boolean(false)), item("images", num(0)), item("task", str("")),
	)
	if keyword {
		request.Insert(str("keyword_task"), str(""))
	}
	return ast.NewObject(
		item("request", ast.NewTerm(request)),
		item("tenant", ast.ObjectTerm(item("name", str("shop")), item("priority", str("normal")),
			item("allow_model_rewrite", boolean(true)))),
		item("state", ast.ObjectTerm(
			item("classes", ast.ObjectTerm(item("haiku", class(0.9, 0)), item("sonnet", class(0.42, 0.03)),
				item("opus", class(0.9, 0)))),
			item("queue_depth", num(0)),
			item("ollama", ast.ObjectTerm(item("configured", boolean(true)), item("healthy", boolean(true)),
				item("model", str("llama3.1:8b-instruct-q4_K_M")))),
		)),
		item("time", ast.ObjectTerm(item("unix_ms", ast.InternedTerm(now.UnixMilli())),
			item("hour_utc", num(now.Hour())), item("weekday", num(int(now.Weekday()))))),
	)
}

// BenchmarkEval measures one decision of the bundled policy on
// realisticInput with irvm, and the same through topdown (a plain
// topdown.Query, without the policy package's tuning).
//
//	go test ./policy/irvm -run '^$' -bench . -benchtime 2s -count 3
func BenchmarkEval(b *testing.B) {
	benchmarkEval(b, realisticInput())
}

// BenchmarkEvalKeywordsInRego is BenchmarkEval on the input without
// keyword_task: the policy scans its keyword table in Rego.
func BenchmarkEvalKeywordsInRego(b *testing.B) {
	benchmarkEval(b, realistic(false))
}

func benchmarkEval(b *testing.B, in ast.Value) {
	ctx := context.Background()
	mods := bundledModules(b)
	b.Run("irvm", func(b *testing.B) {
		p, err := Compile(ctx, mods, bundledEntrypoint, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := p.Eval(ctx, in); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("topdown", func(b *testing.B) {
		ref := newReference(b, mods, bundledEntrypoint)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := ref.eval(ctx, in); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
}
