package policy

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/claude-guardian/claude-guardian/policy/irvm"
)

// Query is the rule the engine evaluates.
const Query = "data.guardian.route.decision"

//go:embed rego/*.rego
var bundled embed.FS

// Bundled returns the policies shipped with guardian (policy/rego), used
// when guardian.yaml leaves policy.dir empty.
func Bundled() fs.FS {
	sub, err := fs.Sub(bundled, "rego")
	if err != nil { // cannot happen: the directory is embedded
		return bundled
	}
	return sub
}

// Version is one compiled, tested policy version. It is immutable.
type Version struct {
	// Revision is the first 12 hex digits of the SHA-256 of the files'
	// names and contents: the same files give the same revision.
	Revision string
	// Source says where the files came from (a directory or "bundled").
	Source string
	// Files and Tests count the policy files and the Rego tests that passed.
	Files, Tests int

	// fast and full are the compiled queries with everything but the input
	// and the virtual cache set; each evaluation copies one (evalValue).
	fast, full topdown.Query
	// keywords matches the policy's keyword table (nil: none) for
	// input.request.keyword_task.
	keywords *keywordMatcher
	// prog evaluates the decision from OPA's IR plan (policy/irvm), about
	// ten times faster than topdown; nil: topdown does (see Evaluator).
	prog *irvm.Program
	// Evaluator is "irvm" or, when the plan could not be loaded or
	// disagreed with topdown on a sample input, "topdown"; EvaluatorNote
	// says why.
	Evaluator, EvaluatorNote string
}

// TestResult is the outcome of one Rego test.
type TestResult struct {
	Name   string // package.rule
	Passed bool
	Err    string // failure or error detail
}

// source is one .rego file.
type source struct {
	name string
	text []byte
}

// readSources returns every *.rego file under fsys, sorted. Names starting
// with "." are skipped: Kubernetes mounts a ConfigMap as "..data" (a
// symlink to a "..<timestamp>" directory) plus one symlink per key, so the
// top-level symlinks are read and the hidden copies are not.
func readSources(fsys fs.FS) ([]source, error) {
	var out []source
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != "." && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(name, ".rego") {
			return nil
		}
		text, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		out = append(out, source{name: p, text: text})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policy: reading files: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	if len(out) == 0 {
		return nil, errors.New("policy: no .rego files")
	}
	return out, nil
}

func revision(srcs []source) string {
	h := sha256.New()
	for _, s := range srcs {
		fmt.Fprintf(h, "%s\x00%d\x00", s.name, len(s.text))
		h.Write(s.text)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func isTestFile(name string) bool { return strings.HasSuffix(path.Base(name), "_test.rego") }

// parsed is a policy directory parsed into modules.
type parsed struct {
	revision string
	policy   map[string]*ast.Module // without tests
	all      map[string]*ast.Module // with tests
}

func parse(fsys fs.FS) (*parsed, error) {
	srcs, err := readSources(fsys)
	if err != nil {
		return nil, err
	}
	p := &parsed{revision: revision(srcs), policy: map[string]*ast.Module{}, all: map[string]*ast.Module{}}
	for _, s := range srcs {
		m, err := ast.ParseModuleWithOpts(s.name, string(s.text), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		p.all[s.name] = m
		if !isTestFile(s.name) {
			p.policy[s.name] = m
		}
	}
	if len(p.policy) == 0 {
		return nil, errors.New("policy: only test files: no policy")
	}
	return p, nil
}

// testTimeout bounds one Rego test.
const testTimeout = 10 * time.Second

// RunTests runs every Rego test (rules named test_*) in fsys with OPA's
// tester, as `opa test` does, and returns the results sorted by name.
func RunTests(ctx context.Context, fsys fs.FS) ([]TestResult, error) {
	p, err := parse(fsys)
	if err != nil {
		return nil, err
	}
	return p.runTests(ctx)
}

func (p *parsed) runTests(ctx context.Context) ([]TestResult, error) {
	ch, err := tester.NewRunner().SetModules(p.all).SetTimeout(testTimeout).RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("policy: compiling for tests: %w", err)
	}
	var out []TestResult
	for r := range ch {
		if r.Skip {
			continue
		}
		tr := TestResult{Name: strings.TrimPrefix(r.Package, "data.") + "." + r.Name, Passed: r.Pass()}
		switch {
		case r.Error != nil:
			tr.Err = r.Error.Error()
		case r.Fail && r.FailedAt != nil:
			tr.Err = fmt.Sprintf("failed at %s: %s", r.FailedAt.Location, r.FailedAt)
		case r.Fail:
			tr.Err = "failed"
		}
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Compile builds a policy version from the .rego files in fsys: it parses
// and compiles them, runs their Rego tests, prepares the query once, and
// evaluates the sample inputs ([Samples]); any failure (syntax error,
// failing test, undefined or malformed decision on a sample) is an error
// and no version is returned.
func Compile(ctx context.Context, fsys fs.FS, sourceName string) (*Version, error) {
	p, err := parse(fsys)
	if err != nil {
		return nil, err
	}
	results, err := p.runTests(ctx)
	if err != nil {
		return nil, err
	}
	var failed []string
	for _, r := range results {
		if !r.Passed {
			failed = append(failed, r.Name+": "+r.Err)
		}
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("policy: %d of %d Rego tests failed: %s", len(failed), len(results), strings.Join(failed, "; "))
	}
	v, err := prepare(ctx, p)
	if err != nil {
		return nil, err
	}
	v.Source, v.Files, v.Tests = sourceName, len(p.all), len(results)
	var sc stateCache
	v.chooseEvaluator(ctx, p, &sc)
	for _, s := range Samples() {
		if _, err := v.eval(ctx, &sc, &s.Input); err != nil {
			return nil, fmt.Errorf("policy: sample input %q: %w", s.Name, err)
		}
	}
	return v, nil
}

// decisionRef is the rule the engine evaluates; resultVar is the variable
// the full query binds it to.
var decisionRef = ast.MustParseRef(Query)

const resultVar = ast.Var("decision")

// prepare compiles the policy modules and the query once, as
// rego.PrepareForEval does (it does: same compiler settings and checks),
// and keeps what topdown needs to evaluate them.
func prepare(ctx context.Context, p *parsed) (*Version, error) {
	compiler := ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithUseTypeCheckAnnotations(true).
		WithEnablePrintStatements(false)
	store := inmem.New()
	opts := []func(*rego.Rego){rego.Query(Query), rego.SetRegoVersion(ast.RegoV1), rego.Compiler(compiler), rego.Store(store)}
	for _, m := range p.policy {
		opts = append(opts, rego.ParsedModule(m))
	}
	if _, err := rego.New(opts...).PrepareForEval(ctx); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	// Nothing writes to the store: one read transaction serves every
	// evaluation of the version, concurrently.
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	v := &Version{Revision: p.revision, keywords: newKeywordMatcher(compiler)}
	for _, c := range []struct {
		q    *topdown.Query
		body ast.Body
	}{
		{&v.fast, ast.MustParseBody(Query + ".backend")},
		{&v.full, ast.NewBody(ast.Equality.Expr(ast.VarTerm(string(resultVar)), ast.NewTerm(decisionRef)))},
	} {
		query, err := compiler.QueryCompiler().Compile(c.body)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		*c.q = *topdown.NewQuery(query).WithCompiler(compiler).WithStore(store).WithTransaction(txn).
			WithBaseCache(noBaseCache{}).WithMetrics(noMetrics).WithCancel(neverCancel).
			WithRequestMetadata(noRequestMetadata)
	}
	return v, nil
}

// entrypoint is Query as the IR planner names it.
var entrypoint = strings.ReplaceAll(strings.TrimPrefix(Query, "data."), ".", "/")

// chooseEvaluator plans the policy for policy/irvm and keeps the plan when
// it gives topdown's answer on every sample input; otherwise topdown
// evaluates this version (a policy using something the IR interpreter does
// not support, or a disagreement, which would be a bug: topdown is OPA's
// reference evaluator).
func (v *Version) chooseEvaluator(ctx context.Context, p *parsed, sc *stateCache) {
	v.Evaluator = "topdown"
	prog, err := irvm.Compile(ctx, p.policy, entrypoint, irvm.Options{})
	if err != nil {
		v.EvaluatorNote = err.Error()
		return
	}
	for _, s := range Samples() {
		in := sc.value(&s.Input, v.keywords)
		want, werr := v.evalTopdown(ctx, in)
		got, defined, gerr := prog.Eval(ctx, in)
		agree := (werr == nil) == (gerr == nil) && (want != nil) == defined
		if agree && want != nil {
			agree = want.Value.Compare(got) == 0
		}
		if !agree {
			v.EvaluatorNote = fmt.Sprintf("the IR plan and topdown disagree on sample %q", s.Name)
			return
		}
	}
	v.prog, v.Evaluator = prog, "irvm"
}

// Shared by every evaluation: the cancellation handle (OPA's default starts
// a goroutine per evaluation to watch the context; a decision takes
// microseconds, so evalValue checks the context once, before), no OPA
// metrics (the engine keeps its own), and the request metadata map OPA
// hands to custom built-ins (guardian has none; OPA would allocate one).
var (
	neverCancel       = topdown.NewCancel()
	noMetrics         = metrics.NoOp()
	noRequestMetadata = map[string]any{}
)

// evaluation is the reusable state of one evaluation (pooled).
type evaluation struct {
	q      topdown.Query
	input  ast.Term
	vc     *virtualCache
	result *ast.Term
	iter   func(topdown.QueryResult) error
}

var evalPool = sync.Pool{New: func() any {
	e := &evaluation{vc: newVirtualCache()}
	e.iter = func(qr topdown.QueryResult) error {
		e.result = qr[resultVar]
		return nil
	}
	return e
}}

// evalValue evaluates the decision on an input document with the IR plan
// when the version has one (see chooseEvaluator), else with topdown. Both
// check the context once, before.
func (v *Version) evalValue(ctx context.Context, input ast.Value) (*ast.Term, error) {
	if v.prog == nil {
		return v.evalTopdown(ctx, input)
	}
	val, defined, err := v.prog.Eval(ctx, input)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrEval, err)
	case !defined:
		return nil, ErrUndefined
	}
	return ast.NewTerm(val), nil
}

// evalTopdown evaluates the decision with topdown directly: the rego package's PreparedEvalQuery.Eval costs some twenty
// allocations more per decision (options, result sets, a transaction, a
// cancellation goroutine, OPA's virtual cache). The per-evaluation state
// is pooled.
//
// The fast query asks for decision.backend and reads the decision from the
// virtual cache, where OPA puts the value of a complete rule when it has
// evaluated it: binding the whole object to a query variable would make
// OPA copy it once more. A decision that is not a complete rule (partial
// object rules) is not in the cache: the full query then evaluates it.
func (v *Version) evalTopdown(ctx context.Context, input ast.Value) (*ast.Term, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEval, err)
	}
	e := evalPool.Get().(*evaluation)
	defer func() {
		e.q, e.input.Value, e.result = topdown.Query{}, nil, nil
		e.vc.reset()
		evalPool.Put(e)
	}()
	e.input.Value = input
	e.q = v.fast
	if err := e.q.WithInput(&e.input).WithVirtualCache(e.vc).Iter(ctx, e.iter); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEval, err)
	}
	t, undefined := e.vc.Get(decisionRef)
	switch {
	case t != nil:
		return t, nil
	case undefined:
		return nil, ErrUndefined
	}
	e.vc.reset()
	e.q = v.full
	if err := e.q.WithInput(&e.input).WithVirtualCache(e.vc).Iter(ctx, e.iter); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEval, err)
	}
	if e.result == nil {
		return nil, ErrUndefined
	}
	return e.result, nil
}

// eval evaluates the version on in and validates the decision.
func (v *Version) eval(ctx context.Context, sc *stateCache, in *Input) (Decision, error) {
	t, err := v.evalValue(ctx, sc.value(in, v.keywords))
	if err != nil {
		return Decision{}, err
	}
	d, err := parseDecision(t)
	if err != nil {
		return d, err
	}
	if d.Backend == BackendOllama && !in.State.Ollama.Configured {
		return d, fmt.Errorf("%w: backend ollama but no Ollama is configured", ErrMalformed)
	}
	d.Revision = v.Revision
	return d, nil
}

// EvalInput evaluates an input document given as JSON-like Go values (as
// `guardian policy eval` reads it from a file) and returns the decision.
// The document is used as it is: no keyword_task is added.
func (v *Version) EvalInput(ctx context.Context, input any) (Decision, error) {
	val, err := ast.InterfaceToValue(input)
	if err != nil {
		return Decision{}, fmt.Errorf("policy: input: %w", err)
	}
	t, err := v.evalValue(ctx, val)
	if err != nil {
		return Decision{}, err
	}
	d, err := parseDecision(t)
	d.Revision = v.Revision
	return d, err
}
