package irvm

import "github.com/open-policy-agent/opa/v1/ast"

// chunkSize is the size of one chunk of the locals stack.
const chunkSize = 1024

// stack holds the locals of the functions being evaluated. It grows by
// chunks, so a frame never moves while it is in use.
type stack struct {
	chunks [][]*ast.Term
	cur    int // chunk in use
	top    int // its first free slot
}

// mark is the stack's state before a push.
type mark struct{ cur, top int }

// push returns a frame of n undefined locals.
func (s *stack) push(n int) ([]*ast.Term, mark) {
	m := mark{s.cur, s.top}
	if len(s.chunks) == 0 {
		s.chunks = append(s.chunks, make([]*ast.Term, max(chunkSize, n)))
	}
	if s.top+n > len(s.chunks[s.cur]) {
		s.cur++
		switch {
		case s.cur == len(s.chunks):
			s.chunks = append(s.chunks, make([]*ast.Term, max(chunkSize, n)))
		case len(s.chunks[s.cur]) < n:
			s.chunks[s.cur] = make([]*ast.Term, n)
		}
		s.top = 0
	}
	fr := s.chunks[s.cur][s.top : s.top+n : s.top+n]
	s.top += n
	return fr, m
}

// pop releases the frame pushed at m, clearing it: the next push gets
// undefined locals and the pool keeps no values alive.
func (s *stack) pop(m mark, fr []*ast.Term) {
	clear(fr)
	s.cur, s.top = m.cur, m.top
}

// memoGet returns fn's memoized value in the current scope, if it was
// called there on the same input and data documents (always, for plans of
// the planner).
func (e *evaluation) memoGet(fn *function, input, data *ast.Term) (*ast.Term, bool) {
	m := &e.memo[e.memoTop+fn.index]
	return m.v, m.done && m.input == input && m.data == data
}

func (e *evaluation) memoPut(fn *function, input, data, v *ast.Term) {
	e.memo[e.memoTop+fn.index] = memoEntry{done: true, input: input, data: data, v: v}
}

// pushScope starts a new, empty scope of memoized functions and cached
// input paths (a WithStmt's block).
func (e *evaluation) pushScope() {
	n := len(e.p.funcs)
	e.memoTop += n
	if need := e.memoTop + n; need > len(e.memo) {
		e.memo = append(e.memo, make([]memoEntry, need-len(e.memo))...)
	}
	n = e.p.npaths
	e.pathTop += n
	if need := e.pathTop + n; need > len(e.paths) {
		e.paths = append(e.paths, make([]*ast.Term, need-len(e.paths))...)
	}
}

// popScope ends the current scope.
func (e *evaluation) popScope() {
	n := len(e.p.funcs)
	clear(e.memo[e.memoTop : e.memoTop+n])
	e.memoTop -= n
	n = e.p.npaths
	clear(e.paths[e.pathTop : e.pathTop+n])
	e.pathTop -= n
}
