package bucket

import (
	"context"
	"errors"
	"math"
	"time"
)

// Kind selects how a bucket refills.
type Kind uint8

const (
	// TokenBucket refills continuously: Capacity tokens per Per.
	TokenBucket Kind = iota
	// Daily is a fixed window of one calendar day in Location.
	Daily
)

// Never is the RetryAfter of a request that can never pass (N above the
// bucket's size).
const Never = time.Duration(math.MaxInt64)

// Limit describes one bucket.
type Limit struct {
	Kind Kind
	// Capacity is the number of tokens refilled per Per (TokenBucket) or
	// granted per calendar day (Daily).
	Capacity int64
	// Per is the refill period of a TokenBucket, at microsecond resolution.
	Per time.Duration
	// Burst is the size of a TokenBucket; 0 means Capacity.
	Burst int64
	// Location is the time zone whose midnight resets a Daily quota; nil
	// means UTC.
	Location *time.Location
}

// Rate returns a token bucket limit of capacity tokens per per, holding at
// most capacity tokens.
func Rate(capacity int64, per time.Duration) Limit {
	return Limit{Kind: TokenBucket, Capacity: capacity, Per: per}
}

// PerDay returns a daily quota of capacity tokens that resets at midnight in
// loc.
func PerDay(capacity int64, loc *time.Location) Limit {
	return Limit{Kind: Daily, Capacity: capacity, Location: loc}
}

// Request is one bucket of a call and the amount N to take (Take, Peek;
// N >= 0) or to add to its usage (Adjust; negative refunds).
type Request struct {
	Key   string
	Limit Limit
	N     int64
	// Debt (TokenBucket, Take and Peek only) lets the bucket end up to Debt
	// tokens below empty: the request passes when N − Debt tokens are
	// available and still takes all N, so later requests wait until the
	// debt is refilled or refunded. It models a limit that admits on a
	// little and charges more later, like Anthropic's output tokens: a
	// request may start while any remain, and what it produces is counted
	// as it goes. Remaining never reports less than 0.
	Debt int64
}

// Result is the state of one bucket after a call.
type Result struct {
	// Allowed reports whether this bucket alone could grant N.
	Allowed bool
	// Limit is the Limit's Capacity.
	Limit int64
	// Remaining is the number of tokens available after the call.
	Remaining int64
	// RetryAfter is how long until this bucket could grant N: 0 when it can
	// now, Never when N is larger than the bucket.
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again (for a Daily
	// quota with usage: until the next local midnight).
	ResetAfter time.Duration
}

// Decision is the outcome of a call over several buckets.
type Decision struct {
	// Allowed reports whether every bucket granted its N. For Take, tokens
	// were taken if and only if Allowed. Adjust always allows.
	Allowed bool
	// At is the engine's clock when the decision was made (Redis TIME for
	// the Redis backend).
	At time.Time
	// Buckets holds one Result per Request, in order.
	Buckets []Result
}

// RetryAfter is how long until every bucket could grant its N: the largest
// RetryAfter of the buckets.
func (d Decision) RetryAfter() time.Duration {
	var m time.Duration
	for i := range d.Buckets {
		m = max(m, d.Buckets[i].RetryAfter)
	}
	return m
}

// Engine decides over buckets. Implementations are safe for concurrent use.
type Engine interface {
	// Take takes N from every bucket, or from none when any bucket lacks N.
	Take(ctx context.Context, reqs []Request) (Decision, error)
	// Adjust adds the signed N to the usage of every bucket, clamped to the
	// bucket's bounds.
	Adjust(ctx context.Context, reqs []Request) (Decision, error)
	// Peek reports what Take would decide, without taking.
	Peek(ctx context.Context, reqs []Request) (Decision, error)
}

// Lease is the outcome of [Leases.Acquire].
type Lease struct {
	// ID identifies the lease for Renew and Release; empty if not acquired.
	ID string
	// Acquired reports whether the lease was granted.
	Acquired bool
	// Held is the number of live leases after the call.
	Held int64
	// Limit is the limit the call was made with.
	Limit int64
	// RetryAfter is, when not acquired, how long until the oldest held lease
	// expires unless renewed (an upper bound: a release may come sooner).
	RetryAfter time.Duration
}

// Leases bounds concurrency with expiring leases. Implementations are safe
// for concurrent use.
type Leases interface {
	// Acquire grants a lease on key, valid for ttl, if fewer than limit live
	// leases are held.
	Acquire(ctx context.Context, key string, limit int64, ttl time.Duration) (Lease, error)
	// Renew extends a live lease to ttl from now. It reports false if the
	// lease is unknown or already expired.
	Renew(ctx context.Context, key, id string, ttl time.Duration) (bool, error)
	// Release ends a lease. It reports false if the lease was unknown or
	// already expired.
	Release(ctx context.Context, key, id string) (bool, error)
	// Held counts the live leases on key.
	Held(ctx context.Context, key string) (int64, error)
}

// Errors returned for invalid calls; match with errors.Is.
var (
	ErrInvalidLimit = errors.New("bucket: invalid limit")
	ErrInvalidKey   = errors.New("bucket: invalid key")
	ErrCrossSlot    = errors.New("bucket: keys of one call must share a hash tag")
	ErrDuplicateKey = errors.New("bucket: key repeated in one call")
	ErrNegativeN    = errors.New("bucket: negative N for take or peek")
	ErrClosed       = errors.New("bucket: engine closed")
)

var (
	_ Engine = (*Memory)(nil)
	_ Leases = (*Memory)(nil)
	_ Engine = (*Redis)(nil)
	_ Leases = (*Redis)(nil)
)
