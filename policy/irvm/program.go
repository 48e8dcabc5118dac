package irvm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Errors of New and Eval, for errors.Is.
var (
	// ErrUnsupported: the plan uses something the interpreter does not
	// implement (a statement type, a built-in without implementation).
	ErrUnsupported = errors.New("irvm: unsupported")
	// ErrConflict: a rule, function or object produced two values where
	// Rego allows one.
	ErrConflict = errors.New("irvm: conflict")

	errMalformed = errors.New("irvm: malformed plan")
)

// Options configure a Program. The zero value is OPA's default
// evaluation: no base data, built-in errors make calls undefined.
type Options struct {
	// Data is the base data document (data.*); nil means empty.
	Data ast.Value
	// StrictBuiltinErrors makes a built-in's error an evaluation error, as
	// topdown.Query.WithStrictBuiltinErrors(true) does.
	StrictBuiltinErrors bool
}

// Program is a plan ready to evaluate. It is immutable and safe for
// concurrent use.
type Program struct {
	entry   *function
	funcs   []*function
	dynamic *pathNode // functions by path, for CallDynamicStmt
	files   []string  // file names, for error messages
	npaths  int       // input paths cached per scope (paths.go)
	data    *ast.Term
	opts    Options
	pool    sync.Pool
}

// Compile plans modules (file name to parsed module, tests left out) for
// one entrypoint, a slash-separated path under data such as
// "guardian/route/decision", and prepares the plan for evaluation:
// Plan then New.
func Compile(ctx context.Context, modules map[string]*ast.Module, entrypoint string, opts Options) (*Program, error) {
	p, err := Plan(ctx, modules, entrypoint)
	if err != nil {
		return nil, err
	}
	return New(p, entrypoint, opts)
}

// New prepares the plan named entrypoint of policy for evaluation. It
// fails on anything the interpreter does not support.
func New(policy *ir.Policy, entrypoint string, opts Options) (*Program, error) {
	l, err := newLoader(policy)
	if err != nil {
		return nil, err
	}
	funcs, err := l.loadFuncs()
	if err != nil {
		return nil, err
	}
	entry, err := l.loadPlan(entrypoint)
	if err != nil {
		return nil, err
	}
	p := &Program{entry: entry, funcs: funcs, dynamic: &pathNode{}, opts: opts}
	paths := &pathTable{ids: map[pathKey]int{}}
	all := append(append(make([]*function, 0, len(funcs)+1), funcs...), entry)
	for _, fn := range all {
		optimizeFunc(fn)
		cachePaths(fn, paths)
	}
	p.npaths = paths.size()
	for _, b := range entry.blocks {
		unwrapResult(b)
	}
	for _, fn := range funcs {
		if len(fn.path) > 0 {
			p.dynamic.insert(fn.path, fn)
		}
	}
	for _, f := range policy.Static.Files {
		name := ""
		if f != nil {
			name = f.Value
		}
		p.files = append(p.files, name)
	}
	p.data = ast.NewTerm(ast.NewObject())
	if opts.Data != nil {
		p.data = ast.NewTerm(opts.Data)
	}
	p.pool.New = func() any { return p.newEvaluation() }
	return p, nil
}

// Eval evaluates the entrypoint on input (nil: no input document) and
// returns its value; defined is false when the entrypoint is undefined.
// Later evaluations do not touch the value, but it may share parts with
// the input, the policy's constants and other results: treat it as
// immutable, as topdown's results.
func (p *Program) Eval(ctx context.Context, input ast.Value) (value ast.Value, defined bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("irvm: %w", err)
	}
	e := p.pool.Get().(*evaluation)
	defer p.release(e)
	e.ctx = ctx
	var in *ast.Term
	if input != nil {
		in = ast.NewTerm(input)
	}
	if err := e.run(in); err != nil {
		return nil, false, err
	}
	switch len(e.results) {
	case 0:
		return nil, false, nil
	case 1:
		return e.results[0].Value, true, nil
	}
	return nil, false, fmt.Errorf("%w: the entrypoint has %d values", ErrConflict, len(e.results))
}

// evaluation is the state of one evaluation, pooled.
type evaluation struct {
	p       *Program
	ctx     context.Context
	stack   stack
	memo    []memoEntry // len(funcs) per WithStmt scope
	memoTop int         // index of the current scope's first entry
	paths   []*ast.Term // npaths per WithStmt scope: cached input paths
	pathTop int
	ret     *ast.Term // the value of the last ReturnLocalStmt
	results []*ast.Term
	owned   map[*ast.Term]struct{} // the collections it built, which it may modify
	steps   uint32                 // loop iterations, for cancellation checks

	args     []*ast.Term    // a built-in call's arguments
	items    [][2]*ast.Term // an object literal's pairs
	out      *ast.Term
	outs     []*ast.Term
	defined  bool
	relation bool
	onOut    func(*ast.Term) error

	bctx      topdown.BuiltinContext
	bctxReady bool
}

type memoEntry struct {
	done        bool
	input, data *ast.Term // the arguments
	v           *ast.Term
}

func (p *Program) newEvaluation() *evaluation {
	e := &evaluation{p: p, memo: make([]memoEntry, len(p.funcs)), paths: make([]*ast.Term, p.npaths),
		owned: map[*ast.Term]struct{}{}}
	e.onOut = e.onOutput
	return e
}

func (p *Program) release(e *evaluation) {
	clear(e.memo)
	clear(e.paths)
	e.memoTop, e.pathTop = 0, 0
	clear(e.owned)
	clear(e.results)
	e.results = e.results[:0]
	e.ctx, e.ret, e.out, e.steps = nil, nil, nil, 0
	if e.bctxReady {
		e.bctx = topdown.BuiltinContext{}
		e.bctxReady = false
	}
	p.pool.Put(e)
}

// run executes the entry plan.
func (e *evaluation) run(input *ast.Term) error {
	fn := e.p.entry
	fr, mark := e.stack.push(fn.nlocals)
	defer e.stack.pop(mark, fr)
	fr[ir.Input], fr[ir.Data] = input, e.p.data
	for _, b := range fn.blocks {
		r, err := e.exec(fr, b)
		if err != nil {
			return err
		}
		if r > 0 {
			return fmt.Errorf("%w: break out of plan %s", errMalformed, fn.name)
		}
	}
	return nil
}
