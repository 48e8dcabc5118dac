package irvm

import "github.com/open-policy-agent/opa/v1/ast"

// Rules read the same input fields over and over: every rule body starts
// again from input (DotStmt input "request", then DotStmt "model"). The
// input document never changes during an evaluation except inside a
// WithStmt, so the value of a path of constant keys under input is the
// same wherever it is read. cachePaths gives each such path an id and
// turns its DotStmts into opDotPath, which look the value up once per
// evaluation and WithStmt scope (pushScope), as rules are memoized.

// pathKey is a path: its parent's id and its last key.
type pathKey struct {
	parent int
	key    string
}

// pathTable numbers the input paths of a Program; 0 is input itself.
type pathTable struct {
	ids map[pathKey]int
}

func (t *pathTable) id(parent int, key string) int {
	k := pathKey{parent, key}
	if id, ok := t.ids[k]; ok {
		return id
	}
	id := len(t.ids) + 1
	t.ids[k] = id
	return id
}

// size is the number of path slots an evaluation needs per scope, slot 0
// for the input document.
func (t *pathTable) size() int { return len(t.ids) + 1 }

// cachePaths rewrites fn's DotStmts on input paths. Local 0 is the input
// document in plans and, by the planner's convention (input and data are
// the first two arguments), in functions.
func cachePaths(fn *function, t *pathTable) {
	if len(fn.params) == 0 || fn.params[0] != 0 {
		return
	}
	for _, b := range fn.blocks {
		cacheBlockPaths(b, t)
	}
}

// cacheBlockPaths follows, through one block, which locals hold which
// input path. A nested block starts again from input alone.
func cacheBlockPaths(b *block, t *pathTable) {
	known := map[int32]int{0: 0}
	for i := range b.stmts {
		s := &b.stmts[i]
		if s.body != nil {
			cacheBlockPaths(s.body, t)
		}
		for _, sub := range s.blocks {
			cacheBlockPaths(sub, t)
		}
		if s.body != nil || s.blocks != nil {
			clear(known)
			known[0] = 0
			continue
		}
		path, isPath := -1, false
		switch s.op {
		case opDot:
			if parent, ok := known[s.a.local]; ok && s.b.isConst() {
				if key, ok := s.b.c.Value.(ast.String); ok {
					path, isPath = t.id(parent, string(key)), true
					s.op, s.n = opDotPath, int32(path)
				}
			}
		case opAssignVar:
			if !s.a.isConst() {
				path, isPath = known[s.a.local]
			}
		}
		if s.target == 0 { // never, for plans of the planner
			return
		}
		delete(known, s.target)
		if s.op == opScan {
			delete(known, s.value)
		}
		if isPath {
			known[s.target] = path
		}
	}
}

// dotPath runs an opDotPath: the cached value of the path, or the DotStmt.
// Slot 0 of a scope holds the input document the scope's paths are under:
// a function called on another document (never, for plans of the planner)
// does not use the cache.
func (e *evaluation) dotPath(fr []*ast.Term, s *stmt) bool {
	root := &e.paths[e.pathTop]
	cached := *root == fr[0]
	if *root == nil {
		*root, cached = fr[0], true
	}
	slot := &e.paths[e.pathTop+int(s.n)]
	if cached && *slot != nil {
		fr[s.target] = *slot
		return true
	}
	src := fr[s.a.local]
	if src == nil {
		return false
	}
	v := src.Get(s.b.c)
	if v == nil {
		return false
	}
	if cached {
		*slot = v
	}
	fr[s.target] = v
	return true
}
