package fakeanthropic

import (
	"sync"
	"time"
)

// FaultKind selects what an injected [Fault] does.
type FaultKind int

const (
	// FaultOverloaded answers 529 overloaded_error "Overloaded".
	FaultOverloaded FaultKind = iota + 1
	// FaultAPIError answers 500 api_error.
	FaultAPIError
	// FaultSpendCap answers the spend-cap 429 (details.error_code
	// enforced_spend_limit_reached, no retry-after).
	FaultSpendCap
	// FaultDelayHeaders waits Delay (or until the client goes away), then
	// answers normally.
	FaultDelayHeaders
	// FaultDropBeforeHeaders closes the connection without answering.
	FaultDropBeforeHeaders
	// FaultStreamError (streams only) sends event: error with an
	// overloaded_error after AfterDeltas text deltas and ends the 200 response.
	FaultStreamError
	// FaultSlowStream (streams only) waits Delay before every SSE event after
	// the headers.
	FaultSlowStream
	// FaultDropMidStream (streams only) closes the connection after
	// AfterDeltas text deltas, without message_stop.
	FaultDropMidStream
	// FaultRateLimited answers 429 rate_limit_error with retry-after set to
	// RetryAfter (whole seconds, at least 1), as an acceleration limit or a
	// burst elsewhere in the organization would, without touching buckets.
	FaultRateLimited
)

func (k FaultKind) streamOnly() bool {
	return k == FaultStreamError || k == FaultSlowStream || k == FaultDropMidStream
}

// Forever, as the count of [Server.InjectNext], keeps a fault until
// [Server.ClearFaults].
const Forever = -1

// Fault is an injected failure. A request gets at most one fault: the first
// queued one that matches it. Faults are matched only by Messages requests
// that passed validation; stream-only kinds only by streaming requests.
type Fault struct {
	Kind        FaultKind
	Account     string        // only requests of this account; "" = any
	AfterDeltas int           // FaultStreamError, FaultDropMidStream
	Delay       time.Duration // FaultDelayHeaders, FaultSlowStream
	RetryAfter  time.Duration // FaultRateLimited
}

type faultEntry struct {
	f    Fault
	left int // < 0: forever
}

type faultQueue struct {
	mu      sync.Mutex
	entries []*faultEntry
}

// InjectNext makes the next n matching requests fail with f (n = [Forever]:
// every matching request until [Server.ClearFaults]). n = 0 does nothing.
func (s *Server) InjectNext(n int, f Fault) {
	if n == 0 {
		return
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.entries = append(s.faults.entries, &faultEntry{f: f, left: n})
}

// ClearFaults drops every pending fault.
func (s *Server) ClearFaults() { s.faults.clear() }

// PendingFaults returns how many injected faults are still queued (a
// Forever fault counts as one).
func (s *Server) PendingFaults() int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return len(s.faults.entries)
}

func (q *faultQueue) clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.entries = nil
}

// take consumes the first fault matching a request of account.
func (q *faultQueue) take(account string, stream bool) (Fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, e := range q.entries {
		if e.f.Account != "" && e.f.Account != account {
			continue
		}
		if e.f.Kind.streamOnly() && !stream {
			continue
		}
		if e.left > 0 {
			e.left--
			if e.left == 0 {
				q.entries = append(q.entries[:i:i], q.entries[i+1:]...)
			}
		}
		return e.f, true
	}
	return Fault{}, false
}
