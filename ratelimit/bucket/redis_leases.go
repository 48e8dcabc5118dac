package bucket

import (
	"context"
	"errors"
	"fmt"
	"time"
)

const (
	leaseAcquire = iota
	leaseRenew
	leaseRelease
	leaseCount
)

// Acquire implements [Leases.Acquire].
func (r *Redis) Acquire(ctx context.Context, key string, limit int64, ttl time.Duration) (Lease, error) {
	if err := checkLease(ctx, key, ttl); err != nil {
		return Lease{}, err
	}
	id := r.ids.next()
	v, err := r.lease(ctx, leaseAcquire, key, limit, ttl, id)
	if err != nil {
		return Lease{}, err
	}
	l := Lease{Acquired: v[0] == 1, Held: v[1], Limit: limit}
	switch {
	case l.Acquired:
		l.ID = id
	case v[2] < 0:
		l.RetryAfter = Never
	default:
		l.RetryAfter = time.Duration(v[2]) * time.Microsecond
	}
	return l, nil
}

// Renew implements [Leases.Renew].
func (r *Redis) Renew(ctx context.Context, key, id string, ttl time.Duration) (bool, error) {
	if err := checkLease(ctx, key, ttl); err != nil {
		return false, err
	}
	v, err := r.lease(ctx, leaseRenew, key, 0, ttl, id)
	return err == nil && v[0] == 1, err
}

// Release implements [Leases.Release].
func (r *Redis) Release(ctx context.Context, key, id string) (bool, error) {
	if err := checkLease(ctx, key, time.Microsecond); err != nil {
		return false, err
	}
	v, err := r.lease(ctx, leaseRelease, key, 0, 0, id)
	return err == nil && v[0] == 1, err
}

// Held implements [Leases.Held].
func (r *Redis) Held(ctx context.Context, key string) (int64, error) {
	if err := checkLease(ctx, key, time.Microsecond); err != nil {
		return 0, err
	}
	v, err := r.lease(ctx, leaseCount, key, 0, 0, "")
	return v[1], err
}

// lease runs leaseScript and returns {ok, held, retryUS, now}.
func (r *Redis) lease(ctx context.Context, o int64, key string, limit int64, ttl time.Duration, id string) ([4]int64, error) {
	var v [4]int64
	_, override := r.now()
	c := callPool.Get().(*call)
	c.buf = appendInts(c.buf[:0], o, override, limit, ttl.Microseconds())
	c.keys = append(c.keys[:0], r.prefix+key)
	c.args = append(c.args[:0], c.buf, id)
	c.script = leaseScript
	if err := r.b.run(ctx, c); err != nil {
		return v, fmt.Errorf("bucket: redis: %w", err)
	}
	ok := len(c.res) == len(v) && ints(c.res, v[:])
	recycle(c)
	if !ok {
		return v, errors.New("bucket: redis: unexpected lease reply")
	}
	return v, nil
}
