package irvm

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// diffInputs is how many generated inputs the bundled policy is checked on.
const diffInputs = 5000

// sameResult reports how irvm's result differs from topdown's ("" when it
// does not): both undefined, both errors, or equal values, the same as
// Rego compares them and with the same text (1 and 1.0 compare equal but
// are not the same number literal).
func sameResult(v ast.Value, ok bool, err error, want ast.Value, wantOK bool, wantErr error) string {
	switch {
	case (err != nil) != (wantErr != nil):
		return fmt.Sprintf("error %v, topdown error %v", err, wantErr)
	case err != nil:
		return ""
	case ok != wantOK:
		return fmt.Sprintf("defined %v (%v), topdown defined %v (%v)", ok, v, wantOK, want)
	case !ok:
		return ""
	case ast.Compare(v, want) != 0 || v.String() != want.String():
		return fmt.Sprintf("value %v, topdown %v", v, want)
	}
	return ""
}

// TestBundledMatchesTopdown evaluates the bundled policy on generated
// inputs with irvm and with topdown and requires the same decision.
func TestBundledMatchesTopdown(t *testing.T) {
	ctx := context.Background()
	mods := bundledModules(t)
	p, err := Compile(ctx, mods, bundledEntrypoint, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref := newReference(t, mods, bundledEntrypoint)
	g := newInputGen(20261128)
	outcomes := map[string]int{}
	inputs := append([]ast.Value{realisticInput()}, make([]ast.Value, diffInputs)...)
	for i := 1; i < len(inputs); i++ {
		inputs[i] = g.input()
	}
	for i, in := range inputs {
		v, ok, err := p.Eval(ctx, in)
		want, wantOK, wantErr := ref.eval(ctx, in)
		if d := sameResult(v, ok, err, want, wantOK, wantErr); d != "" {
			t.Fatalf("input %d: %s\ninput: %v", i, d, in)
		}
		outcomes[outcome(want, wantOK, wantErr)]++
	}
	var names []string
	for k := range outcomes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		t.Logf("%5d %s", outcomes[k], k)
	}
	// The inputs reach every branch of the policy.
	for _, k := range []string{"undefined", "claude/allow/short-simple", "claude/allow/multi-step", "claude/allow/complex",
		"claude/allow/long-context", "claude/allow/as-requested", "ollama/allow/degraded-low-headroom",
		"ollama/allow/degraded-cooling-down", "ollama/allow/degraded-claude-failing", "claude/queue/queued-low-headroom",
		"claude/queue/queued-claude-failing", "claude/queue/queued-cooling-down", "claude/reject/queue-full"} {
		if outcomes[k] == 0 {
			t.Errorf("no input decided %s", k)
		}
	}
}

// TestBundledRulesMatchTopdown checks the policy's other rules, and the
// whole package (the planner's extent of data.guardian.route), the same way
// on fewer inputs.
func TestBundledRulesMatchTopdown(t *testing.T) {
	ctx := context.Background()
	mods := bundledModules(t)
	for _, rule := range []string{"guardian/route/task", "guardian/route/keyword_task", "guardian/route/route",
		"guardian/route/target", "guardian/route/trouble", "guardian/route/degrade", "guardian/route/priority",
		"guardian/route/keywords", "guardian/route", "guardian"} {
		t.Run(rule, func(t *testing.T) {
			p, err := Compile(ctx, mods, rule, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ref := newReference(t, mods, rule)
			g := newInputGen(99)
			for i := range 500 {
				in := g.input()
				v, ok, err := p.Eval(ctx, in)
				want, wantOK, wantErr := ref.eval(ctx, in)
				if d := sameResult(v, ok, err, want, wantOK, wantErr); d != "" {
					t.Fatalf("input %d: %s\ninput: %v", i, d, in)
				}
			}
		})
	}
}

// outcome names a decision by backend, action and reason.
func outcome(v ast.Value, ok bool, err error) string {
	switch {
	case err != nil:
		return "error"
	case !ok:
		return "undefined"
	}
	obj, isObj := v.(ast.Object)
	if !isObj {
		return "not an object"
	}
	s := ""
	for i, k := range []string{"backend", "action", "reason"} {
		if i > 0 {
			s += "/"
		}
		if f := obj.Get(ast.StringTerm(k)); f != nil {
			if str, isStr := f.Value.(ast.String); isStr {
				s += string(str)
			}
		}
	}
	return s
}

// TestConcurrentEval evaluates one Program from several goroutines: every
// result matches the one computed alone.
func TestConcurrentEval(t *testing.T) {
	ctx := context.Background()
	p, err := Compile(ctx, bundledModules(t), bundledEntrypoint, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := newInputGen(7)
	inputs := make([]ast.Value, 300)
	want := make([]string, len(inputs))
	for i := range inputs {
		inputs[i] = g.input()
		v, ok, err := p.Eval(ctx, inputs[i])
		want[i] = fmt.Sprint(v, ok, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range inputs {
				j := (i + w*37) % len(inputs)
				v, ok, err := p.Eval(ctx, inputs[j])
				if got := fmt.Sprint(v, ok, err); got != want[j] {
					errs <- fmt.Errorf("input %d: %s, alone %s", j, got, want[j])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestEvalHonoursContext: a cancelled context is an error.
func TestEvalHonoursContext(t *testing.T) {
	p, err := Compile(context.Background(), bundledModules(t), bundledEntrypoint, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := p.Eval(ctx, realisticInput()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
