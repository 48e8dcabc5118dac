package irvm

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
)

// stmt translates one IR statement. Every statement type of package ir is
// handled; anything else is an error.
func (l *loader) stmt(x ir.Stmt) (stmt, error) {
	s := newStmt(opNop)
	s.loc = locationOf(x)
	var err error
	switch x := x.(type) {
	case *ir.NopStmt:
		s.op = opNop
	case *ir.ReturnLocalStmt:
		s.op = opReturn
		s.a, err = l.operand(ir.Operand{Value: x.Source})
	case *ir.CallStmt:
		err = l.call(x, &s)
	case *ir.CallDynamicStmt:
		s.op = opCallDynamic
		if s.args, err = l.operands(x.Path); err == nil {
			s.target, err = l.target(x.Result)
		}
		for _, a := range x.Args {
			if err == nil {
				s.cargs = append(s.cargs, localOperand(int32(a)))
				err = l.local(a)
			}
		}
	case *ir.BlockStmt:
		s.op = opBlock
		s.blocks, err = l.blocks(x.Blocks)
	case *ir.BreakStmt:
		s.op, s.n = opBreak, int32(min(x.Index, 1<<30))
	case *ir.DotStmt:
		err = l.dot(x, &s)
	case *ir.LenStmt:
		err = l.unary(opLen, x.Source, x.Target, &s)
	case *ir.ScanStmt:
		s.op = opScan
		err = l.scan(x, &s)
	case *ir.NotStmt:
		s.op = opNot
		s.body, err = l.block(x.Block)
	case *ir.WithStmt:
		err = l.with(x, &s)
	case *ir.AssignIntStmt:
		s.op, s.k = opConst, ast.InternedTerm(x.Value)
		s.target, err = l.target(x.Target)
	case *ir.AssignVarStmt:
		err = l.unary(opAssignVar, x.Source, x.Target, &s)
	case *ir.AssignVarOnceStmt:
		err = l.unary(opAssignVarOnce, x.Source, x.Target, &s)
	case *ir.ResetLocalStmt:
		s.op = opResetLocal
		s.target, err = l.target(x.Target)
	case *ir.MakeNullStmt:
		s.op, s.k = opConst, ast.InternedNullTerm
		s.target, err = l.target(x.Target)
	case *ir.MakeNumberIntStmt:
		s.op, s.k = opConst, ast.InternedTerm(x.Value)
		s.target, err = l.target(x.Target)
	case *ir.MakeNumberRefStmt:
		s.op = opConst
		if x.Index < 0 || x.Index >= len(l.strings) {
			return s, fmt.Errorf("%w: string constant %d out of range", errMalformed, x.Index)
		}
		if s.k, err = l.number(string(l.strings[x.Index].Value.(ast.String))); err == nil {
			s.target, err = l.target(x.Target)
		}
	case *ir.MakeArrayStmt:
		s.op, s.n = opMakeArray, min(max(x.Capacity, 0), 1024) // a hint
		s.target, err = l.target(x.Target)
	case *ir.MakeObjectStmt:
		s.op = opMakeObject
		s.target, err = l.target(x.Target)
	case *ir.MakeSetStmt:
		s.op = opMakeSet
		s.target, err = l.target(x.Target)
	case *ir.EqualStmt:
		err = l.binary(opEqual, x.A, x.B, &s)
	case *ir.NotEqualStmt:
		err = l.binary(opNotEqual, x.A, x.B, &s)
	case *ir.IsArrayStmt:
		err = l.typeCheck(opIsArray, x.Source, &s)
	case *ir.IsObjectStmt:
		err = l.typeCheck(opIsObject, x.Source, &s)
	case *ir.IsSetStmt:
		err = l.typeCheck(opIsSet, x.Source, &s)
	case *ir.IsDefinedStmt:
		s.op = opIsDefined
		s.a, err = l.operand(ir.Operand{Value: x.Source})
	case *ir.IsUndefinedStmt:
		s.op = opIsUndefined
		s.a, err = l.operand(ir.Operand{Value: x.Source})
	case *ir.ArrayAppendStmt:
		err = l.unary(opArrayAppend, x.Value, x.Array, &s)
	case *ir.ObjectInsertStmt:
		err = l.insert(opObjectInsert, x.Key, x.Value, x.Object, &s)
	case *ir.ObjectInsertOnceStmt:
		err = l.insert(opObjectInsertOnce, x.Key, x.Value, x.Object, &s)
	case *ir.ObjectMergeStmt:
		if err = l.binary(opObjectMerge, ir.Operand{Value: x.A}, ir.Operand{Value: x.B}, &s); err == nil {
			s.target, err = l.target(x.Target)
		}
	case *ir.SetAddStmt:
		err = l.unary(opSetAdd, x.Value, x.Set, &s)
	case *ir.ResultSetAddStmt:
		s.op = opResultSetAdd
		s.a, err = l.operand(ir.Operand{Value: x.Value})
	default:
		return s, fmt.Errorf("%w: statement type %T", ErrUnsupported, x)
	}
	return s, err
}

func locationOf(x ir.Stmt) *ir.Location {
	if x == nil {
		return nil
	}
	return x.GetLocation()
}

func (l *loader) dot(x *ir.DotStmt, s *stmt) error {
	src, err := l.operand(x.Source)
	if err != nil {
		return err
	}
	if s.b, err = l.operand(x.Key); err != nil {
		return err
	}
	if s.target, err = l.target(x.Target); err != nil {
		return err
	}
	s.op, s.a = opDot, src
	if src.isConst() { // strings and booleans have no members
		s.op = opUndefined
	}
	return nil
}

func (l *loader) scan(x *ir.ScanStmt, s *stmt) error {
	var err error
	if s.a, err = l.operand(ir.Operand{Value: x.Source}); err != nil {
		return err
	}
	if s.target, err = l.target(x.Key); err != nil {
		return err
	}
	if s.value, err = l.target(x.Value); err != nil {
		return err
	}
	s.body, err = l.block(x.Block)
	return err
}

func (l *loader) with(x *ir.WithStmt, s *stmt) error {
	var err error
	s.op = opWith
	if s.target, err = l.target(x.Local); err != nil {
		return err
	}
	if s.a, err = l.operand(x.Value); err != nil {
		return err
	}
	for _, i := range x.Path {
		if i < 0 || i >= len(l.strings) {
			return fmt.Errorf("%w: with path string %d out of range", errMalformed, i)
		}
		s.keys = append(s.keys, l.strings[i])
	}
	s.body, err = l.block(x.Block)
	return err
}

// unary translates a statement of one operand and a target local.
func (l *loader) unary(op opcode, src ir.Operand, target ir.Local, s *stmt) error {
	var err error
	s.op = op
	if s.a, err = l.operand(src); err != nil {
		return err
	}
	s.target, err = l.target(target)
	return err
}

func (l *loader) binary(op opcode, a, b ir.Operand, s *stmt) error {
	var err error
	s.op = op
	if s.a, err = l.operand(a); err != nil {
		return err
	}
	s.b, err = l.operand(b)
	return err
}

// typeCheck translates IsArray, IsObject and IsSet: a constant operand (a
// string or a boolean) is none of them.
func (l *loader) typeCheck(op opcode, src ir.Operand, s *stmt) error {
	var err error
	if s.a, err = l.operand(src); err != nil {
		return err
	}
	s.op = op
	if s.a.isConst() {
		s.op = opUndefined
	}
	return nil
}

func (l *loader) insert(op opcode, key, value ir.Operand, obj ir.Local, s *stmt) error {
	var err error
	s.op = op
	if s.a, err = l.operand(key); err != nil {
		return err
	}
	if s.b, err = l.operand(value); err != nil {
		return err
	}
	s.target, err = l.target(obj)
	return err
}

// call binds a call to a plan function or to a built-in.
func (l *loader) call(x *ir.CallStmt, s *stmt) error {
	var err error
	if s.args, err = l.operands(x.Args); err != nil {
		return err
	}
	if s.target, err = l.target(x.Result); err != nil {
		return err
	}
	if fn, ok := l.funcs[x.Func]; ok {
		if len(x.Args) != len(fn.params) {
			return fmt.Errorf("%w: call of %s with %d arguments, want %d", errMalformed, x.Func, len(x.Args), len(fn.params))
		}
		s.op, s.fn = opCall, fn
		return nil
	}
	bi, err := l.builtin(x.Func)
	if err != nil {
		return err
	}
	if len(x.Args) != bi.arity && !(bi.variadic && len(x.Args) > bi.arity) {
		return fmt.Errorf("%w: call of built-in %s with %d arguments, want %d", errMalformed, x.Func, len(x.Args), bi.arity)
	}
	s.op, s.bi = opBuiltin, bi
	return nil
}
