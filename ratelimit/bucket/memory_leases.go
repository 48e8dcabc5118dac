package bucket

import (
	"context"
	"fmt"
	"time"
)

// Acquire implements [Leases.Acquire].
func (m *Memory) Acquire(ctx context.Context, key string, limit int64, ttl time.Duration) (Lease, error) {
	if err := checkLease(ctx, key, ttl); err != nil {
		return Lease{}, err
	}
	sh := &m.shards[shardOf(hashTag(key), memShards)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := m.clock().UnixMicro()
	ls := sh.liveLeases(key, now)
	l := Lease{Held: int64(len(ls)), Limit: limit}
	if l.Held >= limit {
		oldest := int64(-1)
		for _, exp := range ls {
			if oldest < 0 || exp < oldest {
				oldest = exp
			}
		}
		if oldest >= 0 {
			l.RetryAfter = time.Duration(oldest-now) * time.Microsecond
		} else {
			l.RetryAfter = Never // limit <= 0: never
		}
		return l, nil
	}
	if ls == nil {
		ls = make(map[string]int64)
		sh.leases[key] = ls
	}
	l.ID, l.Acquired = m.ids.next(), true
	ls[l.ID] = now + ttl.Microseconds()
	l.Held++
	sh.sweep(now)
	return l, nil
}

// Renew implements [Leases.Renew].
func (m *Memory) Renew(ctx context.Context, key, id string, ttl time.Duration) (bool, error) {
	if err := checkLease(ctx, key, ttl); err != nil {
		return false, err
	}
	sh := &m.shards[shardOf(hashTag(key), memShards)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := m.clock().UnixMicro()
	ls := sh.liveLeases(key, now)
	if _, ok := ls[id]; !ok {
		return false, nil
	}
	ls[id] = now + ttl.Microseconds()
	return true, nil
}

// Release implements [Leases.Release].
func (m *Memory) Release(ctx context.Context, key, id string) (bool, error) {
	if err := checkLease(ctx, key, time.Microsecond); err != nil {
		return false, err
	}
	sh := &m.shards[shardOf(hashTag(key), memShards)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ls := sh.liveLeases(key, m.clock().UnixMicro())
	if _, ok := ls[id]; !ok {
		return false, nil
	}
	delete(ls, id)
	if len(ls) == 0 {
		delete(sh.leases, key)
	}
	return true, nil
}

// Held implements [Leases.Held].
func (m *Memory) Held(ctx context.Context, key string) (int64, error) {
	if err := checkLease(ctx, key, time.Microsecond); err != nil {
		return 0, err
	}
	sh := &m.shards[shardOf(hashTag(key), memShards)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return int64(len(sh.liveLeases(key, m.clock().UnixMicro()))), nil
}

// liveLeases returns key's leases after dropping the expired ones.
func (sh *memShard) liveLeases(key string, now int64) map[string]int64 {
	ls := sh.leases[key]
	for id, exp := range ls {
		if exp <= now {
			delete(ls, id)
		}
	}
	return ls
}

func checkLease(ctx context.Context, key string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bucket: %w", err)
	}
	if key == "" {
		return ErrInvalidKey
	}
	if ttl < time.Microsecond {
		return fmt.Errorf("%w: lease ttl %v", ErrInvalidLimit, ttl)
	}
	return nil
}
