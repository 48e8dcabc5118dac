package keypool

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/internal/testclock"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

func leasePool(t *testing.T, accts ...config.Account) (*Pool, *testclock.Clock) {
	t.Helper()
	clk := testclock.New(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	mem := bucket.NewMemory(clk.Now)
	return New(accts, Options{Now: clk.Now, Engine: mem, Leases: mem, LeaseTTL: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), clk
}

func held(t *testing.T, p *Pool, key string) int64 {
	t.Helper()
	n, err := p.leases.Held(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAccountConcurrency(t *testing.T) {
	p, _ := leasePool(t,
		config.Account{Name: "org-a", Limits: tier1, Concurrency: 1, Keys: []config.Key{{ID: "a1", Key: "k1"}}},
		config.Account{Name: "org-b", Limits: tier1, Concurrency: 1, Keys: []config.Key{{ID: "b1", Key: "k2"}}})
	ctx := context.Background()
	r1 := mustReserve(t, p, Need{Model: "m", Input: 10})
	r2 := mustReserve(t, p, Need{Model: "m", Input: 10})
	if r1.Account == r2.Account {
		t.Fatal("two requests in flight on an account capped at 1")
	}
	if r, wait, err := p.Reserve(ctx, Need{Model: "m", Input: 10}); r != nil || err != nil || wait <= 0 {
		t.Fatalf("third: %v %v %v, want a wait", r, wait, err)
	}
	p.Settle(ctx, r1, anthropic.Usage{InputTokens: 10}, true)
	r3 := mustReserve(t, p, Need{Model: "m", Input: 10})
	if r3.Account != r1.Account {
		t.Errorf("the freed account should take it, got %s", r3.Account.Name)
	}
	for _, r := range []*Reservation{r2, r3} {
		p.Settle(ctx, r, anthropic.Usage{}, false)
	}
	if n := held(t, p, accountLeaseKey(r1.Account)) + held(t, p, accountLeaseKey(r2.Account)); n != 0 {
		t.Errorf("%d leases left", n)
	}
}

func TestTenantConcurrencyAcrossAccountsAndMoves(t *testing.T) {
	p, _ := leasePool(t,
		config.Account{Name: "org-a", Limits: tier1, Keys: []config.Key{{ID: "a1", Key: "k1"}}},
		config.Account{Name: "org-b", Limits: tier1, Keys: []config.Key{{ID: "b1", Key: "k2"}}})
	ctx := context.Background()
	need := Need{Model: "m", Input: 10, Tenant: "shop", TenantConcurrency: 2}
	r1, r2 := mustReserve(t, p, need), mustReserve(t, p, need)
	if r, wait, _ := p.Reserve(ctx, need); r != nil || wait <= 0 {
		t.Fatalf("third request of a tenant capped at 2: %v", r)
	}
	// Another tenant is not affected.
	other := mustReserve(t, p, Need{Model: "m", Input: 10, Tenant: "search", TenantConcurrency: 2})
	// A retry moves r1 to the other account: the tenant keeps one lease for
	// it, and the ticket the move writes carries it to whoever settles.
	var ticket Ticket
	moved, _, err := p.Move(ctx, r1, "m", func(m *Reservation) error { ticket = TicketOf(m, "m"); return nil })
	if err != nil || moved == nil {
		t.Fatalf("Move: %v %v", moved, err)
	}
	if n := held(t, p, tenantLeaseKey("shop")); n != 2 {
		t.Errorf("tenant leases after a move = %d, want 2", n)
	}
	p.Release(r1)
	for _, r := range []*Reservation{p.Resume(ticket), r2, other} {
		p.Settle(ctx, r, anthropic.Usage{}, false)
	}
	if n := held(t, p, tenantLeaseKey("shop")); n != 0 {
		t.Errorf("tenant leases after settling = %d", n)
	}
}

// TestLeaseOfADeadReplicaExpires: a replica dies holding a lease (nobody
// settles, nobody renews); after the TTL the capacity is back.
func TestLeaseOfADeadReplicaExpires(t *testing.T) {
	p, clk := leasePool(t, config.Account{Name: "org-a", Limits: tier1, Concurrency: 1, Keys: []config.Key{{ID: "a1", Key: "k1"}}})
	r := mustReserve(t, p, Need{Model: "m", Input: 10})
	r.StopRenewing() // the replica is gone
	if got, _, _ := p.Reserve(context.Background(), Need{Model: "m", Input: 10}); got != nil {
		t.Fatal("the lease should still be held")
	}
	clk.Advance(61 * time.Second)
	mustReserve(t, p, Need{Model: "m", Input: 10})
}
