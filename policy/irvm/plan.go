package irvm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/compile"
	"github.com/open-policy-agent/opa/v1/ir"
)

// Plan turns parsed Rego modules (file name to module, test files left
// out) into OPA's intermediate representation with one plan per
// entrypoint, named as given ("guardian/route/decision" plans
// data.guardian.route.decision). It uses OPA's public compile package with
// the "plan" target, as `opa build -t plan` does, and decodes the plan.json
// it produces. The modules are copied: the caller's are not modified.
func Plan(ctx context.Context, modules map[string]*ast.Module, entrypoints ...string) (*ir.Policy, error) {
	if len(entrypoints) == 0 {
		return nil, errors.New("irvm: plan: no entrypoint")
	}
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	sort.Strings(names)
	b := &bundle.Bundle{}
	b.SetRegoVersion(ast.RegoV1)
	b.Manifest.Init()
	for _, name := range names {
		m := modules[name]
		if m == nil {
			return nil, fmt.Errorf("irvm: plan: module %q is nil", name)
		}
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: name, Path: name, Parsed: m.Copy()})
	}
	c := compile.New().
		WithTarget(compile.TargetPlan).
		WithRegoVersion(ast.RegoV1).
		WithEntrypoints(entrypoints...).
		WithPruneUnused(true).
		WithBundle(b)
	if err := c.Build(ctx); err != nil {
		return nil, fmt.Errorf("irvm: plan: %w", err)
	}
	for _, pm := range c.Bundle().PlanModules {
		if pm.Path != bundle.PlanFile {
			continue
		}
		var p ir.Policy
		dec := json.NewDecoder(bytes.NewReader(pm.Raw))
		dec.UseNumber()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("irvm: plan: decoding %s: %w", pm.Path, err)
		}
		return &p, nil
	}
	return nil, fmt.Errorf("irvm: plan: the compiler produced no %s", bundle.PlanFile)
}
