package irvm

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// exec results. A block returns ctlDone when it ran to its end, ctlReturn
// when a ReturnLocalStmt ran, and n >= 0 when it ended early: n more
// enclosing blocks are to end (0: only this one, as an undefined
// statement or BreakStmt{Index: 0} does).
const (
	ctlDone   = -1
	ctlReturn = -2
)

// get reads an operand.
func get(fr []*ast.Term, o *operand) *ast.Term {
	if o.local >= 0 {
		return fr[o.local]
	}
	return o.c
}

// exec runs a block on the frame fr.
func (e *evaluation) exec(fr []*ast.Term, b *block) (int, error) {
	for i := range b.stmts {
		s := &b.stmts[i]
		switch s.op {
		case opDot:
			src := get(fr, &s.a)
			key := get(fr, &s.b)
			if src == nil || key == nil {
				return 0, nil
			}
			v := src.Get(key)
			if v == nil {
				return 0, nil
			}
			fr[s.target] = v
		case opDotPath:
			if !e.dotPath(fr, s) {
				return 0, nil
			}
		case opAssignVar:
			fr[s.target] = get(fr, &s.a)
		case opConst:
			fr[s.target] = s.k
		case opEqual, opNotEqual:
			a, b := get(fr, &s.a), get(fr, &s.b)
			if a == nil || b == nil || a.Equal(b) != (s.op == opEqual) {
				return 0, nil
			}
		case opIsDefined:
			if fr[s.a.local] == nil {
				return 0, nil
			}
		case opIsUndefined:
			if fr[s.a.local] != nil {
				return 0, nil
			}
		case opResetLocal:
			fr[s.target] = nil
		case opAssignVarOnce:
			v := get(fr, &s.a)
			if old := fr[s.target]; old != nil && !old.Equal(v) {
				return 0, e.conflict(s, "a rule or function produced two values")
			}
			fr[s.target] = v
		case opCall:
			v, err := e.call(s.fn, fr, s.args)
			if err != nil {
				return 0, err
			}
			if v == nil {
				return 0, nil
			}
			fr[s.target] = v
		case opBuiltin:
			v, err := e.callBuiltin(fr, s)
			if err != nil {
				return 0, err
			}
			if v == nil {
				return 0, nil
			}
			if !s.bi.void {
				fr[s.target] = v
			}
		case opBlock:
			for _, sub := range s.blocks {
				r, err := e.exec(fr, sub)
				if err != nil || r == ctlReturn {
					return r, err
				}
				if r > 0 {
					return r - 1, nil
				}
			}
		case opBreak:
			return int(s.n), nil
		case opUndefined:
			return 0, nil
		case opReturn:
			e.ret = fr[s.a.local]
			return ctlReturn, nil
		case opNot:
			r, err := e.exec(fr, s.body)
			switch {
			case err != nil || r == ctlReturn:
				return r, err
			case r == ctlDone: // the negated body held
				return 0, nil
			case r > 0:
				return r - 1, nil
			}
		case opScan:
			r, err := e.scan(fr, s)
			if err != nil || r != ctlDone {
				return r, err
			}
		case opWith:
			r, err := e.with(fr, s)
			if err != nil || r != ctlDone {
				return r, err
			}
		default:
			r, err := e.exec2(fr, s)
			if err != nil || r != ctlDone {
				return r, err
			}
		}
	}
	return ctlDone, nil
}

// exec2 runs the statements that build values, less frequent than those of
// exec. It returns ctlDone to go on, or 0 for undefined.
func (e *evaluation) exec2(fr []*ast.Term, s *stmt) (int, error) {
	switch s.op {
	case opNop:
	case opMakeObject:
		fr[s.target] = e.own(ast.NewTerm(ast.NewObject()))
	case opMakeArray:
		fr[s.target] = e.own(ast.NewTerm(ast.NewArrayWithCapacity(int(s.n))))
	case opMakeSet:
		fr[s.target] = e.own(ast.NewTerm(ast.NewSet()))
	case opMakeObjectItems:
		return e.makeObject(fr, s)
	case opMakeArrayItems, opMakeSetItems:
		return e.makeCollection(fr, s)
	case opObjectInsert, opObjectInsertOnce:
		return e.objectInsert(fr, s)
	case opArrayAppend:
		t, err := e.mutable(fr, s)
		if err != nil {
			return 0, err
		}
		arr, ok := t.Value.(*ast.Array)
		v := get(fr, &s.a)
		if !ok || v == nil {
			return 0, e.malformed(s, "append to a non-array or of an undefined value")
		}
		t.Value = arr.Append(v)
	case opSetAdd:
		t, err := e.mutable(fr, s)
		if err != nil {
			return 0, err
		}
		set, ok := t.Value.(ast.Set)
		v := get(fr, &s.a)
		if !ok || v == nil {
			return 0, e.malformed(s, "add to a non-set or of an undefined value")
		}
		set.Add(v)
	case opLen:
		n, ok := length(get(fr, &s.a))
		if !ok {
			return 0, nil
		}
		fr[s.target] = ast.InternedTerm(n)
	case opIsArray, opIsObject, opIsSet:
		if !isType(s.op, fr[s.a.local]) {
			return 0, nil
		}
	case opObjectMerge:
		return e.merge(fr, s)
	case opCallDynamic:
		return e.callDynamic(fr, s)
	case opResultSetAdd:
		return e.addResult(s, get(fr, &s.a), true)
	case opResult:
		return e.addResult(s, get(fr, &s.a), false)
	default:
		return 0, e.malformed(s, fmt.Sprintf("opcode %d", s.op))
	}
	return ctlDone, nil
}

// call runs a plan function on the operands args. A nil term is
// undefined.
func (e *evaluation) call(fn *function, fr []*ast.Term, args []operand) (*ast.Term, error) {
	if fn.memo {
		if v, ok := e.memoGet(fn, get(fr, &args[0]), get(fr, &args[1])); ok {
			return v, nil
		}
	}
	callee, m := e.stack.push(fn.nlocals)
	for i, p := range fn.params {
		callee[p] = get(fr, &args[i])
	}
	v, err := e.body(fn, callee)
	if err == nil && fn.memo {
		e.memoPut(fn, get(fr, &args[0]), get(fr, &args[1]), v)
	}
	e.stack.pop(m, callee)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// body runs a function's blocks until one returns.
func (e *evaluation) body(fn *function, fr []*ast.Term) (*ast.Term, error) {
	for _, b := range fn.blocks {
		r, err := e.exec(fr, b)
		if err != nil {
			return nil, err
		}
		if r == ctlReturn {
			v := e.ret
			e.ret = nil
			return v, nil
		}
		if r > 0 {
			return nil, fmt.Errorf("%w: break out of function %s", errMalformed, fn.name)
		}
	}
	return nil, nil
}

// callDynamic calls the function whose path the statement's operands
// spell, as OPA's Wasm target does: no such function is undefined (the
// plan then reads the base document); an undefined result ends three
// enclosing blocks as well (the planner's lookup structure).
func (e *evaluation) callDynamic(fr []*ast.Term, s *stmt) (int, error) {
	node := e.p.dynamic
	for i := range s.args {
		t := get(fr, &s.args[i])
		if t == nil || node == nil {
			return 0, nil
		}
		str, ok := t.Value.(ast.String)
		if !ok {
			return 0, nil
		}
		node = node.children[string(str)]
	}
	if node == nil || node.fn == nil {
		return 0, nil
	}
	if len(s.cargs) != len(node.fn.params) {
		return 0, e.malformed(s, "dynamic call with the wrong number of arguments")
	}
	v, err := e.call(node.fn, fr, s.cargs)
	if err != nil {
		return 0, err
	}
	if v == nil {
		return 3, nil
	}
	fr[s.target] = v
	return ctlDone, nil
}

func (e *evaluation) addResult(s *stmt, v *ast.Term, wrapped bool) (int, error) {
	if v == nil {
		return 0, e.malformed(s, "undefined result")
	}
	if wrapped {
		obj, ok := v.Value.(ast.Object)
		if !ok || obj.Len() != 1 || obj.Get(resultKey) == nil {
			return 0, e.malformed(s, "a result that is not {\"result\": value}")
		}
		v = obj.Get(resultKey)
	}
	for _, r := range e.results {
		if r.Equal(v) {
			return ctlDone, nil
		}
	}
	e.results = append(e.results, v)
	return ctlDone, nil
}

var resultKey = ast.StringTerm("result")

// own records t, a collection this evaluation built, as one it may modify.
func (e *evaluation) own(t *ast.Term) *ast.Term {
	e.owned[t] = struct{}{}
	return t
}

// mutable returns the value s modifies, which must be one this evaluation
// built: never the input, a literal built once for every evaluation (fold.go)
// or a built-in's result. The planner only modifies what it builds.
func (e *evaluation) mutable(fr []*ast.Term, s *stmt) (*ast.Term, error) {
	t := fr[s.target]
	if _, ok := e.owned[t]; !ok || t == nil {
		return nil, e.malformed(s, "modification of a value the evaluation did not build")
	}
	return t, nil
}

// conflict returns a conflict error at s's location.
func (e *evaluation) conflict(s *stmt, msg string) error {
	return fmt.Errorf("%w: %s%s", ErrConflict, e.where(s), msg)
}

func (e *evaluation) malformed(s *stmt, msg string) error {
	return fmt.Errorf("%w: %s%s", errMalformed, e.where(s), msg)
}

func (e *evaluation) where(s *stmt) string {
	if s.loc == nil || s.loc.Row == 0 {
		return ""
	}
	file := "?"
	if s.loc.File >= 0 && s.loc.File < len(e.p.files) {
		file = e.p.files[s.loc.File]
	}
	return fmt.Sprintf("%s:%d:%d: ", file, s.loc.Row, s.loc.Col)
}
