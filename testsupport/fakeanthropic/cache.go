package fakeanthropic

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

type cacheEntry struct {
	expires time.Time
	ttl     time.Duration
}

type cacheWrite struct {
	key [32]byte
	ttl time.Duration
}

// cachePlan is how a request's input splits between cache reads, cache
// writes and plain input, and what to write if the request is admitted.
type cachePlan struct {
	input, read, write5m, write1h int
	hit                           *[32]byte
	writes                        []cacheWrite
}

func (p cachePlan) creation() int { return p.write5m + p.write1h }

func ttlOf(cc *CacheControl) time.Duration {
	if cc != nil && cc.TTL == "1h" {
		return time.Hour
	}
	return 5 * time.Minute
}

// prefixKeys returns the chained hash of every prefix of segs.
func prefixKeys(model string, segs []segment) [][32]byte {
	keys := make([][32]byte, len(segs))
	prev := sha256.Sum256([]byte("model:" + model))
	var n [8]byte
	for i, s := range segs {
		h := sha256.New()
		h.Write(prev[:])
		binary.BigEndian.PutUint64(n[:], uint64(len(s.key)))
		h.Write(n[:])
		h.Write(s.key)
		copy(keys[i][:], h.Sum(nil))
		prev = keys[i]
	}
	return keys
}

// planCache computes the cache split of a request for account a. Caller
// holds s.mu.
func planCache(a *accountState, model string, segs []segment, now time.Time, minTokens int) cachePlan {
	total := totalTokens(segs)
	last := -1
	for i, s := range segs {
		if s.cc != nil {
			last = i
		}
	}
	if last < 0 {
		return cachePlan{input: total}
	}
	keys := prefixKeys(model, segs)
	cum := make([]int, len(segs))
	sum := 0
	for i, s := range segs {
		sum += s.tokens
		cum[i] = sum
	}
	p := cachePlan{}
	hit := -1
	for i := last; i >= 0; i-- {
		if e, ok := a.cache[keys[i]]; ok && now.Before(e.expires) {
			hit = i
			p.hit = &keys[i]
			p.read = cum[i]
			break
		}
	}
	from := p.read
	for i := hit + 1; i <= last; i++ {
		cc := segs[i].cc
		if cc == nil || cum[i] < minTokens {
			continue
		}
		ttl := ttlOf(cc)
		if ttl == time.Hour {
			p.write1h += cum[i] - from
		} else {
			p.write5m += cum[i] - from
		}
		from = cum[i]
		p.writes = append(p.writes, cacheWrite{key: keys[i], ttl: ttl})
	}
	p.input = total - p.read - p.creation()
	return p
}

// commitCache records the writes of an admitted request and refreshes its
// hit. Caller holds s.mu.
func commitCache(a *accountState, p cachePlan, now time.Time) {
	if p.hit != nil {
		if e, ok := a.cache[*p.hit]; ok {
			e.expires = now.Add(e.ttl)
			a.cache[*p.hit] = e
		}
	}
	for _, w := range p.writes {
		a.cache[w.key] = cacheEntry{expires: now.Add(w.ttl), ttl: w.ttl}
	}
}
