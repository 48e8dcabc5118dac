package bucket

import (
	"context"
	"fmt"
	"sync"
	"time"
)

const (
	memShards     = 64
	memSweepEvery = 4096 // writes per shard between sweeps of dead entries
)

// Memory is the in-process backend for a single replica.
type Memory struct {
	clock  func() time.Time
	ids    *idGen
	shards [memShards]memShard
}

type memShard struct {
	mu      sync.Mutex
	buckets map[string]memEntry
	leases  map[string]map[string]int64 // key → lease id → expiry µs
	writes  int
}

// memEntry is a stored bucket and the time (µs) from which it is the same as
// absent: a full token bucket or a past day.
type memEntry struct {
	st   state
	dead int64
}

// NewMemory returns an in-memory engine reading time from clock (nil means
// time.Now). The clock is read under the bucket's lock, so decisions on one
// bucket see non-decreasing times as long as the clock does.
func NewMemory(clock func() time.Time) *Memory {
	if clock == nil {
		clock = time.Now
	}
	m := &Memory{clock: clock, ids: newIDGen()}
	for i := range m.shards {
		m.shards[i].buckets = make(map[string]memEntry)
		m.shards[i].leases = make(map[string]map[string]int64)
	}
	return m
}

// Take implements [Engine.Take].
func (m *Memory) Take(ctx context.Context, reqs []Request) (Decision, error) {
	return m.do(ctx, opTake, reqs)
}

// Adjust implements [Engine.Adjust].
func (m *Memory) Adjust(ctx context.Context, reqs []Request) (Decision, error) {
	return m.do(ctx, opAdjust, reqs)
}

// Peek implements [Engine.Peek].
func (m *Memory) Peek(ctx context.Context, reqs []Request) (Decision, error) {
	return m.do(ctx, opPeek, reqs)
}

func (m *Memory) do(ctx context.Context, o op, reqs []Request) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("bucket: %w", err)
	}
	if err := checkKeys(reqs); err != nil {
		return Decision{}, err
	}
	var planBuf [4]plan
	var outBuf [4]outcome
	plans, outs := planBuf[:0], outBuf[:0]
	if len(reqs) > len(planBuf) {
		plans, outs = make([]plan, 0, len(reqs)), make([]outcome, 0, len(reqs))
	}

	sh := &m.shards[shardOf(hashTag(reqs[0].Key), memShards)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := m.clock()
	now := t.UnixMicro()
	all := true
	for i := range reqs {
		p, err := newPlan(o, &reqs[i], t)
		if err != nil {
			return Decision{}, err
		}
		e, has := sh.buckets[reqs[i].Key]
		out, err := p.apply(o, e.st, has, now)
		if err != nil {
			return Decision{}, err
		}
		all = all && out.ok
		plans, outs = append(plans, p), append(outs, out)
	}
	commit := o == opAdjust || (o == opTake && all)
	d := Decision{Allowed: all, At: time.UnixMicro(now), Buckets: make([]Result, len(reqs))}
	for i := range reqs {
		p, out := &plans[i], &outs[i]
		if commit && out.after != out.before {
			sh.put(reqs[i].Key, p, out, now)
		}
		d.Buckets[i] = p.result(*out, commit, now)
	}
	if commit {
		sh.sweep(now)
	}
	return d, nil
}

func (sh *memShard) put(key string, p *plan, out *outcome, now int64) {
	if p.kind == Daily {
		if out.after.b == 0 {
			delete(sh.buckets, key)
			return
		}
		sh.buckets[key] = memEntry{st: out.after, dead: out.end}
		return
	}
	if out.after.a <= now && out.after.b == 0 { // full again
		delete(sh.buckets, key)
		return
	}
	sh.buckets[key] = memEntry{st: out.after, dead: out.after.a + 1}
}

// sweep drops dead entries every memSweepEvery writes so that memory stays
// bounded by the live buckets.
func (sh *memShard) sweep(now int64) {
	sh.writes++
	if sh.writes < memSweepEvery {
		return
	}
	sh.writes = 0
	for k, e := range sh.buckets {
		if e.dead <= now {
			delete(sh.buckets, k)
		}
	}
	for k, ls := range sh.leases {
		for id, exp := range ls {
			if exp <= now {
				delete(ls, id)
			}
		}
		if len(ls) == 0 {
			delete(sh.leases, k)
		}
	}
}
