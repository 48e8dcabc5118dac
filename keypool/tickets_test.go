package keypool

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
	"github.com/claude-guardian/claude-guardian/internal/testclock"
)

func TestTickets(t *testing.T) {
	clk := testclock.New(time.Unix(1000, 0))
	srv := redistest.Start(t)
	stores := map[string]Tickets{
		"memory": NewMemoryTickets(time.Minute, clk.Now),
		"redis":  NewRedisTickets(srv.NewClient(t), "guardian-test", time.Minute),
	}
	ctx := context.Background()
	want := Ticket{Account: "org-b", Class: Haiku, Model: "claude-haiku-4-5", Requests: 1, Input: 120, Output: 512,
		Leases: []Lease{{Key: "{tenant:shop}:inflight", ID: "l1", Tenant: true}},
		At:     1_795_867_200_000_000, OutBefore: 7000}
	for name, s := range stores {
		t.Run(name, func(t *testing.T) {
			if _, ok, err := s.Get(ctx, "req_1"); ok || err != nil {
				t.Fatalf("empty store: %v %v", ok, err)
			}
			if err := s.Put(ctx, "req_1", want); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.Get(ctx, "req_1")
			if !ok || err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v %v %v", got, ok, err)
			}
			if err := s.Delete(ctx, "req_1"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := s.Get(ctx, "req_1"); ok {
				t.Error("deleted ticket still there")
			}
		})
	}
	// Expiry (memory clock; Redis uses its own TTL, checked by PTTL).
	m := stores["memory"]
	m.Put(ctx, "old", want)
	clk.Advance(61 * time.Second)
	if _, ok, _ := m.Get(ctx, "old"); ok {
		t.Error("expired ticket returned")
	}
	r := stores["redis"].(*RedisTickets)
	r.Put(ctx, "x", want)
	if ttl := r.c.PTTL(ctx, r.key("x")).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("redis ticket TTL %v", ttl)
	}
	// Resume maps a ticket back to the pool's account.
	p, _, _ := reservePool(t)
	res := p.Resume(want)
	if res == nil || res.Account.Name != "org-b" || res.Input != 120 || res.Class != Haiku {
		t.Errorf("Resume = %+v", res)
	}
	if p.Resume(Ticket{Account: "gone"}) != nil {
		t.Error("Resume of an unknown account")
	}
}
