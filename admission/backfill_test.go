package admission

import (
	"context"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/internal/testclock"
	"github.com/claude-guardian/claude-guardian/keypool"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// drainedPool has one or two accounts with 60,000 ITPM (1,000 a second)
// of which left[i] remain.
func drainedPool(t *testing.T, clk *testclock.Clock, left ...int64) *keypool.Pool {
	t.Helper()
	var accts []config.Account
	for i := range left {
		name := string(rune('a' + i))
		accts = append(accts, config.Account{Name: "org-" + name, Limits: config.Limits{RPM: 1000, ITPM: 60000, OTPM: 100000},
			Keys: []config.Key{{ID: name, Key: "sk-test-" + name}}})
	}
	p := keypool.New(accts, keypool.Options{Now: clk.Now, Engine: bucket.NewMemory(clk.Now)})
	ctx := context.Background()
	for i, l := range left {
		need := keypool.Need{Model: "m", Input: 60000 - l, Output: 1}
		if len(left) == 2 {
			need.Exclude = p.Accounts()[1-i] // drain account i alone
		}
		r, _, err := p.Reserve(ctx, need)
		if err != nil || r == nil || r.Account != p.Accounts()[i] {
			t.Fatalf("draining account %d: %v %v", i, r, err)
		}
		if err := p.Settle(ctx, r, anthropic.Usage{InputTokens: 60000 - l, OutputTokens: 1}, true); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func admitAsync(q *Queue, tenant string, need keypool.Need) <-chan *keypool.Reservation {
	ch := make(chan *keypool.Reservation, 1)
	go func() {
		r, _ := q.Admit(context.Background(), Ticket{Tenant: tenant, Priority: 1, Need: need, Deadline: time.Now().Add(10 * time.Second)})
		ch <- r
	}()
	return ch
}

// TestBackfillOnAnotherAccount: the head waits for 900 input tokens that
// only org-a (500 left) will have soonest; a 150-token request behind it
// would fit on org-a too, which would make the head wait longer, so it
// goes to org-b (200 left) at once, and the head still gets org-a first.
func TestBackfillOnAnotherAccount(t *testing.T) {
	clk := testclock.New(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	p := drainedPool(t, clk, 500, 200)
	q := New(p, nil)
	head := admitAsync(q, "big", keypool.Need{Model: "m", Input: 900, Output: 1})
	waitDepth(t, q, 1)
	small := admitAsync(q, "small", keypool.Need{Model: "m", Input: 150, Output: 1})
	select {
	case r := <-small:
		if r == nil || r.Account.Name != "org-b" {
			t.Fatalf("backfilled onto %v, want org-b", r)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the small request waited behind the head though org-b could take it")
	}
	if q.Depth() != 1 {
		t.Fatalf("depth %d: the head should still wait", q.Depth())
	}
	clk.Advance(400 * time.Millisecond) // org-a reaches 900
	select {
	case r := <-head:
		if r == nil || r.Account.Name != "org-a" {
			t.Fatalf("head admitted on %v, want org-a", r)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("head not admitted once org-a refilled")
	}
}

// TestBackfillNeverDelaysTheHead: with one account, a request behind the
// head fits now but would take what the head waits for: it waits its turn.
func TestBackfillNeverDelaysTheHead(t *testing.T) {
	clk := testclock.New(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	p := drainedPool(t, clk, 500)
	q := New(p, nil)
	head := admitAsync(q, "big", keypool.Need{Model: "m", Input: 900, Output: 1})
	waitDepth(t, q, 1)
	small := admitAsync(q, "small", keypool.Need{Model: "m", Input: 150, Output: 1})
	waitDepth(t, q, 2)
	select {
	case r := <-small:
		t.Fatalf("admitted ahead of the head on %v", r.Account.Name)
	case <-time.After(300 * time.Millisecond):
	}
	clk.Advance(400 * time.Millisecond)
	if r := <-head; r == nil {
		t.Fatal("head not admitted")
	}
	select {
	case <-small:
		t.Fatal("small admitted with only 0 tokens left")
	case <-time.After(100 * time.Millisecond):
	}
	clk.Advance(150 * time.Millisecond)
	if r := <-small; r == nil {
		t.Fatal("small not admitted after the head")
	}
}
