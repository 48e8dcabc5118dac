package irvm

import (
	"context"
	"errors"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
)

// handPlan returns a policy whose plan "p" runs stmts then returns local
// 2 as the result ({"result": local 2}). Strings: 0 "result", 1 "a",
// 2 "b", 3 "no.such.builtin".
func handPlan(stmts ...ir.Stmt) *ir.Policy {
	wrap := []ir.Stmt{
		&ir.MakeObjectStmt{Target: 90},
		&ir.ObjectInsertStmt{Key: ir.Operand{Value: ir.StringIndex(0)}, Value: ir.Operand{Value: ir.Local(2)}, Object: 90},
		&ir.ResultSetAddStmt{Value: 90},
	}
	return &ir.Policy{
		Static: &ir.Static{Strings: []*ir.StringConst{{Value: "result"}, {Value: "a"}, {Value: "b"}, {Value: "no.such.builtin"}}},
		Plans:  &ir.Plans{Plans: []*ir.Plan{{Name: "p", Blocks: []*ir.Block{{Stmts: append(stmts, wrap...)}}}}},
		Funcs:  &ir.Funcs{},
	}
}

func str(i int) ir.Operand      { return ir.Operand{Value: ir.StringIndex(i)} }
func loc(l int) ir.Operand      { return ir.Operand{Value: ir.Local(l)} }
func boolean(b bool) ir.Operand { return ir.Operand{Value: ir.Bool(b)} }

func evalHand(t *testing.T, p *ir.Policy) (ast.Value, bool, error) {
	t.Helper()
	prog, err := New(p, "p", Options{})
	if err != nil {
		t.Fatal(err)
	}
	return prog.Eval(context.Background(), ast.NewObject())
}

// TestBreakIndex: BreakStmt{Index: 1} ends the current block and the one
// holding it; what follows the outer BlockStmt runs.
func TestBreakIndex(t *testing.T) {
	inner := &ir.Block{Stmts: []ir.Stmt{&ir.BreakStmt{Index: 1}, &ir.AssignVarStmt{Source: str(2), Target: 2}}}
	outer := &ir.Block{Stmts: []ir.Stmt{&ir.BlockStmt{Blocks: []*ir.Block{inner}}, &ir.AssignVarStmt{Source: str(2), Target: 2}}}
	v, ok, err := evalHand(t, handPlan(
		&ir.AssignVarStmt{Source: str(1), Target: 2},
		&ir.BlockStmt{Blocks: []*ir.Block{outer}},
	))
	if err != nil || !ok || v.Compare(ast.String("a")) != 0 {
		t.Fatalf("got %v %v %v, want \"a\"", v, ok, err)
	}
}

// TestNotAndScan: NotStmt holds when its block ends early; ScanStmt runs
// its block per element and goes on after an undefined statement.
func TestNotAndScan(t *testing.T) {
	scanBody := &ir.Block{Stmts: []ir.Stmt{
		&ir.EqualStmt{A: loc(5), B: str(2)}, // only "b"
		&ir.ArrayAppendStmt{Value: loc(4), Array: 2},
	}}
	v, ok, err := evalHand(t, handPlan(
		&ir.MakeArrayStmt{Target: 3},
		&ir.ArrayAppendStmt{Value: str(1), Array: 3},
		&ir.ArrayAppendStmt{Value: str(2), Array: 3},
		&ir.ArrayAppendStmt{Value: str(2), Array: 3},
		&ir.MakeArrayStmt{Target: 2},
		&ir.ScanStmt{Source: 3, Key: 4, Value: 5, Block: scanBody},
		&ir.NotStmt{Block: &ir.Block{Stmts: []ir.Stmt{&ir.EqualStmt{A: str(1), B: str(2)}}}},
		&ir.LenStmt{Source: loc(2), Target: 6},
		&ir.MakeNumberIntStmt{Value: 2, Target: 7},
		&ir.EqualStmt{A: loc(6), B: loc(7)},
	))
	if err != nil || !ok || v.String() != "[1, 2]" {
		t.Fatalf("got %v %v %v, want [1, 2]", v, ok, err)
	}
}

// TestFusionKeepsOrder: an object literal whose element local is
// reassigned between two insertions keeps the first value.
func TestFusionKeepsOrder(t *testing.T) {
	v, ok, err := evalHand(t, handPlan(
		&ir.MakeObjectStmt{Target: 2},
		&ir.AssignVarStmt{Source: str(1), Target: 3},
		&ir.ObjectInsertStmt{Key: str(1), Value: loc(3), Object: 2},
		&ir.AssignVarStmt{Source: str(2), Target: 3},
		&ir.ObjectInsertStmt{Key: str(2), Value: loc(3), Object: 2},
	))
	if err != nil || !ok || v.String() != `{"a": "a", "b": "b"}` {
		t.Fatalf("got %v %v %v", v, ok, err)
	}
}

// TestConstantResult: a result set entry built once (a folded
// {"result": 7}) is unwrapped at evaluation.
func TestConstantResult(t *testing.T) {
	v, ok, err := evalHand(t, handPlan(&ir.MakeNumberIntStmt{Value: 7, Target: 2}))
	if err != nil || !ok || v.String() != "7" {
		t.Fatalf("got %v %v %v", v, ok, err)
	}
}

// TestUnsupported: an unknown built-in, an unknown statement type and a
// malformed plan are errors of New, not of evaluations.
func TestUnsupported(t *testing.T) {
	for name, tc := range map[string]struct {
		p    *ir.Policy
		want error
	}{
		"builtin":   {handPlan(&ir.CallStmt{Func: "no.such.builtin", Args: []ir.Operand{loc(0)}, Result: 2}), ErrUnsupported},
		"statement": {handPlan(&oddStmt{}), ErrUnsupported},
		"string":    {handPlan(&ir.AssignVarStmt{Source: str(99), Target: 2}), errMalformed},
		"local":     {handPlan(&ir.AssignVarStmt{Source: loc(-1), Target: 2}), errMalformed},
		"call":      {handPlan(&ir.CallStmt{Func: "concat", Args: []ir.Operand{str(1)}, Result: 2}), errMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.p, "p", Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := New(handPlan(), "nope", Options{}); !errors.Is(err, errMalformed) {
		t.Fatalf("unknown plan: err = %v", err)
	}
}

// TestEveryStatementKind: the loader knows every statement type of
// package ir (a zero value may be malformed, never unsupported).
func TestEveryStatementKind(t *testing.T) {
	l, err := newLoader(handPlan())
	if err != nil {
		t.Fatal(err)
	}
	kinds := ir.StmtKinds()
	if len(kinds) < 34 {
		t.Fatalf("%d statement kinds", len(kinds))
	}
	for name, s := range kinds {
		if c, ok := s.(*ir.CallStmt); ok { // a call of nothing is unsupported
			c.Func, c.Args = "concat", []ir.Operand{str(1), str(2)}
		}
		if _, err := l.stmt(s); errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// oddStmt is a statement type irvm does not know.
type oddStmt struct{ ir.Location }

// TestFrozenLiteral: a literal built once per Program is never modified,
// even by a plan that modifies it through another local: the evaluation
// fails and the literal stays as it was.
func TestFrozenLiteral(t *testing.T) {
	p := handPlan(
		&ir.MakeArrayStmt{Target: 3},
		&ir.ArrayAppendStmt{Value: str(1), Array: 3},
		&ir.AssignVarStmt{Source: loc(3), Target: 4},
		&ir.AssignVarStmt{Source: loc(3), Target: 2},
		&ir.ArrayAppendStmt{Value: str(2), Array: 4},
	)
	prog, err := New(p, "p", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := prog.Eval(context.Background(), nil); !errors.Is(err, errMalformed) {
			t.Fatalf("err = %v, want a malformed plan error", err)
		}
	}
	for _, s := range prog.entry.blocks[0].stmts {
		if s.op == opConst && s.target == 3 && s.k.String() != `["a"]` {
			t.Fatalf("the literal is %v", s.k)
		}
	}
}

// TestInputIsNeverModified: a plan that would modify the input fails.
func TestInputIsNeverModified(t *testing.T) {
	prog, err := New(handPlan(
		&ir.DotStmt{Source: loc(0), Key: str(1), Target: 3},
		&ir.ArrayAppendStmt{Value: str(2), Array: 3},
		&ir.AssignVarStmt{Source: loc(3), Target: 2},
	), "p", Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := ast.MustParseTerm(`{"a": ["x"]}`).Value
	if _, _, err := prog.Eval(context.Background(), in); !errors.Is(err, errMalformed) {
		t.Fatalf("err = %v, want a malformed plan error", err)
	}
	if in.String() != `{"a": ["x"]}` {
		t.Fatalf("input modified: %v", in)
	}
}

// TestStrictBuiltinErrors: with the option, a built-in error is an
// evaluation error; without, the call is undefined.
func TestStrictBuiltinErrors(t *testing.T) {
	ctx := context.Background()
	mods := parseModules(t, map[string]string{"x.rego": "package x\np := 1 / input.n\n"})
	in := ast.MustParseTerm(`{"n": 0}`).Value
	lax, err := Compile(ctx, mods, "x/p", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := lax.Eval(ctx, in); ok || err != nil {
		t.Fatalf("lax: %v %v %v, want undefined", v, ok, err)
	}
	strict, err := Compile(ctx, mods, "x/p", Options{StrictBuiltinErrors: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := strict.Eval(ctx, in); err == nil {
		t.Fatal("strict: no error")
	}
}

// TestResultsAreNotReused: a result does not change when the Program
// evaluates other inputs (no pooled value leaks into it).
func TestResultsAreNotReused(t *testing.T) {
	ctx := context.Background()
	p, err := Compile(ctx, bundledModules(t), bundledEntrypoint, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := newInputGen(3)
	type kept struct {
		v    ast.Value
		text string
	}
	var all []kept
	for range 200 {
		v, ok, err := p.Eval(ctx, g.input())
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			all = append(all, kept{v, v.String()})
		}
	}
	for i, k := range all {
		if k.v.String() != k.text {
			t.Fatalf("result %d changed: %s, was %s", i, k.v, k.text)
		}
	}
}
