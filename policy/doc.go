// Package policy decides, per request, where a Messages request goes: which
// backend (Claude or the local Ollama), which model, with what priority and
// queueing budget, whether the cache may answer it, and why. The decision is
// an OPA Rego policy (package guardian.route, rule decision) compiled once
// per policy version — planned to OPA's IR and run by policy/irvm, with
// OPA's topdown evaluator as the fallback when the plan cannot be loaded or
// disagrees with topdown on a sample input — on an input built straight
// from typed Go values (no JSON round-trip).
//
// The input and output documents are described in schema/input.json and
// schema/output.json and in the README ("Routing policies"). The bundled
// policies live in rego/ with their unit tests; a policy directory given in
// guardian.yaml replaces them and is hot-reloaded by [Watcher]: every new
// version is compiled, its Rego tests run, sample inputs evaluated, and only
// then swapped in atomically. A bad version keeps the last good one.
package policy
