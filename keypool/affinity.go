package keypool

import (
	"sync"
	"time"
)

// affinityTable remembers the account each conversation used last, for a
// while and up to a size: two generations of a map. A store starts a new
// generation when the current one is affinityEvery old or holds
// affinityCap entries, and a generation is forgotten 2 × affinityEvery
// after it began. An entry therefore lives affinityEvery to twice that
// after its last use, about Anthropic's prompt cache lifetime (5 minutes,
// refreshed on use), past which keeping the conversation on its account
// gains nothing; memory stays bounded by 2 × affinityCap entries whatever
// the traffic (a stream of one-off prompts would otherwise add one entry
// per request, forever).
type affinityTable struct {
	mu        sync.Mutex
	cur, prev generation
}

type generation struct {
	m     map[uint64]*Account
	since time.Time
}

const (
	affinityEvery = 5 * time.Minute
	affinityCap   = 1 << 16
)

func (g *generation) get(id uint64, now time.Time) *Account {
	if g.m == nil || now.Sub(g.since) >= 2*affinityEvery {
		return nil
	}
	return g.m[id]
}

func (t *affinityTable) store(id uint64, a *Account, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if age := now.Sub(t.cur.since); t.cur.m == nil || age >= affinityEvery || len(t.cur.m) >= affinityCap {
		t.prev, t.cur = t.cur, generation{m: make(map[uint64]*Account), since: now}
		if age >= 2*affinityEvery {
			t.prev = generation{} // forgotten already
		}
	}
	t.cur.m[id] = a
}

func (t *affinityTable) load(id uint64, now time.Time) *Account {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a := t.cur.get(id, now); a != nil {
		return a
	}
	return t.prev.get(id, now)
}

// len is the number of entries kept (tests).
func (t *affinityTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.cur.m) + len(t.prev.m)
}
