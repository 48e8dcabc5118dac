// Package irvm evaluates Rego policies compiled to OPA's intermediate
// representation (IR, package github.com/open-policy-agent/opa/v1/ir): a
// faster alternative to OPA's topdown evaluator for the gateway's
// per-request policy decision.
//
// Compile once per policy version, evaluate per request:
//
//	prog, err := irvm.Compile(ctx, modules, "guardian/route/decision", irvm.Options{})
//	...
//	value, defined, err := prog.Eval(ctx, input)
//
// [Compile] plans the modules for the entrypoint with OPA's own planner
// ([Plan]: the compile package's "plan" target, as `opa build -t plan`)
// and translates the plan once ([New]): operands resolved, calls bound to
// plan functions and to OPA's built-in implementations, literals whose
// elements are constants built once, object literals built in one step.
// A Program is immutable and safe for concurrent use; the state of an
// evaluation (locals, memoized rules) is pooled.
//
// Semantics follow the IR's documentation and OPA's Wasm compiler, the
// reference executor of plans:
//
//   - A block runs its statements in order. A statement that is undefined
//     (a missing key, a failed comparison, an undefined call) ends its
//     block; execution continues after the statement holding the block.
//     BreakStmt{Index: n} ends the current block and n enclosing ones.
//   - ScanStmt runs its block once per element of an array (in index
//     order), object or set (in key order, as topdown iterates); NotStmt
//     is defined when its block ends early; WithStmt runs its block with a
//     local replaced, or with a path under it upserted into a copy, and is
//     undefined when its block ends early.
//   - Functions of input and data alone (rules) are memoized within an
//     evaluation, and input fields read by constant paths are looked up
//     once; a WithStmt's block starts afresh.
//   - Equality and comparisons are Rego's (numbers by value).
//   - Built-ins are OPA's implementations (topdown.GetBuiltin), so every
//     built-in, and custom ones registered with topdown, work. As in
//     topdown without strict built-in errors, a built-in error makes the
//     call undefined, except topdown.Halt errors, which end the
//     evaluation; Options.StrictBuiltinErrors makes every built-in error
//     an evaluation error.
//   - Conflicts (a complete rule or function with two values, an object
//     with two values for a key, a merge of non-objects) are errors
//     wrapping [ErrConflict], as they are errors in topdown.
//
// Anything the interpreter does not support (an unknown statement type or
// built-in, a malformed operand) is an error from [New], never a wrong
// answer at evaluation time. A statement that would modify a shared
// constant, which the planner never emits, fails the evaluation.
package irvm
