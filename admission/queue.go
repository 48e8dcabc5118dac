// Package admission makes a request wait for pool capacity instead of
// failing: a priority queue, fair across tenants, with a deadline per
// request. Capacity freeing up (a settlement, a refund, a cool-down ending,
// the buckets refilling) wakes the head of the queue.
package admission

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/keypool"
)

// Reserver is the part of the key pool the queue uses.
type Reserver interface {
	Reserve(ctx context.Context, need keypool.Need) (*keypool.Reservation, time.Duration, error)
	Settle(ctx context.Context, r *keypool.Reservation, u anthropic.Usage, reached bool) error
	Changed() <-chan struct{}
}

// Ticket is one request asking to be admitted.
type Ticket struct {
	Tenant string
	// Priority: higher is served first (the front maps high/normal/low to
	// 2/1/0).
	Priority int
	Need     keypool.Need
	// Deadline is when the request gives up waiting (a 429 with
	// retry-after for the caller).
	Deadline time.Time
}

// Rejection is why a request was not admitted.
type Rejection struct {
	// Reason is a stable code: deadline, too_large, no_key, cancelled.
	Reason string
	// RetryAfter is when capacity is expected (0 when unknown).
	RetryAfter time.Duration
	Err        error
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("admission: %s (retry after %v): %v", r.Reason, r.RetryAfter, r.Err)
}

func (r *Rejection) Unwrap() error { return r.Err }

// Queue admits requests. It is safe for concurrent use.
type Queue struct {
	pool    Reserver
	metrics *Metrics
	now     func() time.Time

	mu       sync.Mutex
	levels   map[int]*level
	depth    int
	running  bool          // a dispatcher is running
	arrived  chan struct{} // closed when a waiter arrives while dispatching
	lastWait time.Duration // the pool's last estimate for the head
}

// level is one priority: a ring of tenants, each with its own FIFO.
type level struct {
	ring    []*tenantQueue
	byName  map[string]*tenantQueue
	next    int // ring index of the tenant served next
	waiting int
}

type tenantQueue struct {
	name    string
	waiters []*waiter
}

type waiter struct {
	t      Ticket
	result chan admitted // buffered 1
	gone   bool          // the caller stopped waiting (under Queue.mu)
	since  time.Time
}

type admitted struct {
	r   *keypool.Reservation
	err error
}

// New returns a queue in front of pool.
func New(pool Reserver, m *Metrics) *Queue {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Queue{pool: pool, metrics: m, now: time.Now, levels: map[int]*level{}}
}

// Admit returns a reservation for t, waiting for capacity up to t.Deadline.
// A request that cannot be admitted gets a *Rejection.
func (q *Queue) Admit(ctx context.Context, t Ticket) (*keypool.Reservation, error) {
	start := q.now()
	q.mu.Lock()
	empty := q.depth == 0
	q.mu.Unlock()
	if empty { // nobody ahead: try at once
		r, wait, err := q.pool.Reserve(ctx, t.Need)
		if err != nil || r != nil {
			return q.finish(t, start, r, err)
		}
		q.mu.Lock()
		q.lastWait = wait
		q.mu.Unlock()
	}
	if !t.Deadline.After(start) {
		return q.finish(t, start, nil, q.deadlineErr())
	}
	w := &waiter{t: t, result: make(chan admitted, 1), since: start}
	q.enqueue(w)
	timer := time.NewTimer(t.Deadline.Sub(start))
	defer timer.Stop()
	select {
	case a := <-w.result:
		return q.finish(t, start, a.r, a.err)
	case <-timer.C:
		if a, served := q.abandon(w); served {
			return q.finish(t, start, a.r, a.err)
		}
		return q.finish(t, start, nil, q.deadlineErr())
	case <-ctx.Done():
		if a, served := q.abandon(w); served && a.r != nil {
			_ = q.pool.Settle(context.WithoutCancel(ctx), a.r, anthropic.Usage{}, false)
		}
		return q.finish(t, start, nil, &Rejection{Reason: "cancelled", Err: ctx.Err()})
	}
}

func (q *Queue) deadlineErr() error {
	q.mu.Lock()
	wait := q.lastWait
	q.mu.Unlock()
	return &Rejection{Reason: "deadline", RetryAfter: wait, Err: errors.New("no account had capacity before the deadline")}
}

// finish records the outcome and maps pool errors to rejections.
func (q *Queue) finish(t Ticket, start time.Time, r *keypool.Reservation, err error) (*keypool.Reservation, error) {
	waited := q.now().Sub(start)
	switch {
	case errors.Is(err, keypool.ErrTooLarge):
		err = &Rejection{Reason: "too_large", Err: err}
	case errors.Is(err, keypool.ErrNoKey):
		err = &Rejection{Reason: "no_key", Err: err}
	}
	outcome := "admitted"
	var rej *Rejection
	if errors.As(err, &rej) {
		outcome = rej.Reason
		q.metrics.rejections.WithLabelValues(t.Tenant, rej.Reason).Inc()
	} else if err != nil {
		outcome = "error"
	}
	q.metrics.wait.WithLabelValues(t.Tenant, outcome).Observe(waited.Seconds())
	return r, err
}

func (q *Queue) enqueue(w *waiter) {
	q.mu.Lock()
	defer q.mu.Unlock()
	lv := q.levels[w.t.Priority]
	if lv == nil {
		lv = &level{byName: map[string]*tenantQueue{}}
		q.levels[w.t.Priority] = lv
	}
	tq := lv.byName[w.t.Tenant]
	if tq == nil {
		tq = &tenantQueue{name: w.t.Tenant}
		lv.byName[w.t.Tenant] = tq
		lv.ring = append(lv.ring, tq)
	}
	tq.waiters = append(tq.waiters, w)
	lv.waiting++
	q.depth++
	q.metrics.depth.WithLabelValues(w.t.Tenant).Inc()
	if !q.running {
		q.running = true
		q.arrived = make(chan struct{})
		go q.dispatch()
	} else {
		q.wake()
	}
}

// abandon takes w out of the queue when its caller stops waiting. If the
// dispatcher served it meanwhile, the result is returned instead.
func (q *Queue) abandon(w *waiter) (admitted, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case a := <-w.result:
		return a, true
	default:
	}
	w.gone = true
	q.remove(w)
	q.wake() // the head may have changed, or the queue emptied
	return admitted{}, false
}

// wake makes a sleeping dispatcher look at the queue again (under q.mu).
func (q *Queue) wake() {
	if !q.running {
		return
	}
	select {
	case <-q.arrived:
	default:
		close(q.arrived)
	}
}

// remove drops w from its tenant queue (under q.mu).
func (q *Queue) remove(w *waiter) {
	lv := q.levels[w.t.Priority]
	if lv == nil {
		return
	}
	tq := lv.byName[w.t.Tenant]
	if tq == nil {
		return
	}
	for i, x := range tq.waiters {
		if x == w {
			tq.waiters = append(tq.waiters[:i], tq.waiters[i+1:]...)
			lv.waiting--
			q.depth--
			q.metrics.depth.WithLabelValues(w.t.Tenant).Dec()
			break
		}
	}
	if len(tq.waiters) == 0 {
		q.dropTenant(lv, tq)
	}
	if lv.waiting == 0 {
		delete(q.levels, w.t.Priority)
	}
}

func (q *Queue) dropTenant(lv *level, tq *tenantQueue) {
	for i, x := range lv.ring {
		if x == tq {
			lv.ring = append(lv.ring[:i], lv.ring[i+1:]...)
			if lv.next > i {
				lv.next--
			}
			break
		}
	}
	if len(lv.ring) > 0 {
		lv.next %= len(lv.ring)
	} else {
		lv.next = 0
	}
	delete(lv.byName, tq.name)
}

// head returns the waiter to serve next: the highest priority, and within
// it the tenants in turn (under q.mu).
func (q *Queue) head() *waiter {
	best, found := 0, false
	for p, lv := range q.levels {
		if lv.waiting > 0 && (!found || p > best) {
			best, found = p, true
		}
	}
	if !found {
		return nil
	}
	lv := q.levels[best]
	return lv.ring[lv.next].waiters[0]
}

// served removes the head w after it got its answer and moves the turn to
// the next tenant (under q.mu).
func (q *Queue) served(w *waiter) {
	lv := q.levels[w.t.Priority]
	tq := lv.byName[w.t.Tenant]
	q.remove(w)
	if lv2 := q.levels[w.t.Priority]; lv2 != nil && lv2.byName[tq.name] != nil && len(lv2.ring) > 0 {
		lv2.next = (lv2.next + 1) % len(lv2.ring)
	}
}

// maxSleep bounds a dispatcher's sleep when the pool gives no better hint.
const maxSleep = time.Second

// dispatch serves the queue head until the queue is empty.
func (q *Queue) dispatch() {
	for {
		q.mu.Lock()
		w := q.head()
		if w == nil {
			q.running = false
			q.mu.Unlock()
			return
		}
		arrived := q.arrived
		q.mu.Unlock()
		changed := q.pool.Changed()

		r, wait, err := q.try(w.t.Need)
		if err != nil || r != nil {
			q.deliver(w, admitted{r: r, err: err})
			continue
		}
		q.mu.Lock()
		q.lastWait = wait
		q.mu.Unlock()
		admittedHead, refunded := q.backfill(w, wait)
		if admittedHead {
			continue
		}
		if refunded {
			// Our own refunds signalled a change: wait for the next one.
			changed = q.pool.Changed()
		}
		timer := time.NewTimer(min(max(wait, 10*time.Millisecond), maxSleep))
		select {
		case <-timer.C:
		case <-changed:
		case <-arrived:
			q.mu.Lock()
			if q.arrived == arrived {
				q.arrived = make(chan struct{})
			}
			q.mu.Unlock()
		}
		timer.Stop()
	}
}

// deliver hands a result to w, or refunds it when w's caller has gone.
func (q *Queue) deliver(w *waiter, a admitted) { q.hand(w, a, true) }

// hand gives w its result; turn says w was served in turn (the tenants'
// turn moves on), not backfilled.
func (q *Queue) hand(w *waiter, a admitted, turn bool) {
	q.mu.Lock()
	gone := w.gone
	if !gone {
		w.result <- a
		if turn {
			q.served(w)
		} else {
			q.remove(w)
		}
	}
	q.mu.Unlock()
	if gone && a.r != nil {
		q.refund(a.r)
	}
}

// try asks the pool for need once, on the dispatcher's own bound.
func (q *Queue) try(need keypool.Need) (*keypool.Reservation, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return q.pool.Reserve(ctx, need)
}

// refund returns an unused reservation.
func (q *Queue) refund(r *keypool.Reservation) {
	_ = q.pool.Settle(context.Background(), r, anthropic.Usage{}, false)
}

// Depth is the number of waiting requests.
func (q *Queue) Depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.depth
}
