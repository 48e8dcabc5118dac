package irvm

import (
	"fmt"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// checkEvery is how many loop iterations pass between checks of the
// evaluation's context.
const checkEvery = 1024

// scan runs s's block for every element of its source: arrays in index
// order, objects and sets in key order (as topdown iterates them). Other
// values have no elements.
func (e *evaluation) scan(fr []*ast.Term, s *stmt) (int, error) {
	src := fr[s.a.local]
	if src == nil {
		return ctlDone, nil
	}
	switch v := src.Value.(type) {
	case *ast.Array:
		for i := 0; i < v.Len(); i++ {
			fr[s.target], fr[s.value] = ast.InternedTerm(i), v.Elem(i)
			if r, err := e.iteration(fr, s); err != nil || r != ctlDone {
				return r, err
			}
		}
	case ast.Object:
		it := v.KeysIterator()
		for k, ok := it.Next(); ok; k, ok = it.Next() {
			fr[s.target], fr[s.value] = k, v.Get(k)
			if r, err := e.iteration(fr, s); err != nil || r != ctlDone {
				return r, err
			}
		}
	case ast.Set:
		for _, k := range v.Slice() {
			fr[s.target], fr[s.value] = k, k
			if r, err := e.iteration(fr, s); err != nil || r != ctlDone {
				return r, err
			}
		}
	}
	return ctlDone, nil
}

// iteration runs a scan's block once: ctlDone to go on with the next
// element, anything else ends the scan.
func (e *evaluation) iteration(fr []*ast.Term, s *stmt) (int, error) {
	e.steps++
	if e.steps%checkEvery == 0 {
		if err := e.ctx.Err(); err != nil {
			return 0, fmt.Errorf("irvm: %w", err)
		}
	}
	r, err := e.exec(fr, s.body)
	switch {
	case err != nil || r == ctlReturn:
		return r, err
	case r > 0:
		return r - 1, nil
	}
	return ctlDone, nil
}

// with runs s's block with its local replaced by the value, or with the
// value upserted at the path into a copy of the local, then restores it.
// Functions and input paths evaluated inside see the new value: they get
// a new scope.
func (e *evaluation) with(fr []*ast.Term, s *stmt) (int, error) {
	v := get(fr, &s.a)
	if v == nil {
		return 0, nil
	}
	old := fr[s.target]
	if len(s.keys) == 0 {
		fr[s.target] = v
	} else {
		fr[s.target] = upsert(old, s.keys, v)
	}
	e.pushScope()
	r, err := e.exec(fr, s.body)
	e.popScope()
	fr[s.target] = old
	switch {
	case err != nil || r == ctlReturn:
		return r, err
	case r > 0:
		return r - 1, nil
	case r == 0:
		return 0, nil
	}
	return ctlDone, nil
}

// upsert returns a copy of root with v at path, making objects where the
// path is missing or not an object. root is not modified.
func upsert(root *ast.Term, path []*ast.Term, v *ast.Term) *ast.Term {
	out := ast.NewTerm(shallowCopy(root))
	cur := out.Value.(ast.Object)
	for _, k := range path[:len(path)-1] {
		child := ast.NewTerm(shallowCopy(cur.Get(k)))
		cur.Insert(k, child)
		cur = child.Value.(ast.Object)
	}
	cur.Insert(path[len(path)-1], v)
	return out
}

// shallowCopy returns a new object with t's keys and values, or an empty
// one when t is not an object.
func shallowCopy(t *ast.Term) ast.Object {
	var src ast.Object
	if t != nil {
		src, _ = t.Value.(ast.Object)
	}
	if src == nil {
		return ast.NewObject()
	}
	out := ast.NewObjectWithCapacity(src.Len() + 1)
	src.Foreach(out.Insert)
	return out
}

func (e *evaluation) objectInsert(fr []*ast.Term, s *stmt) (int, error) {
	t, err := e.mutable(fr, s)
	if err != nil {
		return 0, err
	}
	obj, ok := t.Value.(ast.Object)
	k, v := get(fr, &s.a), get(fr, &s.b)
	if !ok || k == nil || v == nil {
		return 0, e.malformed(s, "insert into a non-object or of an undefined key or value")
	}
	if s.op == opObjectInsertOnce {
		if old := obj.Get(k); old != nil {
			if !old.Equal(v) {
				return 0, e.conflict(s, "object keys must be unique")
			}
			return ctlDone, nil
		}
	}
	obj.Insert(k, v)
	return ctlDone, nil
}

// makeObject builds an object literal in one go (MakeObjectStmt followed
// by insertions of distinct constant keys).
func (e *evaluation) makeObject(fr []*ast.Term, s *stmt) (int, error) {
	items := e.items[:0] // ast.NewObject copies the pairs
	for i, k := range s.keys {
		v := get(fr, &s.args[i])
		if v == nil {
			return 0, e.malformed(s, "insert of an undefined value")
		}
		items = append(items, [2]*ast.Term{k, v})
	}
	fr[s.target] = ast.NewTerm(ast.NewObject(items...))
	if s.n == 1 {
		e.own(fr[s.target])
	}
	clear(items)
	e.items = items
	return ctlDone, nil
}

// makeCollection builds an array or set literal in one go.
func (e *evaluation) makeCollection(fr []*ast.Term, s *stmt) (int, error) {
	elems := make([]*ast.Term, len(s.args))
	for i := range elems {
		if elems[i] = get(fr, &s.args[i]); elems[i] == nil {
			return 0, e.malformed(s, "append of an undefined value")
		}
	}
	if s.op == opMakeArrayItems {
		fr[s.target] = ast.ArrayTerm(elems...)
	} else {
		fr[s.target] = ast.SetTerm(elems...)
	}
	if s.n == 1 {
		e.own(fr[s.target])
	}
	return ctlDone, nil
}

// merge merges two objects recursively; anything but two objects is a
// conflict, as the IR documents.
func (e *evaluation) merge(fr []*ast.Term, s *stmt) (int, error) {
	a, b := get(fr, &s.a), get(fr, &s.b)
	if a == nil || b == nil {
		return 0, e.malformed(s, "merge of an undefined value")
	}
	oa, ok1 := a.Value.(ast.Object)
	ob, ok2 := b.Value.(ast.Object)
	if !ok1 || !ok2 {
		return 0, e.conflict(s, "merge of a non-object")
	}
	m, ok := oa.Merge(ob)
	if !ok {
		return 0, e.conflict(s, "objects do not merge")
	}
	fr[s.target] = ast.NewTerm(m)
	return ctlDone, nil
}

// length is LenStmt: the size of a collection, the characters of a string.
func length(t *ast.Term) (int, bool) {
	if t == nil {
		return 0, false
	}
	switch v := t.Value.(type) {
	case *ast.Array:
		return v.Len(), true
	case ast.Object:
		return v.Len(), true
	case ast.Set:
		return v.Len(), true
	case ast.String:
		return utf8.RuneCountInString(string(v)), true
	}
	return 0, false
}

func isType(op opcode, t *ast.Term) bool {
	if t == nil {
		return false
	}
	switch t.Value.(type) {
	case *ast.Array:
		return op == opIsArray
	case ast.Object:
		return op == opIsObject
	case ast.Set:
		return op == opIsSet
	}
	return false
}
