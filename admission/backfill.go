package admission

import (
	"time"

	"github.com/claude-guardian/claude-guardian/keypool"
)

// maxBackfill bounds the requests behind a waiting head tried per round.
const maxBackfill = 8

// backfill admits, while the head waits for capacity, requests behind it
// (same priority, in serving order) that fit now, as long as the head
// would not wait longer for it: a request that fits only on the account
// the head waits for is tried elsewhere, or left waiting. Without it a head
// waiting for a large input on one account holds up every smaller request
// while the other accounts' capacity goes unused (measured with
// cmd/poolbench -seed 2: efficiency 0.936 strict, 0.978 backfilled).
// headWait is the pool's hint for the head; backfill reports whether the
// head itself was admitted meanwhile, and whether it refunded a trial
// reservation (which signals the pool's Changed).
func (q *Queue) backfill(head *waiter, headWait time.Duration) (admittedHead, refunded bool) {
	if headWait <= 0 {
		return false, false // no estimate to keep the head's wait to
	}
	for _, o := range q.behind(head) {
		r, headNow, refusedOn := q.place(o.t.Need, head, headWait)
		if refusedOn != nil {
			// It took what the head waits for: try it on another account.
			refunded = true
			need := o.t.Need
			need.Exclude = refusedOn
			r, headNow, _ = q.place(need, head, headWait)
		}
		if r == nil {
			continue
		}
		q.hand(o, admitted{r: r}, false)
		if headNow != nil {
			q.deliver(head, *headNow)
			return true, refunded
		}
		q.metrics.backfilled.WithLabelValues(o.t.Tenant).Inc()
	}
	return false, refunded
}

// place reserves need and asks the pool for the head again. It returns
// the reservation, and the head's result when the head can be answered
// now too; or, when the head would wait longer than headWait for it, it
// refunds the reservation and names the account it took.
func (q *Queue) place(need keypool.Need, head *waiter, headWait time.Duration) (r *keypool.Reservation, headNow *admitted, refusedOn *keypool.Account) {
	if r = q.reserve(need); r == nil {
		return nil, nil, nil
	}
	hr, wait, err := q.tryHead(head)
	switch {
	case hr != nil || err != nil:
		return r, &admitted{r: hr, err: err}, nil
	case wait > headWait:
		q.refund(r)
		return nil, nil, r.Account
	}
	return r, nil, nil
}

// behind returns up to maxBackfill waiters after head at its priority, in
// serving order: the rest of the head's tenant, then the other tenants.
func (q *Queue) behind(head *waiter) []*waiter {
	q.mu.Lock()
	defer q.mu.Unlock()
	lv := q.levels[head.t.Priority]
	if lv == nil {
		return nil
	}
	var out []*waiter
	for i := range lv.ring {
		for _, w := range lv.ring[(lv.next+i)%len(lv.ring)].waiters {
			if w == head || w.gone {
				continue
			}
			if out = append(out, w); len(out) == maxBackfill {
				return out
			}
		}
	}
	return out
}

func (q *Queue) reserve(need keypool.Need) *keypool.Reservation {
	r, _, err := q.try(need)
	if err != nil {
		return nil
	}
	return r
}

// tryHead asks the pool for the head again: admitted, or how long it waits.
func (q *Queue) tryHead(head *waiter) (*keypool.Reservation, time.Duration, error) {
	return q.try(head.t.Need)
}
