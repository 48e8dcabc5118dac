package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// virtualCache is a [topdown.VirtualCache] made for small policies and
// reused across evaluations (see evaluation): the values of the rules entered
// during one decision, as flat entries searched linearly, their refs
// copied into one arena. OPA's default cache is a trie of hash maps built
// anew for every evaluation, which costs a handful of allocations per rule
// entered; a decision enters a dozen rules, so a linear scan is cheaper.
type virtualCache struct {
	arena   []*ast.Term // the terms of every entry's ref, back to back
	entries []vcEntry
	frames  []int // index of the first entry of each frame; the last is active
}

type vcEntry struct {
	off, n    int32 // ref = arena[off : off+n]
	undefined bool
	value     *ast.Term
}

func newVirtualCache() *virtualCache {
	return &virtualCache{
		arena:   make([]*ast.Term, 0, 128),
		entries: make([]vcEntry, 0, 32),
		frames:  append(make([]int, 0, 4), 0),
	}
}

// reset empties c for the next evaluation, dropping its references to the
// last one's terms.
func (c *virtualCache) reset() {
	clear(c.arena)
	clear(c.entries)
	c.arena, c.entries, c.frames = c.arena[:0], c.entries[:0], append(c.frames[:0], 0)
}

// Push implements [topdown.VirtualCache.Push].
func (c *virtualCache) Push() { c.frames = append(c.frames, len(c.entries)) }

// Pop implements [topdown.VirtualCache.Pop].
func (c *virtualCache) Pop() {
	top := c.frames[len(c.frames)-1]
	if len(c.frames) > 1 {
		c.frames = c.frames[:len(c.frames)-1]
	}
	if top < len(c.entries) {
		off := c.entries[top].off
		clear(c.arena[off:])
		clear(c.entries[top:])
		c.arena, c.entries = c.arena[:off], c.entries[:top]
	}
}

// find returns the index of ref's entry in the active frame, or -1.
func (c *virtualCache) find(ref ast.Ref) int {
	n := int32(len(ref))
	for i := len(c.entries) - 1; i >= c.frames[len(c.frames)-1]; i-- {
		e := &c.entries[i]
		if e.n != n {
			continue
		}
		key := c.arena[e.off : e.off+n]
		// The last term (a rule name, usually) tells entries apart soonest.
		j := n - 1
		for ; j >= 0 && (key[j] == ref[j] || key[j].Equal(ref[j])); j-- {
		}
		if j < 0 {
			return i
		}
	}
	return -1
}

// Get implements [topdown.VirtualCache.Get].
func (c *virtualCache) Get(ref ast.Ref) (*ast.Term, bool) {
	i := c.find(ref)
	if i < 0 {
		return nil, false
	}
	e := &c.entries[i]
	if e.undefined {
		return nil, true
	}
	return e.value, false
}

// Put implements [topdown.VirtualCache.Put]: value nil records an
// undefined result.
func (c *virtualCache) Put(ref ast.Ref, value *ast.Term) {
	if i := c.find(ref); i >= 0 {
		e := &c.entries[i]
		if value == nil {
			e.undefined = true
		} else {
			e.value = value
		}
		return
	}
	// The ref may be a slice of the evaluator's scratch space: copy it.
	off := int32(len(c.arena))
	c.arena = append(c.arena, ref...)
	c.entries = append(c.entries, vcEntry{off: off, n: int32(len(ref)), undefined: value == nil, value: value})
}

// Keys implements [topdown.VirtualCache.Keys]: the refs with a value in
// the active frame.
func (c *virtualCache) Keys() []ast.Ref {
	var out []ast.Ref
	for _, e := range c.entries[c.frames[len(c.frames)-1]:] {
		if e.value != nil {
			out = append(out, ast.Ref(c.arena[e.off:e.off+e.n]).Copy())
		}
	}
	return out
}

// noBaseCache is a [topdown.BaseCache] that keeps nothing: policies read
// no base documents (the store is empty), so OPA's per-evaluation cache
// would only cost allocations.
type noBaseCache struct{}

func (noBaseCache) Get(ast.Ref) ast.Value  { return nil }
func (noBaseCache) Put(ast.Ref, ast.Value) {}

var (
	_ topdown.VirtualCache = (*virtualCache)(nil)
	_ topdown.BaseCache    = noBaseCache{}
)
