package fakeanthropic

import (
	"math"
	"time"
)

// bucket is a continuous token bucket: capacity = limit, refilled at
// limit/60 tokens per second. The level may go negative when output tokens
// are charged after admission.
type bucket struct {
	limit float64
	level float64
	at    time.Time // time of level
}

func newBucket(limit int64, now time.Time) bucket {
	return bucket{limit: float64(limit), level: float64(limit), at: now}
}

func (b *bucket) rate() float64 { return b.limit / 60 }

// advance refills the bucket up to now. A clock that goes backwards is ignored.
func (b *bucket) advance(now time.Time) {
	if now.After(b.at) {
		b.level = math.Min(b.limit, b.level+now.Sub(b.at).Seconds()*b.rate())
		b.at = now
	}
}

// wait returns how long until the bucket holds need (at now). If need is over
// the capacity it can never be held: the wait until full is returned and ok
// is false.
func (b *bucket) wait(need float64, now time.Time) (d time.Duration, ok bool) {
	b.advance(now)
	target := need
	if need > b.limit {
		target, ok = b.limit, false
	} else {
		ok = true
	}
	if b.level >= target {
		return 0, ok
	}
	if b.rate() == 0 {
		return time.Duration(math.MaxInt64), false
	}
	return secondsToDuration((target - b.level) / b.rate()), ok
}

// untilFull returns how long until the bucket is full again.
func (b *bucket) untilFull(now time.Time) time.Duration {
	b.advance(now)
	if b.level >= b.limit || b.rate() == 0 {
		return 0
	}
	return secondsToDuration((b.limit - b.level) / b.rate())
}

func (b *bucket) take(n float64, now time.Time) {
	b.advance(now)
	b.level -= n
}

// give returns n tokens, never above capacity.
func (b *bucket) give(n float64, now time.Time) {
	b.advance(now)
	b.level = math.Min(b.limit, b.level+n)
}

func (b *bucket) levelAt(now time.Time) float64 {
	b.advance(now)
	return b.level
}

func secondsToDuration(s float64) time.Duration {
	return time.Duration(math.Ceil(s * float64(time.Second)))
}

// BucketLevels is the state of one account's buckets at one instant.
type BucketLevels struct {
	Requests, InputTokens, OutputTokens float64
}

// Snapshot returns the current level of every account's buckets, by account name.
func (s *Server) Snapshot() map[string]BucketLevels {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]BucketLevels, len(s.accounts))
	for name, a := range s.accounts {
		out[name] = BucketLevels{
			Requests:     a.rpm.levelAt(now),
			InputTokens:  a.itpm.levelAt(now),
			OutputTokens: a.otpm.levelAt(now),
		}
	}
	return out
}
