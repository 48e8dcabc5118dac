package policy

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// TestKeywordMatcherAgreesWithRego: input.request.keyword_task, matched in
// Go from the bundled table, is what the policy's own Rego rule finds.
func TestKeywordMatcherAgreesWithRego(t *testing.T) {
	ctx := context.Background()
	v := compileBundled(t)
	if v.keywords == nil {
		t.Fatal("the bundled policy's keyword table was not read")
	}
	p, err := parse(Bundled())
	if err != nil {
		t.Fatal(err)
	}
	opts := []func(*rego.Rego){rego.Query("data.guardian.route.keyword_task"), rego.SetRegoVersion(ast.RegoV1)}
	for _, m := range p.policy {
		opts = append(opts, rego.ParsedModule(m))
	}
	q, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, head := range []string{
		"", "hello there", "please translate this sentence", "翻译成中文", "reformat this list as json",
		"extract the phone numbers", "tl;dr of this mail", "classify the sentiment",
		"explain step by step why the cache misses", "refactor this go function",
		"summarize, then translate into german", "translate the proof", "format the ```code```",
		"我需要分析", "trade-offs: list all", "categorise these tickets", "summar", "translat",
	} {
		rs, err := q.Eval(ctx, rego.EvalInput(map[string]any{"request": map[string]any{"last_user_head": head}}))
		if err != nil || len(rs) != 1 {
			t.Fatalf("%q: %v %v", head, rs, err)
		}
		want := rs[0].Expressions[0].Value.(string)
		if want == "general" {
			want = ""
		}
		if got := string(v.keywords.term(head).Value.(ast.String)); got != want {
			t.Errorf("%q: Go matched %q, Rego %q", head, got, want)
		}
	}
}

func TestKeywordMatcherNeedsAConstantTable(t *testing.T) {
	for name, src := range map[string]string{
		"no table":        goodDecision,
		"not an array":    goodDecision + `keywords := {"translate": "translate"}` + "\n",
		"input-dependent": goodDecision + `keywords := [{"task": "x", "words": [input.request.model]}]` + "\n",
		"else":            goodDecision + `keywords := [] if input.x else := [{"task": "x", "words": ["a"]}]` + "\n",
		"bad entry":       goodDecision + `keywords := [{"task": 1, "words": ["a"]}]` + "\n",
	} {
		v, err := Compile(context.Background(), policyFS(src), "test")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if v.keywords != nil {
			t.Errorf("%s: a keyword matcher was made", name)
		}
	}
	v, err := Compile(context.Background(), policyFS(goodDecision+`keywords := [{"task": "a", "words": ["zz", ""]}, {"task": "b", "words": ["x"]}]`+"\n"), "test")
	if err != nil || v.keywords == nil {
		t.Fatal(v, err)
	}
	// An empty word occurs everywhere, as contains(s, "") does in Rego.
	if got := v.keywords.term("x").Value.(ast.String); got != "a" {
		t.Errorf("keyword_task = %q, want a", got)
	}
	v, err = Compile(context.Background(), policyFS(goodDecision+`keywords := [{"task": "a", "words": ["zz"]}, {"task": "b", "words": ["x"]}]`+"\n"), "test")
	if err != nil || v.keywords == nil {
		t.Fatal(v, err)
	}
	for head, want := range map[string]string{"yx": "b", "x": "b", "z": "", "xzz": "a", "zxz": "b", "": ""} {
		if got := v.keywords.term(head).Value.(ast.String); string(got) != want {
			t.Errorf("%q: keyword_task = %q, want %q", head, got, want)
		}
	}
}

// TestEvalDecisionShapes covers the evaluation paths: a complete rule is
// read from the virtual cache; partial object rules go through the full
// query; a decision without backend, or not an object, is malformed (not
// undefined); `with` pushes and pops virtual cache frames.
func TestEvalDecisionShapes(t *testing.T) {
	ctx := context.Background()
	in := &Input{Request: Request{Endpoint: "messages", Model: "m"}, Tenant: NewTenant("t", "", false)}
	for _, tt := range []struct {
		name, src string
		want      string // reason, or the error's code
	}{
		{"complete", goodDecision, "fixed"},
		{"partial object", `package guardian.route
decision.backend := "claude"
decision.model := input.request.model
decision.priority := "normal"
decision.action := "allow"
decision.max_wait_ms := 0
decision.reason := "partial"
`, "partial"},
		{"with", `package guardian.route
decision := x if x := d with input.request.model as "other"
d := {"backend": "claude", "model": input.request.model, "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": r}
r := "with-" if input.request.model == "other"
`, "with-"},
		{"no backend", `package guardian.route
decision := {"model": "m"} if input.request.model == "m"
decision := {"backend": "claude", "model": "x", "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": "r"} if input.request.model != "m"
`, "malformed"},
		{"string", `package guardian.route
decision := "claude" if input.request.model == "m"
decision := {"backend": "claude", "model": "x", "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": "r"} if input.request.model != "m"
`, "malformed"},
		{"undefined", `package guardian.route
decision := {"backend": "claude", "model": "x", "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": "r"} if input.request.model != "m"
`, "undefined"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Compile(ctx, fstest.MapFS{"p.rego": {Data: []byte(tt.src)}}, "test")
			if err != nil {
				t.Fatal(err)
			}
			var sc stateCache
			d, err := v.eval(ctx, &sc, in)
			got := d.Reason
			if err != nil {
				got = errorCode(err)
			}
			if got != tt.want {
				t.Errorf("got %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}
