package rls

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// Store keeps the state the server decides on: token buckets and daily
// quotas (the bucket engine), concurrency leases, and fixed-window counters.
type Store interface {
	Take(ctx context.Context, reqs []bucket.Request) (bucket.Decision, error)
	Adjust(ctx context.Context, reqs []bucket.Request) (bucket.Decision, error)
	Acquire(ctx context.Context, key string, limit int64, ttl time.Duration) (bucket.Lease, error)
	Renew(ctx context.Context, key, id string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, key, id string) (bool, error)
	// IncrBy adds each op's N to its fixed-window counter and sets After
	// and Limit (the limit in force: Limit, or a share of it in fallback).
	IncrBy(ctx context.Context, ops []WindowOp) error
}

// WindowOp is one fixed-window counter update.
type WindowOp struct {
	Key   string
	N     int64
	TTL   time.Duration
	Limit int64 // in: the rule's limit; out: the limit in force
	After int64 // out: the count after the update
}

// memoryStore is the single-replica store.
type memoryStore struct {
	*bucket.Memory
	*memWindows
}

// NewMemoryStore returns an in-process store; clock nil means time.Now.
func NewMemoryStore(clock func() time.Time) Store {
	if clock == nil {
		clock = time.Now
	}
	return memoryStore{bucket.NewMemory(clock), newMemWindows(clock)}
}

const winShards = 32

// memWindows holds fixed-window counters in process.
type memWindows struct {
	clock  func() time.Time
	shards [winShards]struct {
		mu     sync.Mutex
		m      map[string]winEntry
		writes int
	}
}

type winEntry struct {
	n   int64
	exp time.Time
}

func newMemWindows(clock func() time.Time) *memWindows {
	w := &memWindows{clock: clock}
	for i := range w.shards {
		w.shards[i].m = map[string]winEntry{}
	}
	return w
}

// IncrBy implements [Store.IncrBy].
func (w *memWindows) IncrBy(ctx context.Context, ops []WindowOp) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rls: %w", err)
	}
	now := w.clock()
	for i := range ops {
		op := &ops[i]
		sh := &w.shards[fnv(op.Key)%winShards]
		sh.mu.Lock()
		e := sh.m[op.Key]
		if !e.exp.After(now) {
			e = winEntry{}
		}
		e.n += op.N
		e.exp = now.Add(op.TTL)
		sh.m[op.Key] = e
		op.After = e.n
		if sh.writes++; sh.writes >= 4096 {
			sh.writes = 0
			for k, v := range sh.m {
				if !v.exp.After(now) {
					delete(sh.m, k)
				}
			}
		}
		sh.mu.Unlock()
	}
	return nil
}

func fnv(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
