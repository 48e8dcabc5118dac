package irvm

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// bundledEntrypoint is the decision the gateway evaluates.
const bundledEntrypoint = "guardian/route/decision"

// readModules parses the non-test .rego files of fsys as policy.parse does.
func readModules(fsys fs.FS) (map[string]*ast.Module, error) {
	names, err := fs.Glob(fsys, "*.rego")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	mods := map[string]*ast.Module{}
	for _, name := range names {
		if strings.HasSuffix(path.Base(name), "_test.rego") {
			continue
		}
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		m, err := ast.ParseModuleWithOpts(name, string(text), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, err
		}
		mods[name] = m
	}
	return mods, nil
}

func bundledModules(tb testing.TB) map[string]*ast.Module {
	tb.Helper()
	mods, err := readModules(os.DirFS("../rego"))
	if err != nil {
		tb.Fatal(err)
	}
	return mods
}

// parseModules parses in-test sources, named by file.
func parseModules(tb testing.TB, sources map[string]string) map[string]*ast.Module {
	tb.Helper()
	mods := map[string]*ast.Module{}
	for name, src := range sources {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			tb.Fatal(err)
		}
		mods[name] = m
	}
	return mods
}

// reference evaluates a rule with OPA's topdown, prepared as
// policy.prepare prepares the gateway's query (same compiler settings),
// without strict built-in errors.
type reference struct {
	query topdown.Query
}

func newReference(tb testing.TB, modules map[string]*ast.Module, entrypoint string) *reference {
	tb.Helper()
	return newReferenceWithData(tb, modules, entrypoint, nil)
}

// newReferenceWithData is newReference with base documents (nil: none).
func newReferenceWithData(tb testing.TB, modules map[string]*ast.Module, entrypoint string, data ast.Value) *reference {
	tb.Helper()
	ctx := context.Background()
	ref := "data." + strings.ReplaceAll(entrypoint, "/", ".")
	compiler := ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithUseTypeCheckAnnotations(true).
		WithEnablePrintStatements(false)
	store := inmem.New()
	if data != nil {
		doc, err := ast.JSON(data)
		if err != nil {
			tb.Fatal(err)
		}
		store = inmem.NewFromObject(doc.(map[string]any))
	}
	opts := []func(*rego.Rego){rego.Query(ref), rego.SetRegoVersion(ast.RegoV1), rego.Compiler(compiler), rego.Store(store)}
	for _, m := range modules {
		opts = append(opts, rego.ParsedModule(m.Copy()))
	}
	if _, err := rego.New(opts...).PrepareForEval(ctx); err != nil {
		tb.Fatal(err)
	}
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	body := ast.NewBody(ast.Equality.Expr(ast.VarTerm("x"), ast.NewTerm(ast.MustParseRef(ref))))
	query, err := compiler.QueryCompiler().Compile(body)
	if err != nil {
		tb.Fatal(err)
	}
	return &reference{query: *topdown.NewQuery(query).WithCompiler(compiler).WithStore(store).WithTransaction(txn)}
}

// eval returns the rule's value on input; defined false when undefined.
func (r *reference) eval(ctx context.Context, input ast.Value) (ast.Value, bool, error) {
	q := r.query
	if input != nil {
		q.WithInput(ast.NewTerm(input))
	}
	var out []*ast.Term
	err := q.Iter(ctx, func(qr topdown.QueryResult) error {
		out = append(out, qr[ast.Var("x")])
		return nil
	})
	switch {
	case err != nil:
		return nil, false, err
	case len(out) == 0:
		return nil, false, nil
	case len(out) > 1:
		return nil, false, fmt.Errorf("%d results", len(out))
	}
	return out[0].Value, true, nil
}
