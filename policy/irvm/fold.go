package irvm

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// The planner builds every composite literal at run time: MakeObjectStmt,
// then one ObjectInsertStmt per key (ArrayAppendStmt, SetAddStmt), with
// the elements' own statements interleaved. optimizeFunc rewrites such a
// construction into one statement that builds the value at once (fusion),
// and a literal whose elements are all constants into the value itself,
// built once per Program (folding). A folded value is shared by every
// evaluation: it is never modified, as only values an evaluation built
// itself may be (evaluation.mutable).

// optimizeFunc fuses and folds fn's literals.
func optimizeFunc(fn *function) {
	walkBlocks(fn.blocks, fuse)
	mutated := map[int32]bool{}
	walkBlocks(fn.blocks, func(b *block) {
		for i := range b.stmts {
			if s := &b.stmts[i]; mutation(s.op) {
				mutated[s.target] = true
			}
		}
	})
	walkBlocks(fn.blocks, func(b *block) { fold(b, mutated) })
	// A literal the function may modify is recorded as the evaluation's
	// own when built (n = 1), as MakeObject and friends always are.
	if len(mutated) > 0 {
		walkBlocks(fn.blocks, func(b *block) {
			for i := range b.stmts {
				switch s := &b.stmts[i]; s.op {
				case opMakeObjectItems, opMakeArrayItems, opMakeSetItems:
					s.n = 1
				}
			}
		})
	}
}

// walkBlocks calls f on every block, nested ones first.
func walkBlocks(bs []*block, f func(*block)) {
	for _, b := range bs {
		for i := range b.stmts {
			s := &b.stmts[i]
			if s.body != nil {
				walkBlocks([]*block{s.body}, f)
			}
			walkBlocks(s.blocks, f)
		}
		f(b)
	}
}

// fuse rewrites, in one block, each MakeObject/MakeArray/MakeSet followed
// by insertions into it into one statement at the last insertion. Between
// them there may only be statements that cannot fail, do not touch the new
// value and do not assign the locals inserted, so moving its construction
// down is invisible. Object keys must be distinct constants.
func fuse(b *block) {
	for i := range b.stmts {
		mk := &b.stmts[i]
		var ins opcode
		switch mk.op {
		case opMakeObject:
			ins = opObjectInsert
		case opMakeArray:
			ins = opArrayAppend
		case opMakeSet:
			ins = opSetAdd
		default:
			continue
		}
		l := mk.target
		var run []int
		inserted := map[int32]bool{} // locals the run inserts
		for j := i + 1; j < len(b.stmts); j++ {
			s := &b.stmts[j]
			if s.target == l && (s.op == ins || ins == opObjectInsert && s.op == opObjectInsertOnce) {
				if usesLocal(s.a, l) || usesLocal(s.b, l) || ins == opObjectInsert && !distinctKey(b, run, s) {
					break
				}
				run = append(run, j)
				for _, o := range [2]operand{s.a, s.b} {
					if !o.isConst() {
						inserted[o.local] = true
					}
				}
				continue
			}
			if touches(s, l) || !pure(s) || inserted[s.target] && !mutation(s.op) {
				break
			}
		}
		if len(run) == 0 {
			continue
		}
		last := &b.stmts[run[len(run)-1]]
		fused := newStmt(opNop)
		fused.target, fused.loc = l, mk.loc
		switch mk.op {
		case opMakeObject:
			fused.op = opMakeObjectItems
		case opMakeArray:
			fused.op = opMakeArrayItems
		case opMakeSet:
			fused.op = opMakeSetItems
		}
		for _, j := range run {
			s := &b.stmts[j]
			if mk.op == opMakeObject {
				fused.keys = append(fused.keys, s.a.c)
				fused.args = append(fused.args, s.b)
			} else {
				fused.args = append(fused.args, s.a)
			}
			b.stmts[j] = newStmt(opNop)
		}
		*mk = newStmt(opNop)
		*last = fused
	}
	compact(b)
}

// distinctKey reports whether s inserts a constant key that none of the
// insertions in run inserts.
func distinctKey(b *block, run []int, s *stmt) bool {
	if !s.a.isConst() {
		return false
	}
	for _, j := range run {
		if b.stmts[j].a.c.Equal(s.a.c) {
			return false
		}
	}
	return true
}

func usesLocal(o operand, l int32) bool { return o.local == l }

// mutation reports whether op modifies the value of its target (rather
// than assigning the local).
func mutation(op opcode) bool {
	switch op {
	case opObjectInsert, opObjectInsertOnce, opArrayAppend, opSetAdd:
		return true
	}
	return false
}

// touches reports whether s reads or writes local l, or may (nested
// blocks, calls).
func touches(s *stmt, l int32) bool {
	if s.target == l || usesLocal(s.a, l) || usesLocal(s.b, l) {
		return true
	}
	for _, a := range s.args {
		if usesLocal(a, l) {
			return true
		}
	}
	return s.body != nil || s.blocks != nil || len(s.cargs) > 0
}

// pure reports whether s can neither be undefined nor affect anything but
// its target (insertions fail only on malformed plans).
func pure(s *stmt) bool {
	switch s.op {
	case opNop, opConst, opAssignVar, opMakeArray, opMakeObject, opMakeSet,
		opMakeArrayItems, opMakeObjectItems, opMakeSetItems,
		opObjectInsert, opObjectInsertOnce, opArrayAppend, opSetAdd:
		return true
	}
	return false
}

func compact(b *block) {
	out := b.stmts[:0]
	for _, s := range b.stmts {
		if s.op != opNop {
			out = append(out, s)
		}
	}
	clear(b.stmts[len(out):])
	b.stmts = out
}

// fold replaces, in one block, fused literals whose elements are
// constants by the values, built now. A local is known to hold a constant
// from an opConst until the next statement that may write it; a literal
// is not folded when its local is modified anywhere in the function.
func fold(b *block, mutated map[int32]bool) {
	known := map[int32]*ast.Term{}
	constant := func(o operand) *ast.Term {
		if o.isConst() {
			return o.c
		}
		return known[o.local]
	}
	for i := range b.stmts {
		s := &b.stmts[i]
		switch s.op {
		case opConst:
			known[s.target] = s.k
			continue
		case opMakeObjectItems, opMakeArrayItems, opMakeSetItems:
			if v := literal(s, constant); v != nil && !mutated[s.target] {
				c := newStmt(opConst)
				c.target, c.k, c.loc = s.target, v, s.loc
				*s = c
				known[s.target] = v
				continue
			}
		}
		if s.body != nil || s.blocks != nil {
			clear(known)
			continue
		}
		delete(known, s.target)
		if s.op == opScan {
			delete(known, s.value)
		}
	}
}

// literal builds s's value if all its elements are constants.
func literal(s *stmt, constant func(operand) *ast.Term) *ast.Term {
	elems := make([]*ast.Term, len(s.args))
	for i, a := range s.args {
		if elems[i] = constant(a); elems[i] == nil {
			return nil
		}
	}
	switch s.op {
	case opMakeObjectItems:
		items := make([][2]*ast.Term, len(elems))
		for i := range items {
			items[i] = [2]*ast.Term{s.keys[i], elems[i]}
		}
		return ast.NewTerm(ast.NewObject(items...))
	case opMakeArrayItems:
		return ast.ArrayTerm(elems...)
	}
	return ast.SetTerm(elems...)
}

// unwrapResult rewrites the end of an entrypoint's plan, which wraps the
// value in {"result": value} for the result set, to hand over the value
// itself.
func unwrapResult(b *block) {
	for i := 1; i < len(b.stmts); i++ {
		mk, add := &b.stmts[i-1], &b.stmts[i]
		if add.op == opResultSetAdd && add.a.local == mk.target && mk.op == opMakeObjectItems &&
			len(mk.keys) == 1 && mk.keys[0].Equal(resultKey) && mk.args[0].local != mk.target {
			r := newStmt(opResult)
			r.a, r.loc = mk.args[0], add.loc
			*add, *mk = r, newStmt(opNop)
		}
	}
	compact(b)
	for i := range b.stmts {
		s := &b.stmts[i]
		if s.body != nil {
			unwrapResult(s.body)
		}
		for _, sub := range s.blocks {
			unwrapResult(sub)
		}
	}
}
