package admission

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/keypool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// slots is a Reserver with a number of free slots; Free gives one back.
type slots struct {
	mu       sync.Mutex
	free     int
	changed  chan struct{}
	order    []string // tenants in admission order (Need.Model carries it)
	settled  int
	tooLarge bool
	// hint is the wait Reserve suggests when no slot is free.
	hint time.Duration
}

// newSlots gives a long hint: wake-ups must come from Changed.
func newSlots(n int) *slots {
	return &slots{free: n, changed: make(chan struct{}), hint: 3 * time.Second}
}

func (s *slots) Reserve(_ context.Context, n keypool.Need) (*keypool.Reservation, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tooLarge {
		return nil, 0, keypool.ErrTooLarge
	}
	if s.free == 0 {
		return nil, s.hint, nil
	}
	s.free--
	s.order = append(s.order, n.Model)
	return &keypool.Reservation{Requests: 1}, 0, nil
}

func (s *slots) Settle(context.Context, *keypool.Reservation, anthropic.Usage, bool) error {
	s.mu.Lock()
	s.settled++
	s.mu.Unlock()
	s.Free(1)
	return nil
}

func (s *slots) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *slots) Free(n int) {
	s.mu.Lock()
	s.free += n
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func ticket(tenant string, prio int, wait time.Duration) Ticket {
	return Ticket{Tenant: tenant, Priority: prio, Need: keypool.Need{Model: tenant}, Deadline: time.Now().Add(wait)}
}

// waitDepth polls until the queue holds n waiters.
func waitDepth(t *testing.T, q *Queue, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for q.Depth() != n {
		if time.Now().After(deadline) {
			t.Fatalf("depth %d, want %d", q.Depth(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAdmitAtOnceWhenFree(t *testing.T) {
	q := New(newSlots(1), nil)
	r, err := q.Admit(context.Background(), ticket("a", 1, time.Second))
	if err != nil || r == nil {
		t.Fatalf("%v %v", r, err)
	}
}

func TestAdmitWaitsForCapacity(t *testing.T) {
	s := newSlots(0)
	q := New(s, nil)
	done := make(chan error, 1)
	go func() {
		_, err := q.Admit(context.Background(), ticket("a", 1, 10*time.Second))
		done <- err
	}()
	waitDepth(t, q, 1)
	s.Free(1) // a settlement elsewhere
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not woken by the freed capacity")
	}
	waitDepth(t, q, 0)
}

func TestAdmitDeadline(t *testing.T) {
	q := New(newSlots(0), nil)
	start := time.Now()
	_, err := q.Admit(context.Background(), ticket("a", 1, 100*time.Millisecond))
	var rej *Rejection
	if !errors.As(err, &rej) || rej.Reason != "deadline" || rej.RetryAfter != 3*time.Second {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Error("rejected before the deadline")
	}
	waitDepth(t, q, 0)
}

func TestAdmitTooLargeAtOnce(t *testing.T) {
	s := newSlots(0)
	s.tooLarge = true
	_, err := New(s, nil).Admit(context.Background(), ticket("a", 1, time.Minute))
	var rej *Rejection
	if !errors.As(err, &rej) || rej.Reason != "too_large" {
		t.Fatalf("err = %v", err)
	}
}

// admitAll queues the tickets in order, frees one slot at a time and
// returns the order in which tenants were admitted. Reserve gives no wait
// hint, which turns backfill off: with one, a slot freed while the
// dispatcher is backfilling after the head's failed try would go to a
// waiter behind the head, and the order would be the scheduler's.
func admitAll(t *testing.T, tickets []Ticket) []string {
	t.Helper()
	s := newSlots(0)
	s.hint = 0
	q := New(s, nil)
	var wg sync.WaitGroup
	for i, tk := range tickets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := q.Admit(context.Background(), tk); err != nil {
				t.Error(err)
			}
		}()
		waitDepth(t, q, i+1) // arrival order is the test's
	}
	for range tickets {
		n := len(s.order)
		s.Free(1)
		for len(orderOf(s)) == n {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	return orderOf(s)
}

func orderOf(s *slots) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

func TestPriorityFirst(t *testing.T) {
	got := admitAll(t, []Ticket{ticket("low", 0, time.Minute), ticket("normal", 1, time.Minute), ticket("high", 2, time.Minute)})
	want := []string{"high", "normal", "low"}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("order %v, want %v", got, want)
	}
}

func TestFairAcrossTenants(t *testing.T) {
	var tickets []Ticket
	for range 6 {
		tickets = append(tickets, ticket("burst", 1, time.Minute))
	}
	tickets = append(tickets, ticket("quiet", 1, time.Minute))
	got := admitAll(t, tickets)
	for i, tenant := range got {
		if tenant == "quiet" {
			if i > 1 {
				t.Errorf("quiet served at position %d behind a burst: %v", i, got)
			}
			return
		}
	}
	t.Errorf("quiet never served: %v", got)
}

func TestCancelledWaiterLeavesNothing(t *testing.T) {
	s := newSlots(0)
	q := New(s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := q.Admit(ctx, ticket("a", 1, time.Minute))
		done <- err
	}()
	waitDepth(t, q, 1)
	cancel()
	var rej *Rejection
	if err := <-done; !errors.As(err, &rej) || rej.Reason != "cancelled" {
		t.Fatalf("err = %v", err)
	}
	waitDepth(t, q, 0)
	s.Free(1)
	time.Sleep(20 * time.Millisecond)
	if len(orderOf(s)) != 0 {
		t.Error("capacity was reserved for a request that had gone")
	}
}
