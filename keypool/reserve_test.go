package keypool

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/internal/testclock"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

var tier1 = config.Limits{RPM: 50, ITPM: 30000, OTPM: 8000}

func reservePool(t *testing.T, accts ...config.Account) (*Pool, *testclock.Clock, *bytes.Buffer) {
	t.Helper()
	clk := testclock.New(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	var log bytes.Buffer
	if len(accts) == 0 {
		accts = []config.Account{
			{Name: "org-a", Limits: tier1, Keys: []config.Key{{ID: "a1", Key: "sk-test-a1"}, {ID: "a2", Key: "sk-test-a2"}}},
			{Name: "org-b", Limits: tier1, Keys: []config.Key{{ID: "b1", Key: "sk-test-b1"}}},
		}
	}
	p := New(accts, Options{Now: clk.Now, Engine: bucket.NewMemory(clk.Now),
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	return p, clk, &log
}

func mustReserve(t *testing.T, p *Pool, n Need) *Reservation {
	t.Helper()
	r, wait, err := p.Reserve(context.Background(), n)
	if err != nil || r == nil {
		t.Fatalf("Reserve(%+v) = %v, wait %v, %v", n, r, wait, err)
	}
	return r
}

func TestReserveMostHeadroomThenFewestInFlight(t *testing.T) {
	p, _, _ := reservePool(t)
	need := Need{Model: "claude-sonnet-4-6", Input: 1000, Output: 500}
	// Equal headroom: the tie goes to fewer in flight, so they alternate.
	r1 := mustReserve(t, p, need)
	r2 := mustReserve(t, p, need)
	if r1.Account == r2.Account {
		t.Fatalf("both on %s: ties should go to the account with fewer in flight", r1.Account.Name)
	}
	// A big reservation on org-a leaves org-b with more headroom.
	big := mustReserve(t, p, Need{Model: "claude-sonnet-4-6", Input: 20000, Output: 100, Exclude: r2.Account})
	for range 3 {
		if r := mustReserve(t, p, need); r.Account == big.Account {
			t.Fatalf("went to %s with %d ITPM reserved; want the other account", r.Account.Name, big.Input)
		}
	}
}

// TestOutputCounting: with output counted as produced (the default) a
// request that starts alone on its account needs one output token and its
// max_tokens reservation may leave the bucket in debt; with another request
// in flight, or counted at the start, the whole reservation must be there
// first. Refunds pay the debt back.
func TestOutputCounting(t *testing.T) {
	acct := config.Account{Name: "org-a", Limits: tier1, Keys: []config.Key{{ID: "a1", Key: "sk-test-a1"}}}
	for _, atStart := range []bool{false, true} {
		t.Run(map[bool]string{false: "as produced", true: "at start"}[atStart], func(t *testing.T) {
			clk := testclock.New(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
			p := New([]config.Account{acct}, Options{Now: clk.Now, Engine: bucket.NewMemory(clk.Now), OutputAtStart: atStart})
			ctx := context.Background()
			first := mustReserve(t, p, Need{Model: "m", Input: 10, Output: 7000})
			// 1,000 output tokens left and a request in flight: the next,
			// asking for 4,000, waits for 3,000 (22.5 s at 8,000/min).
			r, wait, err := p.Reserve(ctx, Need{Model: "m", Input: 10, Output: 4000})
			if err != nil || r != nil || wait != 22500*time.Millisecond {
				t.Fatalf("with a request in flight: got %v, wait %v, %v; want a wait of 22.5s", r, wait, err)
			}
			if err := p.Settle(ctx, first, anthropic.Usage{InputTokens: 10, OutputTokens: 7000}, true); err != nil {
				t.Fatal(err)
			}
			r, wait, err = p.Reserve(ctx, Need{Model: "m", Input: 10, Output: 4000})
			if err != nil {
				t.Fatal(err)
			}
			if atStart {
				if r != nil || wait != 22500*time.Millisecond {
					t.Fatalf("at start: got %v, wait %v; want a wait of 22.5s", r, wait)
				}
				return
			}
			if r == nil {
				t.Fatalf("as produced, alone: refused with 1,000 output tokens left (wait %v)", wait)
			}
			// Now 3,000 in debt: one more output token needs 3,001.
			if r2, wait, _ := p.Reserve(ctx, Need{Model: "m", Input: 10, Output: 1}); r2 != nil || wait != 22507500*time.Microsecond {
				t.Fatalf("in debt: got %v, wait %v; want a wait of 22.5075s", r2, wait)
			}
			// It produced 500 of its 4,000: the refund of 3,500 pays the
			// debt and leaves 500.
			if err := p.Settle(ctx, r, anthropic.Usage{InputTokens: 10, OutputTokens: 500}, true); err != nil {
				t.Fatal(err)
			}
			rem, err := p.Remaining(ctx, p.Accounts()[0], ClassOf("m"))
			if err != nil || rem[axOTPM] != 500 {
				t.Fatalf("after the refund: %v output tokens left, %v; want 500", rem[axOTPM], err)
			}
			mustReserve(t, p, Need{Model: "m", Input: 10, Output: 1})
		})
	}
}

// TestOutputLargerThanTheBucketWaitsToStartAlone: max_tokens above the
// account's OTPM can start only alone (into debt); with another request in
// flight it waits (settlements wake the queue), it is not "too large".
func TestOutputLargerThanTheBucketWaitsToStartAlone(t *testing.T) {
	p, _, _ := reservePool(t, config.Account{Name: "org-a", Limits: tier1, Keys: []config.Key{{ID: "a1", Key: "sk-test-a1"}}})
	ctx := context.Background()
	need := Need{Model: "m", Input: 10, Output: 10000}
	first := mustReserve(t, p, need)
	r, wait, err := p.Reserve(ctx, need)
	if err != nil || r != nil || wait != aloneWait {
		t.Fatalf("with one in flight: %v, wait %v, %v; want a wait of %v", r, wait, err, aloneWait)
	}
	if err := p.Settle(ctx, first, anthropic.Usage{InputTokens: 10, OutputTokens: 10}, true); err != nil {
		t.Fatal(err)
	}
	mustReserve(t, p, need)
}

// TestSettleChargesTheCap: a reservation taken on a full bucket and
// settled later leaves our output bucket no fuller than Anthropic's could
// be if it counted the output only at the end (its bucket wasted the
// refill while full; ours refilled): min(full, before + refill) − used.
// Requests and input tokens (counted by Anthropic on arrival), refunds of
// unanswered requests and buckets away from full get nothing extra.
func TestSettleChargesTheCap(t *testing.T) {
	p, clk, _ := reservePool(t, config.Account{Name: "org-a", Limits: tier1, Keys: []config.Key{{ID: "a1", Key: "sk-test-a1"}}})
	ctx := context.Background()
	acct := p.Accounts()[0]
	remaining := func() [3]int64 {
		t.Helper()
		rem, err := p.Remaining(ctx, acct, ClassOf("m"))
		if err != nil {
			t.Fatal(err)
		}
		return rem
	}
	settleAfter := func(held time.Duration, usedOut int64, reached bool) {
		t.Helper()
		r := mustReserve(t, p, Need{Model: "m", Input: 10, Output: 1000})
		clk.Advance(held)
		// Settled from its ticket, as the front does when the response ends.
		r = p.Resume(TicketOf(r, "m"))
		if err := p.Settle(ctx, r, anthropic.Usage{InputTokens: 10, OutputTokens: usedOut}, reached); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		held    time.Duration
		reached bool
		want    [3]int64
	}{
		{"3 s from full", 3 * time.Second, true, [3]int64{50, 30000, 7500}},
		{"a minute from full", time.Minute, true, [3]int64{50, 30000, 7500}},
		{"unanswered", 3 * time.Second, false, [3]int64{50, 30000, 8000}},
	}
	for _, tt := range tests {
		clk.Advance(2 * time.Minute) // full again
		settleAfter(tt.held, 500, tt.reached)
		if got := remaining(); got != tt.want {
			t.Errorf("%s: remaining %v, want %v", tt.name, got, tt.want)
		}
	}
	clk.Advance(2 * time.Minute)
	big := mustReserve(t, p, Need{Model: "m", Input: 10, Output: 7000})
	if err := p.Settle(ctx, big, anthropic.Usage{InputTokens: 10, OutputTokens: 7000}, true); err != nil {
		t.Fatal(err)
	}
	settleAfter(3*time.Second, 500, true) // 1,000 before, into debt: 0 after
	if got := remaining()[axOTPM]; got != 900 {
		t.Errorf("settled far from full: %d output tokens left, want 1000 + 400 − 1000 + 500 = 900", got)
	}
}

func TestReserveAllOrNothingAndWait(t *testing.T) {
	p, clk, _ := reservePool(t, config.Account{Name: "org-a", Limits: tier1, Keys: []config.Key{{ID: "a1", Key: "sk-test-a1"}}})
	ctx := context.Background()
	mustReserve(t, p, Need{Model: "m", Input: 29000, Output: 10})
	// ITPM has 1,000 left: a 2,000-token request waits and takes no RPM.
	r, wait, err := p.Reserve(ctx, Need{Model: "m", Input: 2000, Output: 10})
	if r != nil || err != nil {
		t.Fatalf("got %v, %v", r, err)
	}
	// 1,000 missing tokens at 30,000/min = 2 s.
	if wait != 2*time.Second {
		t.Errorf("wait = %v, want 2s", wait)
	}
	a := p.Accounts()[0]
	d, _ := p.engine.Peek(ctx, a.requests(Sonnet, 0, 0, 0))
	if d.Buckets[axRPM].Remaining != 49 {
		t.Errorf("rpm remaining %d: a refused request must not consume RPM", d.Buckets[axRPM].Remaining)
	}
	clk.Advance(wait)
	mustReserve(t, p, Need{Model: "m", Input: 2000, Output: 10})
}

func TestSettleRefundsAndCharges(t *testing.T) {
	p, _, _ := reservePool(t, config.Account{Name: "org-a", Limits: tier1, Keys: []config.Key{{ID: "a1", Key: "sk-test-a1"}}})
	ctx := context.Background()
	a := p.Accounts()[0]
	remaining := func() [numAxes]int64 {
		d, _ := p.engine.Peek(ctx, a.requests(Sonnet, 0, 0, 0))
		return [numAxes]int64{d.Buckets[0].Remaining, d.Buckets[1].Remaining, d.Buckets[2].Remaining}
	}
	tests := []struct {
		name    string
		usage   anthropic.Usage
		reached bool
		want    [numAxes]int64 // remaining after settling
	}{
		// Reserved 1,000 in / 4,000 out. Used 800 (+100 cache writes; 5,000
		// cache reads do not count) and 300 out: refund 100 and 3,700.
		{"refund", anthropic.Usage{InputTokens: 800, CacheCreationInputTokens: 100, CacheReadInputTokens: 5000, OutputTokens: 300}, true, [numAxes]int64{49, 29100, 7700}},
		// Used more than reserved: charge the difference.
		{"charge", anthropic.Usage{InputTokens: 1500, OutputTokens: 4500}, true, [numAxes]int64{49, 28500, 3500}},
		// Never answered (refused, reset, 429): everything back.
		{"not reached", anthropic.Usage{}, false, [numAxes]int64{50, 30000, 8000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.engine = bucket.NewMemory(p.now) // fresh buckets
			r := mustReserve(t, p, Need{Model: "m", Input: 1000, Output: 4000})
			if a.InFlight() != 1 {
				t.Fatalf("in flight %d", a.InFlight())
			}
			if err := p.Settle(ctx, r, tt.usage, tt.reached); err != nil {
				t.Fatal(err)
			}
			if got := remaining(); got != tt.want {
				t.Errorf("remaining %v, want %v", got, tt.want)
			}
			if a.InFlight() != 0 {
				t.Errorf("in flight %d after settling", a.InFlight())
			}
		})
	}
}

func TestReserveHonoursAnthropicReadings(t *testing.T) {
	p, clk, _ := reservePool(t)
	now := clk.Now()
	var r anthropic.RateLimitReading
	// org-a: Anthropic says 1,000 input tokens left (rounded: maybe 500),
	// resetting in 30 s; our own bucket is full.
	r.Observe("anthropic-ratelimit-input-tokens-limit", "30000")
	r.Observe("anthropic-ratelimit-input-tokens-remaining", "1000")
	r.Observe("anthropic-ratelimit-input-tokens-reset", now.Add(30*time.Second).Format(time.RFC3339))
	p.ObserveClass(p.Key("a1"), Sonnet, 200, &r)
	for range 3 {
		if got := mustReserve(t, p, Need{Model: "claude-sonnet-4-6", Input: 800}); got.Account.Name != "org-b" {
			t.Fatalf("reserved on %s although Anthropic says it has ~1,000 tokens left", got.Account.Name)
		}
	}
	// The reading is per class: haiku on org-a is unaffected.
	h1 := mustReserve(t, p, Need{Model: "claude-haiku-4-5", Input: 800})
	h2 := mustReserve(t, p, Need{Model: "claude-haiku-4-5", Input: 800})
	if h1.Account == h2.Account {
		t.Error("haiku should still use both accounts")
	}
	// After the reset has passed the reading no longer gates.
	clk.Advance(31 * time.Second)
	seen := map[string]bool{}
	for range 4 {
		seen[mustReserve(t, p, Need{Model: "claude-sonnet-4-6", Input: 800}).Account.Name] = true
	}
	if !seen["org-a"] {
		t.Error("org-a should serve again after the reading's reset")
	}
}

func TestReserveAffinity(t *testing.T) {
	p, _, _ := reservePool(t)
	conv := Need{Model: "m", Input: 100, Output: 100, Affinity: 42}
	first := mustReserve(t, p, conv)
	// Another request occupies the other account... and the conversation
	// stays where it was even though the tie-break would move it.
	for range 5 {
		if r := mustReserve(t, p, conv); r.Account != first.Account {
			t.Fatalf("conversation moved from %s to %s", first.Account.Name, r.Account.Name)
		}
	}
	// Once its account is low (below the floor), it moves.
	mustReserve(t, p, Need{Model: "m", Input: 27000, Exclude: otherThan(p, first.Account)})
	if r := mustReserve(t, p, conv); r.Account == first.Account {
		t.Error("conversation should leave an account that is nearly out of headroom")
	}
}

func otherThan(p *Pool, a *Account) *Account {
	for _, b := range p.Accounts() {
		if b != a {
			return b
		}
	}
	return nil
}

func TestReserveCoolDownsAndKeys(t *testing.T) {
	p, clk, _ := reservePool(t)
	var r anthropic.RateLimitReading
	r.Observe("retry-after", "10")
	p.ObserveClass(p.Key("a1"), Sonnet, 429, &r)
	for range 3 {
		if got := mustReserve(t, p, Need{Model: "m", Input: 10}); got.Account.Name != "org-b" {
			t.Fatalf("reserved on cooling %s", got.Account.Name)
		}
	}
	// 529s back off 1 s, 2 s, 4 s.
	var none anthropic.RateLimitReading
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		p.ObserveClass(p.Key("b1"), Sonnet, 529, &none)
		if got := p.Accounts()[1].CoolingUntil().Sub(clk.Now()); got != want {
			t.Errorf("529 #%d: cool-down %v, want %v", i+1, got, want)
		}
	}
	// Both cooling: wait for the first to end (org-b, 4 s).
	_, wait, err := p.Reserve(context.Background(), Need{Model: "m", Input: 10})
	if err != nil || wait != 4*time.Second {
		t.Errorf("wait %v err %v, want 4s", wait, err)
	}
	// Keys of an account take turns; a disabled one is skipped.
	clk.Advance(11 * time.Second)
	a := p.Accounts()[0]
	k1, k2 := a.nextKey(), a.nextKey()
	if k1 == k2 {
		t.Error("keys of an account should take turns")
	}
	p.ObserveClass(p.Key("a2"), Sonnet, 401, &none)
	for range 3 {
		if k := a.nextKey(); k.ID != "a1" {
			t.Errorf("disabled key %s handed out", k.ID)
		}
	}
	p.ObserveClass(p.Key("a1"), Sonnet, 403, &none)
	p.ObserveClass(p.Key("b1"), Sonnet, 401, &none)
	if _, _, err := p.Reserve(context.Background(), Need{Model: "m"}); !errors.Is(err, ErrNoKey) {
		t.Errorf("err = %v, want ErrNoKey", err)
	}
}

func TestReserveTooLargeAndMove(t *testing.T) {
	p, _, _ := reservePool(t)
	ctx := context.Background()
	if _, _, err := p.Reserve(ctx, Need{Model: "m", Input: 30001}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
	r := mustReserve(t, p, Need{Model: "m", Input: 5000, Output: 100})
	from := r.Account
	moved, _, err := p.Move(ctx, r, "m", nil)
	if err != nil || moved == nil || moved.Account == from {
		t.Fatalf("Move: %+v %v", moved, err)
	}
	// Counted in flight where it was admitted until its stream releases it.
	if from.InFlight() != 1 || moved.Account.InFlight() != 0 {
		t.Errorf("in flight: from %d to %d", from.InFlight(), moved.Account.InFlight())
	}
	d, _ := p.engine.Peek(ctx, from.requests(Sonnet, 0, 0, 0))
	if d.Buckets[axITPM].Remaining != 30000 {
		t.Errorf("the refused account keeps %d ITPM reserved", 30000-d.Buckets[axITPM].Remaining)
	}
	d, _ = p.engine.Peek(ctx, moved.Account.requests(Sonnet, 0, 0, 0))
	if d.Buckets[axITPM].Remaining != 25000 {
		t.Errorf("the new account has %d ITPM reserved, want 5000", 30000-d.Buckets[axITPM].Remaining)
	}
	p.Settle(ctx, moved, anthropic.Usage{}, false)
	p.Release(r)
	p.Release(r) // once only
	if from.InFlight() != 0 || moved.Account.InFlight() != 0 {
		t.Errorf("in flight after the request: from %d to %d", from.InFlight(), moved.Account.InFlight())
	}
	// With only the refused account left, there is no alternative.
	solo, _, _ := reservePool(t, config.Account{Name: "org-a", Limits: tier1, Keys: []config.Key{{ID: "a1", Key: "k"}}})
	r = mustReserve(t, solo, Need{Model: "m", Input: 10})
	if m, wait, err := solo.Move(ctx, r, "m", nil); m != nil || wait != 0 || err != nil {
		t.Errorf("Move with no other account = %v %v %v", m, wait, err)
	}
}

func TestLimitMismatchIsReported(t *testing.T) {
	p, _, log := reservePool(t)
	var r anthropic.RateLimitReading
	r.Observe("anthropic-ratelimit-requests-limit", "1000")
	p.ObserveClass(p.Key("a1"), Sonnet, 200, &r)
	p.ObserveClass(p.Key("a1"), Sonnet, 200, &r)
	if n := strings.Count(log.String(), "tier changed"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, log)
	}
	if got := testutil.ToFloat64(p.metrics.limitReported.WithLabelValues("org-a", "sonnet", "requests")); got != 1000 {
		t.Errorf("mismatch gauge = %v", got)
	}
}

func TestClassLimitsAndWeights(t *testing.T) {
	p, _, _ := reservePool(t,
		config.Account{Name: "org-a", Limits: tier1, Classes: map[string]config.Limits{"haiku": {RPM: 50, ITPM: 50000, OTPM: 10000}},
			Keys: []config.Key{{ID: "a1", Key: "k1"}}},
		config.Account{Name: "org-b", Limits: tier1, Weight: 3, Keys: []config.Key{{ID: "b1", Key: "k2"}}},
	)
	// 40,000 input tokens fit only org-a's haiku limit.
	if r := mustReserve(t, p, Need{Model: "claude-haiku-4-5", Input: 40000}); r.Account.Name != "org-a" || r.Class != Haiku {
		t.Errorf("haiku 40k went to %s/%s", r.Account.Name, r.Class)
	}
	// Weight 3 makes org-b preferred at equal headroom.
	if r := mustReserve(t, p, Need{Model: "claude-sonnet-4-6", Input: 10}); r.Account.Name != "org-b" {
		t.Errorf("sonnet went to %s, want the heavier org-b", r.Account.Name)
	}
	for model, want := range map[string]Class{"claude-opus-5-5": Opus, "claude-haiku-4-5": Haiku, "claude-sonnet-4-6": Sonnet, "other": Sonnet} {
		if got := ClassOf(model); got != want {
			t.Errorf("ClassOf(%s) = %s", model, got)
		}
	}
}

func TestAccountGauges(t *testing.T) {
	p, _, _ := reservePool(t, config.Account{Name: "org-a", Limits: tier1, Keys: []config.Key{{ID: "a1", Key: "k"}}})
	r := mustReserve(t, p, Need{Model: "m", Input: 1000, Output: 500})
	m := p.metrics
	if got := testutil.ToFloat64(m.inflight.WithLabelValues("org-a")); got != 1 {
		t.Errorf("in_flight %v", got)
	}
	if got := testutil.ToFloat64(m.headroom.WithLabelValues("org-a", "sonnet", "itpm")); got != 29000 {
		t.Errorf("headroom itpm %v", got)
	}
	p.Settle(context.Background(), r, anthropic.Usage{InputTokens: 1000, OutputTokens: 500}, true)
	if got := testutil.ToFloat64(m.inflight.WithLabelValues("org-a")); got != 0 {
		t.Errorf("in_flight after settling %v", got)
	}
	var none anthropic.RateLimitReading
	p.ObserveClass(p.Key("a1"), Sonnet, 429, &none)
	if h := p.Accounts()[0].Health(); h != 0.9 {
		t.Errorf("health after one 429 = %v, want 0.9", h)
	}
	p.ObserveClass(p.Key("a1"), Sonnet, 200, &none)
	if got := testutil.ToFloat64(m.health.WithLabelValues("org-a")); got != 0.91 {
		t.Errorf("health gauge %v, want 0.91", got)
	}
}

// TestMoveKeepsTheRequestWhenRecordFails: the new reservation could not be
// written down (the ticket store failed): the request stays where it was,
// reserved there, and the new account is refunded.
func TestMoveKeepsTheRequestWhenRecordFails(t *testing.T) {
	p, _, _ := reservePool(t)
	ctx := context.Background()
	r := mustReserve(t, p, Need{Model: "m", Input: 5000, Output: 100})
	broken := errors.New("ticket store down")
	moved, _, err := p.Move(ctx, r, "m", func(*Reservation) error { return broken })
	if moved != nil || !errors.Is(err, broken) {
		t.Fatalf("Move = %v, %v; want nil and the record error", moved, err)
	}
	for _, a := range p.accounts {
		d, _ := p.engine.Peek(ctx, a.requests(Sonnet, 0, 0, 0))
		want := int64(30000)
		if a == r.Account {
			want = 25000
		}
		if got := d.Buckets[axITPM].Remaining; got != want {
			t.Errorf("%s: ITPM remaining %d, want %d", a.Name, got, want)
		}
		if n, want := a.InFlight(), map[bool]int64{true: 1, false: 0}[a == r.Account]; n != want {
			t.Errorf("%s: in flight %d, want %d", a.Name, n, want)
		}
	}
}
