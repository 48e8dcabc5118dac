// Package labels keeps metric label values that callers or policies choose
// (model names, reasons) to a bounded set, so that nobody outside can blow
// up the cardinality of guardian's metrics.
package labels

import "sync"

// Other is the value every label past the bound becomes.
const Other = "other"

// Bounded admits up to Max distinct values (each at most 100 bytes) and
// maps the rest to Other. The zero value with Max set is ready to use; it
// is safe for concurrent use.
type Bounded struct {
	Max  int
	mu   sync.RWMutex
	seen map[string]struct{}
}

// Value returns v if it is, or can become, one of the admitted values.
func (b *Bounded) Value(v string) string {
	b.mu.RLock()
	_, ok := b.seen[v]
	n := len(b.seen)
	b.mu.RUnlock()
	if ok {
		return v
	}
	if n >= b.Max || len(v) > 100 {
		return Other
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen == nil {
		b.seen = map[string]struct{}{}
	}
	if len(b.seen) >= b.Max {
		return Other
	}
	b.seen[v] = struct{}{}
	return v
}
