package keypool

import (
	"sync"
	"time"
)

// affinityTable remembers the account each conversation used last, for a
// while and up to a size: two generations of a map, the older dropped
// whole when the newer is affinityEvery old or holds affinityCap entries.
// An entry lives affinityEvery to twice that after its last use, about
// Anthropic's prompt cache lifetime (5 minutes, refreshed on use), past
// which keeping the conversation on its account gains nothing; memory
// stays bounded by 2 × affinityCap entries whatever the traffic (a
// stream of one-off prompts would otherwise add one entry per request,
// forever).
type affinityTable struct {
	mu        sync.Mutex
	cur, prev map[uint64]*Account
	since     time.Time // when cur began
}

const (
	affinityEvery = 5 * time.Minute
	affinityCap   = 1 << 16
)

func (t *affinityTable) store(id uint64, a *Account, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if age := now.Sub(t.since); t.cur == nil || age >= affinityEvery || len(t.cur) >= affinityCap {
		older := t.cur
		if age >= 2*affinityEvery {
			older = nil // stale too
		}
		t.prev, t.cur, t.since = older, make(map[uint64]*Account), now
	}
	t.cur[id] = a
}

func (t *affinityTable) load(id uint64, now time.Time) *Account {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur == nil {
		return nil
	}
	switch age := now.Sub(t.since); {
	case age >= 2*affinityEvery: // both generations are stale
		return nil
	case age >= affinityEvery: // cur is the older generation now
		return t.cur[id]
	}
	if a, ok := t.cur[id]; ok {
		return a
	}
	return t.prev[id]
}

// len is the number of entries kept (tests).
func (t *affinityTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.cur) + len(t.prev)
}
