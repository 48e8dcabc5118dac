package keypool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/internal/breaker"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// Need is what one request asks of the pool.
type Need struct {
	Model string
	// Input is the input tokens to reserve (the estimate).
	Input int64
	// Output is the output tokens to reserve (max_tokens by default).
	Output int64
	// Affinity, when not zero, names a conversation: the pool keeps it on
	// the account it used last while that account has headroom, so that
	// Anthropic's prompt cache keeps hitting.
	Affinity uint64
	// Exclude skips an account (the one a retry is moving away from).
	Exclude *Account
	// Tenant and TenantConcurrency cap the tenant's requests in flight
	// (0: no cap); the cap holds across accounts and replicas.
	Tenant            string
	TenantConcurrency int64
}

// Reservation is capacity taken on one account for one request.
type Reservation struct {
	Account  *Account
	Class    Class
	Requests int64
	Input    int64
	Output   int64
	// Leases are the concurrency leases the request holds.
	Leases    []Lease
	renew     *renewer
	at        time.Time // when it was taken
	outBefore int64     // the output bucket before it (see Account.capCharge)
	// counted is the account this replica counts the request in flight on,
	// from Reserve until Settle or Release; nil for a reservation rebuilt
	// from a ticket (Resume), which another stream counts.
	counted atomic.Pointer[Account]
}

// ErrNoKey is returned when no key of the pool is in service.
var ErrNoKey = errors.New("keypool: no key in service")

// ErrTooLarge is returned when a request needs more than any account's
// whole bucket: it can never be admitted.
var ErrTooLarge = errors.New("keypool: request larger than every account's limit")

// axes of an account's per-class buckets, in bucket order.
const (
	axRPM = iota
	axITPM
	axOTPM
	numAxes
)

// Reserve takes capacity for need on the account with the most headroom
// for it, fewest requests in flight breaking ties. When no account can take
// it now, it returns a nil reservation and how long until one should be
// able to (a hint: settlements and cool-downs ending may come sooner).
func (p *Pool) Reserve(ctx context.Context, need Need) (*Reservation, time.Duration, error) {
	if p.engine == nil {
		return nil, 0, errors.New("keypool: no bucket engine configured")
	}
	class := ClassOf(need.Model)
	now := p.now()
	cands := p.candidates(class, need, now)
	if len(cands.ok) == 0 {
		switch {
		case cands.anyKey == false:
			return nil, 0, ErrNoKey
		case cands.tooLarge:
			return nil, 0, ErrTooLarge
		}
		return nil, cands.wait, nil
	}
	wait := cands.wait
	var held []Lease
	if need.TenantConcurrency > 0 && p.leases != nil {
		l, w, ok, err := p.acquire(ctx, tenantLeaseKey(need.Tenant), need.TenantConcurrency, true)
		if err != nil {
			return nil, 0, fmt.Errorf("keypool: tenant lease: %w", err)
		}
		if !ok {
			return nil, w, nil
		}
		held = append(held, l)
	}
	r, wait, err := p.reserveOn(ctx, cands.ok, class, need, wait, held)
	if r == nil && len(held) > 0 {
		p.releaseLeases(context.WithoutCancel(ctx), held)
	}
	return r, wait, err
}

// reserveOn tries the candidates in order; held are leases already taken
// for the request.
func (p *Pool) reserveOn(ctx context.Context, cands []candidate, class Class, need Need, wait time.Duration, held []Lease) (*Reservation, time.Duration, error) {
	var lastErr error
	for _, c := range cands {
		a := c.account
		var acctLease []Lease
		if a.concurrency > 0 && p.leases != nil {
			l, w, ok, err := p.acquire(ctx, accountLeaseKey(a), a.concurrency, false)
			if err != nil {
				lastErr = err
				continue
			}
			if !ok {
				wait = minWait(wait, w)
				continue
			}
			acctLease = []Lease{l}
		}
		d, notAlone, err := p.take(ctx, a, class, need)
		if err != nil || !d.Allowed {
			p.releaseLeases(context.WithoutCancel(ctx), acctLease)
		}
		if err != nil {
			lastErr = err
			continue
		}
		a.remember(class, d, p.metrics)
		p.metrics.reservations.WithLabelValues(a.Name, result(d.Allowed)).Inc()
		if d.Allowed {
			if need.Affinity != 0 {
				p.affinity.store(need.Affinity, a, p.now())
			}
			r := &Reservation{Account: a, Class: class, Requests: 1, Input: need.Input, Output: need.Output,
				Leases: append(append([]Lease(nil), held...), acctLease...),
				at:     p.now(), outBefore: a.outputBefore(class, need.Output, d)}
			r.counted.Store(a)
			if len(r.Leases) > 0 {
				r.renew = p.startRenewer(r.Leases)
			}
			return r, 0, nil
		}
		if ra := d.RetryAfter(); ra == bucket.Never {
			if notAlone && !a.fits(class, need, true) {
				// Larger than the output bucket: it can start only alone,
				// after the requests in flight settle (which wakes the queue).
				wait = minWait(wait, aloneWait)
			}
			continue
		} else if wait == 0 || ra < wait {
			wait = ra
		}
	}
	if lastErr != nil && wait == 0 {
		return nil, 0, fmt.Errorf("keypool: reserve: %w", lastErr)
	}
	if wait == 0 {
		return nil, 0, ErrTooLarge
	}
	return nil, wait, nil
}

// take reserves need on a. With output counted as produced, a request
// that starts while nothing else is in flight on the account may leave its
// output bucket in debt (it needs one output token, not all it reserves).
// Not while another request is in flight: that one may reach Anthropic
// later, after this one has produced more than the bucket held, and find
// it empty. notAlone reports that debt was not allowed for that reason.
// (In flight is per replica, and counts a request on the account it was
// admitted to until it ends, a retry moved elsewhere included: with
// several replicas sharing Redis, or after such a move, a request in
// transit on an account may not be seen, and another may then start into
// debt there; Anthropic would refuse the late one with a 429 that is
// retried on another account.)
func (p *Pool) take(ctx context.Context, a *Account, class Class, need Need) (d bucket.Decision, notAlone bool, err error) {
	// Counted in flight first, so that of two requests starting at once
	// only one can find the account empty.
	alone := a.inflight.CompareAndSwap(0, 1)
	if !alone {
		a.inflight.Add(1)
	}
	debt := alone && !p.outAtStart
	reqs := a.requests(class, 1, need.Input, need.Output)
	if i, _, _, ok := a.outputBucket(class); ok && debt && need.Output > 1 {
		reqs[i].Debt = need.Output - 1 // one output token left lets it start
	}
	d = bucket.Decision{Allowed: true}
	if len(reqs) > 0 { // no configured limit: only Anthropic's readings gate it
		d, err = p.engine.Take(ctx, reqs)
	}
	n := a.inflight.Load()
	if err != nil || !d.Allowed {
		n = a.inflight.Add(-1)
	}
	p.metrics.inflight.WithLabelValues(a.Name).Set(float64(n))
	return d, !alone && !p.outAtStart, err
}

// aloneWait is the wait hint for a request that can start only alone on an
// account; settlements wake the queue sooner.
const aloneWait = time.Second

type candidate struct {
	account *Account
	score   float64
}

type candidates struct {
	ok       []candidate
	wait     time.Duration
	anyKey   bool
	tooLarge bool
}

// candidates lists the accounts that may take need now, best first.
func (p *Pool) candidates(class Class, need Need, now time.Time) candidates {
	var out candidates
	for _, a := range p.accounts {
		if !a.InService() {
			continue
		}
		out.anyKey = true
		if a == need.Exclude {
			continue
		}
		if until := a.CoolingUntil(); until.After(now) {
			out.wait = minWait(out.wait, until.Sub(now))
			continue
		}
		if !a.fits(class, need, p.outAtStart) {
			out.tooLarge = true
			continue
		}
		if w := a.anthropicWait(class, need, p.outAtStart, now); w > 0 {
			out.wait = minWait(out.wait, w)
			continue
		}
		out.ok = append(out.ok, candidate{account: a, score: a.score(class, need, now)})
	}
	if len(out.ok) > 0 {
		out.tooLarge = false
	}
	slices.SortStableFunc(out.ok, func(x, y candidate) int {
		if c := cmp.Compare(y.score, x.score); c != 0 {
			return c
		}
		return cmp.Compare(x.account.inflight.Load(), y.account.inflight.Load())
	})
	if need.Affinity != 0 {
		if pref := p.affinity.load(need.Affinity, p.now()); pref != nil {
			for i, c := range out.ok {
				// Keep the conversation where it was while that account has
				// a fair share of headroom left.
				if c.account == pref && c.score >= affinityFloor {
					out.ok[0], out.ok[i] = out.ok[i], out.ok[0]
					break
				}
			}
		}
	}
	return out
}

// affinityFloor is the headroom (fraction of the tightest limit) below
// which a conversation leaves its account.
const affinityFloor = 0.2

func result(allowed bool) string {
	if allowed {
		return "taken"
	}
	return "denied"
}

func minWait(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}

// Settle ends a reservation with the request's real usage: the difference
// is refunded or charged on every axis. reached says whether Anthropic
// answered the request (a request that never got there, or was refused
// with 429/5xx, consumed nothing and is refunded whole).
func (p *Pool) Settle(ctx context.Context, r *Reservation, u anthropic.Usage, reached bool) error {
	if r == nil || r.Account == nil {
		return nil
	}
	defer p.notify()
	p.uncount(r)
	return p.settle(ctx, r, u, reached)
}

// settle is Settle without ending the count in flight.
func (p *Pool) settle(ctx context.Context, r *Reservation, u anthropic.Usage, reached bool) error {
	r.renew.halt()
	if len(r.Leases) > 0 {
		p.releaseLeases(context.WithoutCancel(ctx), r.Leases)
	}
	reqs, in, out := -r.Requests, -r.Input, -r.Output
	if reached {
		reqs, in, out = 0, u.ITPMTokens()-r.Input, u.OutputTokens-r.Output
	}
	if reached { // reserved against actual, for the estimation error: unreached ones have no actual
		p.metrics.reserved.WithLabelValues(r.Account.Name, "input").Add(float64(r.Input))
		p.metrics.reserved.WithLabelValues(r.Account.Name, "output").Add(float64(r.Output))
		p.metrics.actual.WithLabelValues(r.Account.Name, "input").Add(float64(u.ITPMTokens()))
		p.metrics.actual.WithLabelValues(r.Account.Name, "output").Add(float64(u.OutputTokens))
	}
	if reached && !r.at.IsZero() { // (a refund of an unanswered request needs none: Anthropic counted nothing)
		out += r.Account.capCharge(r.Class, r.outBefore, r.Output, p.now().Sub(r.at))
	}
	adj := r.Account.requests(r.Class, reqs, in, out)
	if len(adj) == 0 || (reqs == 0 && in == 0 && out == 0) {
		return nil
	}
	d, err := p.engine.Adjust(ctx, adj)
	if err != nil {
		return fmt.Errorf("keypool: settle on %s: %w", r.Account.Name, err)
	}
	r.Account.remember(r.Class, d, p.metrics)
	return nil
}

// Move takes r's need to another account, for a retry after r's account
// refused the attempt: it reserves there, has record write the new
// reservation down (the ticket the next attempt and the settlement read;
// nil: nothing to write), and only then refunds r. It returns a nil reservation, leaving r in
// place, when no other account can take it now, with how long until one
// should (zero: there is no other account), or when record fails (the new
// reservation is refunded). A move does not change which account this
// replica counts the request in flight on: the stream that reserved it
// counts it on the account it was admitted to until it ends.
func (p *Pool) Move(ctx context.Context, r *Reservation, model string, record func(*Reservation) error) (*Reservation, time.Duration, error) {
	moved, wait, err := p.Reserve(ctx, Need{Model: model, Input: r.Input, Output: r.Output, Exclude: r.Account})
	if err != nil || moved == nil {
		return nil, wait, err
	}
	p.uncount(moved) // counted where the request was admitted, not here
	// The tenant's lease travels with the request (in the ticket record
	// writes, for whoever settles); the account's does not.
	var keep, tenant []Lease
	for _, l := range r.Leases {
		if l.Tenant {
			tenant = append(tenant, l)
		} else {
			keep = append(keep, l)
		}
	}
	own := len(moved.Leases)
	moved.Leases = append(moved.Leases, tenant...)
	if record != nil {
		if err := record(moved); err != nil {
			moved.Leases = moved.Leases[:own] // the tenant's stays with r
			p.refund(ctx, moved, "refund of a reservation not moved failed")
			return nil, 0, err
		}
	}
	r.Leases = keep
	if len(moved.Leases) > 0 && moved.renew == nil {
		moved.renew = p.startRenewer(moved.Leases)
	}
	p.refund(ctx, r, "refund of a moved reservation failed")
	return moved, 0, nil
}

// refund gives r back whole on a context of its own, so that the caller's
// deadline does not cut it short, and logs a failure as what.
func (p *Pool) refund(ctx context.Context, r *Reservation, what string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := p.settle(rctx, r, anthropic.Usage{}, false)
	p.notify()
	if err != nil {
		p.log.Log(ctx, breaker.LogLevel(err), what, "account", r.Account.Name, "err", err)
	}
}

// Release ends this replica's count of r in flight, once, without
// settling it: for a stream that reserved r and whose request was settled
// through another reservation (moved to another account by a retry).
func (p *Pool) Release(r *Reservation) {
	if p.uncount(r) {
		p.notify()
	}
}

// uncount ends the count of r in flight, once; it reports whether it did.
func (p *Pool) uncount(r *Reservation) bool {
	if r == nil {
		return false
	}
	a := r.counted.Swap(nil)
	if a == nil {
		return false
	}
	p.metrics.inflight.WithLabelValues(a.Name).Set(float64(a.inflight.Add(-1)))
	return true
}

// Changed returns a channel closed the next time capacity may have freed
// (a settlement, a refund, a key back in service). Waiters re-arm by
// calling it again.
func (p *Pool) Changed() <-chan struct{} {
	p.changedMu.Lock()
	defer p.changedMu.Unlock()
	return p.changed
}

func (p *Pool) notify() {
	p.changedMu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.changedMu.Unlock()
}

// classState is what the account's last decisions and readings say of one
// class.
type classState struct {
	mu        sync.Mutex
	remaining [numAxes]int64 // after the last decision; -1 unknown
	reading   anthropic.RateLimitReading
	readAt    time.Time
}

// Remaining is what the account's own buckets hold now for class c:
// requests, input tokens and output tokens (-1 for an axis without a
// configured limit). It takes nothing.
func (p *Pool) Remaining(ctx context.Context, a *Account, c Class) ([3]int64, error) {
	out := [3]int64{-1, -1, -1}
	reqs := a.requests(c, 0, 0, 0)
	if len(reqs) == 0 {
		return out, nil
	}
	d, err := p.engine.Peek(ctx, reqs)
	if err != nil {
		return out, fmt.Errorf("keypool: remaining on %s: %w", a.Name, err)
	}
	for i, ax := range a.buckets[c].axes {
		out[ax] = d.Buckets[i].Remaining
	}
	return out, nil
}

// StopRenewing stops this process renewing r's leases (whoever settles the
// request releases them).
func (r *Reservation) StopRenewing() {
	if r != nil {
		r.renew.halt()
	}
}
