package keypool

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/internal/redistest"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// TestReplicasShareOnePoolThroughRedis: two guardian replicas (two pools,
// each with its own Redis client) reserve concurrently on the same
// accounts; together they never reserve more than the accounts' limits.
func TestReplicasShareOnePoolThroughRedis(t *testing.T) {
	srv := redistest.Start(t)
	accounts := []config.Account{
		{Name: "org-a", Limits: config.Limits{RPM: 30, ITPM: 1_000_000, OTPM: 1_000_000}, Keys: []config.Key{{ID: "a1", Key: "k1"}}},
		{Name: "org-b", Limits: config.Limits{RPM: 20, ITPM: 1_000_000, OTPM: 1_000_000}, Keys: []config.Key{{ID: "b1", Key: "k2"}}},
	}
	var pools []*Pool
	for range 2 {
		eng, err := bucket.NewRedis(srv.NewClient(t), bucket.RedisOptions{Prefix: "guardian"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
		pools = append(pools, New(accounts, Options{Engine: eng, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	}
	var taken atomic.Int64
	perAccount := map[string]*atomic.Int64{"org-a": {}, "org-b": {}}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pools[i%2]
			for range 4 {
				r, _, err := p.Reserve(context.Background(), Need{Model: "m", Input: 10, Output: 10})
				if err != nil {
					t.Error(err)
					return
				}
				if r != nil {
					taken.Add(1)
					perAccount[r.Account.Name].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	// 128 attempts within a fraction of a second: the RPM limits (30 + 20,
	// plus at most one refilled each) bound what was reserved.
	if a, b := perAccount["org-a"].Load(), perAccount["org-b"].Load(); a > 31 || b > 21 || a < 30 || b < 20 {
		t.Errorf("reserved org-a %d (limit 30) org-b %d (limit 20)", a, b)
	}
}
