package bucket

import (
	"context"
	"errors"
	"testing"
	"time"
)

// store is what the behaviour suite needs from a backend.
type store interface {
	Engine
	Leases
}

// newStore builds a fresh backend whose clock is clock; keys of different
// stores must not collide.
type newStore func(t *testing.T, clock func() time.Time) store

// epoch is where every fake clock starts: a Saturday, noon UTC.
var epoch = time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)

// runSuite runs the behaviour suite against one backend.
func runSuite(t *testing.T, mk newStore) {
	t.Run("token bucket", func(t *testing.T) { testTokenBucket(t, mk) })
	t.Run("exact refill", func(t *testing.T) { testExactRefill(t, mk) })
	t.Run("all or nothing", func(t *testing.T) { testAllOrNothing(t, mk) })
	t.Run("adjust clamps", func(t *testing.T) { testAdjust(t, mk) })
	t.Run("peek", func(t *testing.T) { testPeek(t, mk) })
	t.Run("debt", func(t *testing.T) { testDebt(t, mk) })
	t.Run("daily", func(t *testing.T) { testDaily(t, mk) })
	t.Run("invalid", func(t *testing.T) { testInvalid(t, mk) })
	t.Run("leases", func(t *testing.T) { testLeases(t, mk) })
}

func take(t *testing.T, e Engine, reqs ...Request) Decision {
	t.Helper()
	d, err := e.Take(context.Background(), reqs)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	return d
}

func peek(t *testing.T, e Engine, reqs ...Request) Decision {
	t.Helper()
	d, err := e.Peek(context.Background(), reqs)
	if err != nil {
		t.Fatalf("Peek: %v", err)
	}
	return d
}

func adjust(t *testing.T, e Engine, reqs ...Request) Decision {
	t.Helper()
	d, err := e.Adjust(context.Background(), reqs)
	if err != nil {
		t.Fatalf("Adjust: %v", err)
	}
	return d
}

func wantResult(t *testing.T, what string, got, want Result) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// testDebt: a Take with Debt passes on N − Debt tokens, takes N, and the
// debt holds later requests back until it is refilled or refunded.
func testDebt(t *testing.T, mk newStore) {
	clk := newFakeClock(epoch)
	e := mk(t, clk.Now)
	l := Rate(10, time.Second) // one token per 100 ms
	take(t, e, Request{Key: "debt", Limit: l, N: 8})
	// 2 left: N=5 needs only 1 with a debt of 4, and leaves the bucket 3
	// tokens below empty.
	if d := peek(t, e, Request{Key: "debt", Limit: l, N: 5, Debt: 4}); !d.Allowed {
		t.Fatalf("peek with debt: %+v", d.Buckets[0])
	}
	d := take(t, e, Request{Key: "debt", Limit: l, N: 5, Debt: 4})
	wantResult(t, "take into debt", d.Buckets[0], Result{Allowed: true, Limit: 10, ResetAfter: 1300 * time.Millisecond})
	// The next needs 1 token: 3 of debt plus 1 = 400 ms; with a debt of its
	// own it still waits for the bucket to be non-empty.
	d = take(t, e, Request{Key: "debt", Limit: l, N: 1})
	wantResult(t, "in debt", d.Buckets[0], Result{Limit: 10, RetryAfter: 400 * time.Millisecond, ResetAfter: 1300 * time.Millisecond})
	d = take(t, e, Request{Key: "debt", Limit: l, N: 6, Debt: 5})
	wantResult(t, "in debt, debt allowed", d.Buckets[0], Result{Limit: 10, RetryAfter: 400 * time.Millisecond, ResetAfter: 1300 * time.Millisecond})
	// A charge, or a zero adjustment, never lowers the debt to empty.
	d = adjust(t, e, Request{Key: "debt", Limit: l, N: 2})
	wantResult(t, "charge in debt", d.Buckets[0], Result{Allowed: true, Limit: 10, ResetAfter: 1300 * time.Millisecond})
	d = adjust(t, e, Request{Key: "debt", Limit: l, N: 0})
	wantResult(t, "zero in debt", d.Buckets[0], Result{Allowed: true, Limit: 10, ResetAfter: 1300 * time.Millisecond})
	// A refund of 4 (the request used 1 of its 5) pays the debt back.
	adjust(t, e, Request{Key: "debt", Limit: l, N: -4})
	d = take(t, e, Request{Key: "debt", Limit: l, N: 1})
	wantResult(t, "after refund", d.Buckets[0], Result{Allowed: true, Limit: 10, ResetAfter: time.Second})
	// Debt never lets N − Debt above the burst through, and an Adjust
	// ignores it (it clamps at empty as always).
	if d := take(t, e, Request{Key: "debt2", Limit: l, N: 30, Debt: 19}); d.Allowed || d.Buckets[0].RetryAfter != Never {
		t.Fatalf("N − Debt > burst: %+v", d.Buckets[0])
	}
	if d := take(t, e, Request{Key: "debt2", Limit: l, N: 30, Debt: 20}); !d.Allowed {
		t.Fatalf("N − Debt = burst: %+v", d.Buckets[0])
	}
	d = adjust(t, e, Request{Key: "debt3", Limit: l, N: 15, Debt: 10})
	wantResult(t, "adjust ignores debt", d.Buckets[0], Result{Allowed: true, Limit: 10, ResetAfter: time.Second})
}

func testTokenBucket(t *testing.T, mk newStore) {
	clk := newFakeClock(epoch)
	e := mk(t, clk.Now)
	l := Rate(10, time.Second) // one token per 100 ms
	for i := range 10 {
		d := take(t, e, Request{Key: "tb", Limit: l, N: 1})
		wantResult(t, "take", d.Buckets[0], Result{
			Allowed: true, Limit: 10, Remaining: int64(9 - i),
			ResetAfter: time.Duration(i+1) * 100 * time.Millisecond,
		})
		if !d.Allowed || !d.At.Equal(epoch) {
			t.Fatalf("take %d: allowed %v at %v", i, d.Allowed, d.At)
		}
	}
	d := take(t, e, Request{Key: "tb", Limit: l, N: 1})
	wantResult(t, "empty", d.Buckets[0], Result{Limit: 10, RetryAfter: 100 * time.Millisecond, ResetAfter: time.Second})
	if d.Allowed || d.RetryAfter() != 100*time.Millisecond {
		t.Fatalf("empty bucket: %+v", d)
	}
	d = take(t, e, Request{Key: "tb", Limit: l, N: 3})
	wantResult(t, "empty, N=3", d.Buckets[0], Result{Limit: 10, RetryAfter: 300 * time.Millisecond, ResetAfter: time.Second})

	clk.Advance(100*time.Millisecond - time.Microsecond)
	if d := take(t, e, Request{Key: "tb", Limit: l, N: 1}); d.Allowed || d.Buckets[0].RetryAfter != time.Microsecond {
		t.Fatalf("1 µs early: %+v", d.Buckets[0])
	}
	clk.Advance(time.Microsecond)
	if d := take(t, e, Request{Key: "tb", Limit: l, N: 1}); !d.Allowed {
		t.Fatalf("on time: %+v", d.Buckets[0])
	}

	// N = 0 only checks, even on an empty bucket.
	d = take(t, e, Request{Key: "tb", Limit: l, N: 0})
	wantResult(t, "check", d.Buckets[0], Result{Allowed: true, Limit: 10, ResetAfter: time.Second})
	// N above the burst can never pass.
	d = take(t, e, Request{Key: "tb", Limit: l, N: 11})
	if d.Allowed || d.Buckets[0].RetryAfter != Never {
		t.Fatalf("N > burst: %+v", d.Buckets[0])
	}

	// Burst smaller than the rate: 60/min, at most 5 at once.
	lb := Limit{Capacity: 60, Per: time.Minute, Burst: 5}
	for range 5 {
		if d := take(t, e, Request{Key: "burst", Limit: lb, N: 1}); !d.Allowed {
			t.Fatal("burst denied early")
		}
	}
	d = take(t, e, Request{Key: "burst", Limit: lb, N: 1})
	wantResult(t, "past burst", d.Buckets[0], Result{Limit: 60, RetryAfter: time.Second, ResetAfter: 5 * time.Second})

	// Burst above the rate: 2/s, up to 6 at once.
	lb = Limit{Capacity: 2, Per: time.Second, Burst: 6}
	d = take(t, e, Request{Key: "big", Limit: lb, N: 6})
	wantResult(t, "big burst", d.Buckets[0], Result{Allowed: true, Limit: 2, ResetAfter: 3 * time.Second})
}

func testExactRefill(t *testing.T, mk newStore) {
	tests := []struct {
		name string
		l    Limit
	}{
		{"7 per minute (8571428.57 µs each)", Rate(7, time.Minute)},
		{"30000 per minute", Rate(30000, time.Minute)},
		{"1e9 per second (1 ns each)", Rate(1_000_000_000, time.Second)},
		{"3 per day", Rate(3, 24*time.Hour)},
		{"1000 per 3 s, burst 2000", Limit{Capacity: 1000, Per: 3 * time.Second, Burst: 2000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock(epoch)
			e := mk(t, clk.Now)
			burst := tt.l.Burst
			if burst == 0 {
				burst = tt.l.Capacity
			}
			r := Request{Key: "x", Limit: tt.l, N: burst}
			if !take(t, e, r).Allowed {
				t.Fatal("full bucket denied its burst")
			}
			// Refill in many uneven steps: every Per brings exactly
			// Capacity tokens, with no drift after many periods.
			step := tt.l.Per/7 + 3*time.Microsecond
			var elapsed time.Duration
			var taken int64
			for range 50 {
				clk.Advance(step)
				elapsed += step
				d := peek(t, e, Request{Key: "x", Limit: tt.l})
				n := d.Buckets[0].Remaining
				if n > 0 {
					if d := take(t, e, Request{Key: "x", Limit: tt.l, N: n}); !d.Allowed || d.Buckets[0].Remaining != 0 {
						t.Fatalf("take of the peeked %d: %+v", n, d.Buckets[0])
					}
					taken += n
				}
			}
			// taken = floor(elapsed * Capacity / Per), computed exactly.
			want := tokensIn(instant{elapsed.Microseconds(), 0}, tt.l.Capacity, tt.l.Per.Microseconds())
			if taken != want {
				t.Fatalf("refilled %d tokens in %v, want %d", taken, elapsed, want)
			}
		})
	}
}

func testAllOrNothing(t *testing.T, mk newStore) {
	clk := newFakeClock(epoch)
	e := mk(t, clk.Now)
	loc := mustLoad(t, "America/Phoenix")
	rpm := Request{Key: "{acct}:rpm", Limit: Rate(5, time.Minute), N: 1}
	tpm := Request{Key: "{acct}:tpm", Limit: Rate(100, time.Minute), N: 80}
	rpd := Request{Key: "{acct}:rpd", Limit: PerDay(3, loc), N: 1}

	d := take(t, e, rpm, tpm, rpd)
	if !d.Allowed || d.Buckets[0].Remaining != 4 || d.Buckets[1].Remaining != 20 || d.Buckets[2].Remaining != 2 {
		t.Fatalf("first: %+v", d)
	}
	// 30 tokens do not fit: nothing is taken, rpm and rpd included.
	tpm.N = 30
	d = take(t, e, rpm, tpm, rpd)
	if d.Allowed {
		t.Fatalf("over tpm allowed: %+v", d)
	}
	wantResult(t, "rpm (would pass)", d.Buckets[0], Result{Allowed: true, Limit: 5, Remaining: 4, ResetAfter: 12 * time.Second})
	wantResult(t, "tpm (fails)", d.Buckets[1], Result{Limit: 100, Remaining: 20, RetryAfter: 6 * time.Second, ResetAfter: 48 * time.Second})
	if d.RetryAfter() != 6*time.Second {
		t.Fatalf("decision retry-after %v", d.RetryAfter())
	}
	p := peek(t, e, rpm, tpm, rpd)
	if p.Buckets[0].Remaining != 4 || p.Buckets[1].Remaining != 20 || p.Buckets[2].Remaining != 2 {
		t.Fatalf("a denied take consumed: %+v", p)
	}
	// The daily quota fails: again nothing is taken.
	tpm.N = 1
	rpd.N = 3
	if d := take(t, e, rpm, tpm, rpd); d.Allowed || d.Buckets[2].Allowed {
		t.Fatalf("over rpd allowed: %+v", d)
	}
	if p := peek(t, e, rpm, tpm); p.Buckets[0].Remaining != 4 || p.Buckets[1].Remaining != 20 {
		t.Fatalf("a denied take consumed: %+v", p)
	}
	// Different N per bucket, all pass.
	rpd.N = 2
	tpm.N = 20
	d = take(t, e, rpm, tpm, rpd)
	if !d.Allowed || d.Buckets[0].Remaining != 3 || d.Buckets[1].Remaining != 0 || d.Buckets[2].Remaining != 0 {
		t.Fatalf("last: %+v", d)
	}
}

func testAdjust(t *testing.T, mk newStore) {
	clk := newFakeClock(epoch)
	e := mk(t, clk.Now)
	l := Rate(10, time.Second)
	tb := func(n int64) Request { return Request{Key: "{a}:tb", Limit: l, N: n} }
	dl := func(n int64) Request { return Request{Key: "{a}:day", Limit: PerDay(10, nil), N: n} }

	take(t, e, tb(4), dl(4))
	tests := []struct {
		name        string
		n           int64
		remTB, remD int64
	}{
		{"refund 1", -1, 7, 7},
		{"refund past full", -10, 10, 10},
		{"charge 3", 3, 7, 7},
		{"charge past empty", 25, 0, 0},
		{"zero", 0, 0, 0},
		{"refund 2", -2, 2, 2},
	}
	for _, tt := range tests {
		d := adjust(t, e, tb(tt.n), dl(tt.n))
		if !d.Allowed || d.Buckets[0].Remaining != tt.remTB || d.Buckets[1].Remaining != tt.remD {
			t.Fatalf("%s: %+v", tt.name, d)
		}
		if d.Buckets[0].RetryAfter != 0 || d.Buckets[1].RetryAfter != 0 {
			t.Fatalf("%s: adjust reported a retry-after: %+v", tt.name, d)
		}
	}
	// Charging past empty leaves the bucket exactly empty, not in debt.
	adjust(t, e, tb(1000))
	d := take(t, e, tb(1))
	wantResult(t, "after overcharge", d.Buckets[0], Result{Limit: 10, RetryAfter: 100 * time.Millisecond, ResetAfter: time.Second})
}

func testPeek(t *testing.T, mk newStore) {
	clk := newFakeClock(epoch)
	e := mk(t, clk.Now)
	l := Rate(10, time.Second)
	take(t, e, Request{Key: "p", Limit: l, N: 7})
	for range 3 {
		d := peek(t, e, Request{Key: "p", Limit: l, N: 2})
		wantResult(t, "peek 2", d.Buckets[0], Result{Allowed: true, Limit: 10, Remaining: 3, ResetAfter: 700 * time.Millisecond})
	}
	d := peek(t, e, Request{Key: "p", Limit: l, N: 5})
	wantResult(t, "peek 5", d.Buckets[0], Result{Limit: 10, Remaining: 3, RetryAfter: 200 * time.Millisecond, ResetAfter: 700 * time.Millisecond})
	if d.Allowed {
		t.Fatal("peek of 5 allowed with 3 left")
	}
	d = peek(t, e, Request{Key: "fresh", Limit: l, N: 10})
	wantResult(t, "fresh", d.Buckets[0], Result{Allowed: true, Limit: 10, Remaining: 10})
	d = peek(t, e, Request{Key: "fresh", Limit: PerDay(5, nil), N: 6})
	if d.Allowed || d.Buckets[0].RetryAfter != Never {
		t.Fatalf("daily peek above capacity: %+v", d.Buckets[0])
	}
}

func testDaily(t *testing.T, mk newStore) {
	tests := []struct {
		zone  string
		day   string // a local date; the quota is spent at local noon
		hours int    // length of that day
	}{
		{"UTC", "2026-06-10", 24},
		{"America/Phoenix", "2026-03-08", 24},
		{"America/Los_Angeles", "2026-03-08", 23},
		{"America/Los_Angeles", "2026-11-01", 25},
		{"America/Havana", "2026-03-07", 24}, // the next midnight is skipped: 01:00 follows 23:59:59
		{"America/Havana", "2026-03-08", 23}, // this day starts at 01:00
	}
	for _, tt := range tests {
		t.Run(tt.zone+" "+tt.day, func(t *testing.T) {
			loc := mustLoad(t, tt.zone)
			day, err := time.Parse(time.DateOnly, tt.day) // only its date is used
			if err != nil {
				t.Fatal(err)
			}
			start := dayStart(day.Year(), day.Month(), day.Day(), loc)
			next := dayStart(day.Year(), day.Month(), day.Day()+1, loc)
			if h := next.Sub(start).Hours(); h != float64(tt.hours) {
				t.Fatalf("day lasts %vh, want %d", h, tt.hours)
			}
			noon := time.Date(day.Year(), day.Month(), day.Day(), 12, 0, 0, 0, loc)
			clk := newFakeClock(noon)
			e := mk(t, clk.Now)
			q := Request{Key: "rpd", Limit: PerDay(3, loc), N: 1}
			for i := range 3 {
				d := take(t, e, q)
				wantResult(t, "take", d.Buckets[0], Result{Allowed: true, Limit: 3, Remaining: int64(2 - i), ResetAfter: next.Sub(noon)})
			}
			d := take(t, e, q)
			wantResult(t, "spent", d.Buckets[0], Result{Limit: 3, RetryAfter: next.Sub(noon), ResetAfter: next.Sub(noon)})

			clk.Set(next.Add(-time.Microsecond))
			if d := take(t, e, q); d.Allowed || d.Buckets[0].RetryAfter != time.Microsecond {
				t.Fatalf("1 µs before midnight: %+v", d.Buckets[0])
			}
			clk.Set(next)
			d = take(t, e, q)
			after := dayStart(day.Year(), day.Month(), day.Day()+2, loc)
			wantResult(t, "midnight", d.Buckets[0], Result{Allowed: true, Limit: 3, Remaining: 2, ResetAfter: after.Sub(next)})
		})
	}
}

func testInvalid(t *testing.T, mk newStore) {
	e := mk(t, newFakeClock(epoch).Now)
	l := Rate(1, time.Second)
	tests := []struct {
		name string
		reqs []Request
		want error
	}{
		{"no requests", nil, ErrInvalidKey},
		{"empty key", []Request{{Key: "", Limit: l}}, ErrInvalidKey},
		{"different tags", []Request{{Key: "{a}x", Limit: l}, {Key: "{b}x", Limit: l}}, ErrCrossSlot},
		{"untagged pair", []Request{{Key: "x", Limit: l}, {Key: "y", Limit: l}}, ErrCrossSlot},
		{"repeated key", []Request{{Key: "{a}x", Limit: l}, {Key: "{a}x", Limit: l}}, ErrDuplicateKey},
		{"zero capacity", []Request{{Key: "k", Limit: Rate(0, time.Second)}}, ErrInvalidLimit},
		{"zero period", []Request{{Key: "k", Limit: Rate(1, 0)}}, ErrInvalidLimit},
		{"negative burst", []Request{{Key: "k", Limit: Limit{Capacity: 1, Per: time.Second, Burst: -1}}}, ErrInvalidLimit},
		{"unknown kind", []Request{{Key: "k", Limit: Limit{Kind: 9, Capacity: 1}}}, ErrInvalidLimit},
		{"negative take", []Request{{Key: "k", Limit: l, N: -1}}, ErrNegativeN},
		{"negative debt", []Request{{Key: "k", Limit: l, N: 1, Debt: -1}}, ErrInvalidLimit},
		{"debt on a daily quota", []Request{{Key: "k", Limit: PerDay(5, nil), N: 1, Debt: 1}}, ErrInvalidLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.Take(context.Background(), tt.reqs); !errors.Is(err, tt.want) {
				t.Fatalf("Take: err %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := e.Adjust(context.Background(), []Request{{Key: "k", Limit: l, N: -1}}); err != nil {
		t.Fatalf("negative adjust: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Take(ctx, []Request{{Key: "k", Limit: l, N: 1}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

func testLeases(t *testing.T, mk newStore) {
	clk := newFakeClock(epoch)
	e := mk(t, clk.Now)
	ctx := context.Background()
	acquire := func(ttl time.Duration) Lease {
		t.Helper()
		l, err := e.Acquire(ctx, "conc", 2, ttl)
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		return l
	}
	held := func() int64 {
		t.Helper()
		n, err := e.Held(ctx, "conc")
		if err != nil {
			t.Fatalf("Held: %v", err)
		}
		return n
	}
	a := acquire(10 * time.Second)
	clk.Advance(time.Second)
	b := acquire(30 * time.Second)
	if !a.Acquired || !b.Acquired || a.ID == "" || a.ID == b.ID || b.Held != 2 || b.Limit != 2 {
		t.Fatalf("acquire: %+v %+v", a, b)
	}
	c := acquire(10 * time.Second)
	if c.Acquired || c.ID != "" || c.Held != 2 || c.RetryAfter != 9*time.Second {
		t.Fatalf("third lease: %+v", c)
	}
	if ok, err := e.Release(ctx, "conc", a.ID); !ok || err != nil {
		t.Fatalf("release: %v %v", ok, err)
	}
	if ok, _ := e.Release(ctx, "conc", a.ID); ok {
		t.Fatal("second release reported true")
	}
	c = acquire(10 * time.Second)
	if !c.Acquired || held() != 2 {
		t.Fatalf("after release: %+v", c)
	}
	// Renew keeps c alive past its first TTL; b (30 s) lives on; an
	// unrenewed lease would be gone.
	clk.Advance(9 * time.Second)
	if ok, err := e.Renew(ctx, "conc", c.ID, 10*time.Second); !ok || err != nil {
		t.Fatalf("renew: %v %v", ok, err)
	}
	clk.Advance(9 * time.Second)
	if n := held(); n != 2 {
		t.Fatalf("held %d after renew, want 2", n)
	}
	// The holders die: their leases expire and the slots free themselves.
	clk.Advance(12 * time.Second)
	if n := held(); n != 0 {
		t.Fatalf("held %d after every TTL, want 0", n)
	}
	if ok, _ := e.Renew(ctx, "conc", c.ID, time.Second); ok {
		t.Fatal("renewed an expired lease")
	}
	if ok, _ := e.Release(ctx, "conc", b.ID); ok {
		t.Fatal("released an expired lease")
	}
	if l := acquire(time.Second); !l.Acquired || l.Held != 1 {
		t.Fatalf("acquire after expiry: %+v", l)
	}
	if l, err := e.Acquire(ctx, "zero", 0, time.Second); err != nil || l.Acquired || l.RetryAfter != Never {
		t.Fatalf("limit 0: %+v %v", l, err)
	}
}
