package policy

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// keywordsRef is the policy's keyword table: an array of
// {"task": string, "words": [string]} in priority order (policy/rego/task.rego).
var keywordsRef = ast.MustParseRef("data.guardian.route.keywords")

// keywordMatcher finds, in one pass over a request's last user turn, the
// task of the first entry of the policy's keyword table with a word that
// occurs in it: input.request.keyword_task. Matching in Go costs about a
// microsecond for 1 KiB; the same in Rego (a contains call per word) cost
// most of a decision.
type keywordMatcher struct {
	tasks []*ast.Term // by entry: the task as a term, shared by every request
	// byFirst lists, by first byte, the words starting with it and the
	// entry each belongs to. pairs has a bit set for the first two bytes
	// of every word longer than one byte, so most positions of a text are
	// passed over at the cost of one bit test; single marks the bytes
	// that are words. Empty words occur everywhere: always is the first
	// entry with one, -1 if none.
	byFirst [256][]keyword
	pairs   [1 << 16 / 64]uint64
	single  [256]bool
	always  int
}

type keyword struct {
	word  string
	entry int
}

// newKeywordMatcher reads the keyword table from a compiled policy. It
// returns nil when the policy has no table or one the gateway cannot
// match for it (not a constant, or not of the documented shape): the input
// then has no keyword_task, and a policy that wants keywords matches them
// in Rego (the bundled one does).
func newKeywordMatcher(c *ast.Compiler) *keywordMatcher {
	rules := c.GetRulesExact(keywordsRef)
	if len(rules) == 0 {
		return nil
	}
	r := rules[0]
	if len(rules) > 1 || r.Else != nil || r.Head.Value == nil || !r.Head.Value.IsGround() || !isTrueBody(r.Body) {
		return nil
	}
	arr, ok := r.Head.Value.Value.(*ast.Array)
	if !ok {
		return nil
	}
	m := &keywordMatcher{always: -1}
	for i := range arr.Len() {
		obj, ok := arr.Elem(i).Value.(ast.Object)
		if !ok {
			return nil
		}
		var task ast.String
		if t := obj.Get(ast.InternedTerm("task")); t != nil {
			task, ok = t.Value.(ast.String)
		}
		if !ok {
			return nil
		}
		var words *ast.Array
		if t := obj.Get(ast.InternedTerm("words")); t != nil {
			words, _ = t.Value.(*ast.Array)
		}
		if words == nil {
			return nil
		}
		m.tasks = append(m.tasks, ast.StringTerm(string(task)))
		for j := range words.Len() {
			w, ok := words.Elem(j).Value.(ast.String)
			if !ok {
				return nil
			}
			if w == "" {
				if m.always < 0 {
					m.always = i
				}
				continue
			}
			b := w[0]
			m.byFirst[b] = append(m.byFirst[b], keyword{word: string(w), entry: i})
			if len(w) == 1 {
				m.single[b] = true
			} else {
				p := uint16(b)<<8 | uint16(w[1])
				m.pairs[p/64] |= 1 << (p % 64)
			}
		}
	}
	return m
}

// isTrueBody reports whether b is the body of a constant rule.
func isTrueBody(b ast.Body) bool {
	if len(b) != 1 || b[0].Negated || len(b[0].With) > 0 {
		return false
	}
	t, ok := b[0].Terms.(*ast.Term)
	return ok && ast.Boolean(true).Equal(t.Value)
}

// match returns the index of the first entry with a word in head, or -1.
// One pass: at each position, the words starting there.
func (m *keywordMatcher) match(head string) int {
	best := m.always
	for i := 0; i < len(head) && best != 0; i++ {
		b := head[i]
		if !m.single[b] {
			if i+1 == len(head) {
				break
			}
			if p := uint16(b)<<8 | uint16(head[i+1]); m.pairs[p/64]&(1<<(p%64)) == 0 {
				continue
			}
		}
		for _, k := range m.byFirst[b] {
			if (best < 0 || k.entry < best) && strings.HasPrefix(head[i:], k.word) {
				best = k.entry
			}
		}
	}
	return best
}

// term returns input.request.keyword_task for head: the matching entry's
// task, or "".
func (m *keywordMatcher) term(head string) *ast.Term {
	if i := m.match(head); i >= 0 {
		return m.tasks[i]
	}
	return emptyString
}
