package keypool

import (
	"context"
	"sync"
	"time"

	"github.com/claude-guardian/claude-guardian/internal/breaker"
)

// Lease is a concurrency lease a reservation holds: on the tenant (across
// accounts) or on the account.
type Lease struct {
	Key    string `json:"key"`
	ID     string `json:"id"`
	Tenant bool   `json:"tenant,omitempty"`
}

func tenantLeaseKey(tenant string) string { return "{tenant:" + tenant + "}:inflight" }
func accountLeaseKey(a *Account) string   { return "{acct:" + a.Name + "}:inflight" }

// acquire takes one lease on key if fewer than limit are held. When it
// cannot, it returns how long until one should free (a hint).
func (p *Pool) acquire(ctx context.Context, key string, limit int64, tenant bool) (Lease, time.Duration, bool, error) {
	l, err := p.leases.Acquire(ctx, key, limit, p.leaseTTL)
	if err != nil {
		return Lease{}, 0, false, err
	}
	if !l.Acquired {
		return Lease{}, max(l.RetryAfter, 10*time.Millisecond), false, nil
	}
	return Lease{Key: key, ID: l.ID, Tenant: tenant}, 0, true, nil
}

// releaseLeases ends leases; errors only delay the reclaim to the TTL.
func (p *Pool) releaseLeases(ctx context.Context, ls []Lease) {
	for _, l := range ls {
		if _, err := p.leases.Release(ctx, l.Key, l.ID); err != nil {
			p.log.Log(ctx, breaker.LogLevel(err), "lease not released (it expires)", "key", l.Key, "err", err)
		}
	}
}

// renewer keeps a reservation's leases alive while its request runs: every
// third of the TTL, until stopped or until none of them is held any more
// (released elsewhere, e.g. by the replica that settled the request).
type renewer struct {
	once sync.Once
	stop chan struct{}
}

func (p *Pool) startRenewer(ls []Lease) *renewer {
	rn := &renewer{stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(p.leaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-rn.stop:
				return
			case <-t.C:
			}
			held := false
			ctx, cancel := context.WithTimeout(context.Background(), p.leaseTTL/3)
			for _, l := range ls {
				if ok, err := p.leases.Renew(ctx, l.Key, l.ID, p.leaseTTL); ok || err != nil {
					held = true // on an error, try again next time
				}
			}
			cancel()
			if !held {
				return
			}
		}
	}()
	return rn
}

func (rn *renewer) halt() {
	if rn != nil {
		rn.once.Do(func() { close(rn.stop) })
	}
}
