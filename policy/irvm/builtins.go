package irvm

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
	"github.com/open-policy-agent/opa/v1/types"
)

// builtin is a built-in function a plan calls, bound to OPA's
// implementation.
type builtin struct {
	name     string
	fn       topdown.BuiltinFunc
	arity    int
	variadic bool
	relation bool // every output, as an array (walk)
	void     bool // no result (print)
	fullCtx  bool // needs the evaluation's BuiltinContext
	// cmp, when set, is the built-in itself for comparisons, called
	// without the BuiltinFunc indirection: the same expressions as
	// topdown's comparison.go.
	cmp func(a, b *ast.Term) bool
}

var comparisons = map[string]func(a, b *ast.Term) bool{
	ast.Equal.Name:         func(a, b *ast.Term) bool { return a.Equal(b) },
	ast.NotEqual.Name:      func(a, b *ast.Term) bool { return !a.Equal(b) },
	ast.LessThan.Name:      func(a, b *ast.Term) bool { return a.Value.Compare(b.Value) < 0 },
	ast.LessThanEq.Name:    func(a, b *ast.Term) bool { return a.Value.Compare(b.Value) <= 0 },
	ast.GreaterThan.Name:   func(a, b *ast.Term) bool { return a.Value.Compare(b.Value) > 0 },
	ast.GreaterThanEq.Name: func(a, b *ast.Term) bool { return a.Value.Compare(b.Value) >= 0 },
}

// builtin resolves a built-in by name: its declaration from OPA's
// built-in table (or the plan's), its implementation from topdown's
// registry, so custom built-ins registered globally work too.
func (l *loader) builtin(name string) (*builtin, error) {
	if b, ok := l.builtins[name]; ok {
		return b, nil
	}
	decl := ast.BuiltinMap[name]
	var fdecl *types.Function
	if decl != nil {
		fdecl = decl.Decl
	} else {
		for _, b := range l.policy.Static.BuiltinFuncs {
			if b != nil && b.Name == name {
				fdecl = b.Decl
			}
		}
	}
	if fdecl == nil {
		return nil, fmt.Errorf("%w: unknown function or built-in %q", ErrUnsupported, name)
	}
	fn := topdown.GetBuiltin(name)
	if fn == nil {
		return nil, fmt.Errorf("%w: built-in %q has no implementation", ErrUnsupported, name)
	}
	b := &builtin{
		name:     name,
		fn:       fn,
		arity:    fdecl.Arity(),
		variadic: fdecl.FuncArgs().Variadic != nil,
		relation: decl != nil && decl.Relation,
		void:     fdecl.Result() == nil,
		fullCtx:  decl == nil || !decl.CanSkipBctx,
	}
	b.cmp = comparisons[name]
	l.builtins[name] = b
	return b, nil
}

// noMetrics is the metrics registry built-ins record to.
var noMetrics = metrics.NoOp()

// callBuiltin calls s's built-in. A nil term with a nil error is
// undefined.
func (e *evaluation) callBuiltin(fr []*ast.Term, s *stmt) (*ast.Term, error) {
	bi := s.bi
	args := e.args[:0]
	for i := range s.args {
		t := get(fr, &s.args[i])
		if t == nil {
			return nil, nil
		}
		args = append(args, t)
	}
	e.args = args
	if bi.cmp != nil {
		return ast.InternedTerm(bi.cmp(args[0], args[1])), nil
	}
	var bctx topdown.BuiltinContext
	if bi.fullCtx {
		bctx = e.builtinContext()
	}
	e.out, e.outs, e.defined, e.relation = nil, e.outs[:0], false, bi.relation
	err := bi.fn(bctx, args, e.onOut)
	clear(args)
	if err != nil {
		// As topdown: a Halt itself ends the evaluation, a wrapped one
		// does not.
		if h, ok := err.(topdown.Halt); ok {
			return nil, fmt.Errorf("irvm: %s: %w", bi.name, h)
		}
		if e.p.opts.StrictBuiltinErrors {
			return nil, fmt.Errorf("irvm: %s: %w", bi.name, err)
		}
		return nil, nil
	}
	switch {
	case bi.relation:
		elems := make([]*ast.Term, len(e.outs))
		copy(elems, e.outs)
		clear(e.outs)
		return ast.ArrayTerm(elems...), nil
	case !e.defined:
		return nil, nil
	case bi.void || e.out == nil:
		return ast.InternedNullTerm, nil
	}
	out := e.out
	e.out = nil
	return out, nil
}

// onOutput receives a built-in's outputs (e.onOut, made once per pooled
// evaluation, so that a call does not allocate a closure).
func (e *evaluation) onOutput(t *ast.Term) error {
	if e.relation {
		e.outs = append(e.outs, t)
		return nil
	}
	if !e.defined {
		e.out, e.defined = t, true
	}
	return nil
}

// builtinContext returns the context of built-ins that need one, made on
// first use in an evaluation, as topdown makes it: the evaluation's
// context, a clock read once, a per-evaluation cache.
func (e *evaluation) builtinContext() topdown.BuiltinContext {
	if !e.bctxReady {
		e.bctx = topdown.BuiltinContext{
			Context: e.ctx,
			Metrics: noMetrics,
			Seed:    rand.Reader,
			Time:    ast.InternedTerm(time.Now().UnixNano()),
			Cache:   builtins.Cache{},
		}
		e.bctxReady = true
	}
	return e.bctx
}
