package fakeanthropic

import (
	"crypto/sha256"
	"fmt"
	"time"
)

// accountState is the mutable state of one account, guarded by Server.mu.
type accountState struct {
	name        string
	orgID       string
	limits      Limits
	rpm         bucket
	itpm        bucket
	otpm        bucket
	forbidden   bool
	spendCapped bool
	cache       map[[32]byte]cacheEntry
	usage       Counters
}

func newAccountState(a Account, now time.Time) *accountState {
	l := a.Limits
	if l.RPM == 0 {
		l.RPM = DefaultRPM
	}
	if l.ITPM == 0 {
		l.ITPM = DefaultITPM
	}
	if l.OTPM == 0 {
		l.OTPM = DefaultOTPM
	}
	org := a.OrgID
	if org == "" {
		org = uuidFrom(a.Name)
	}
	st := &accountState{name: a.Name, orgID: org, limits: l}
	st.reset(now)
	return st
}

func (a *accountState) reset(now time.Time) {
	a.rpm = newBucket(a.limits.RPM, now)
	a.itpm = newBucket(a.limits.ITPM, now)
	a.otpm = newBucket(a.limits.OTPM, now)
	a.forbidden = false
	a.spendCapped = false
	a.cache = make(map[[32]byte]cacheEntry)
	a.usage = Counters{}
}

// uuidFrom derives a stable, UUID-shaped organization id from name.
func uuidFrom(name string) string {
	h := sha256.Sum256([]byte("fakeanthropic-org:" + name))
	h[6] = h[6]&0x0f | 0x50 // version 5 style
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Counters count what the fake served to one account.
type Counters struct {
	Requests           int64 // authenticated Messages requests, any outcome
	Succeeded          int64 // Messages requests answered 200
	CountTokens        int64 // authenticated count_tokens requests
	InputTokens        int64 // usage.input_tokens served
	OutputTokens       int64 // output tokens produced (also for cut streams)
	CacheCreationInput int64 // usage.cache_creation_input_tokens served
	CacheReadInput     int64 // usage.cache_read_input_tokens served
	RateLimited        int64 // bucket 429s sent
	SpendCapped        int64 // spend-cap 429s sent
	Faults             int64 // injected faults applied
	ClientErrors       int64 // other 4xx after authentication
}

// Counters returns the counters of the account (zero if unknown).
func (s *Server) Counters(account string) Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[account]; ok {
		return a.usage
	}
	return Counters{}
}
