package bucket

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
)

// admission is one granted Take: engine time (µs) and tokens.
type admission struct{ at, n int64 }

// hammer runs goroutines taking 1–4 tokens from one bucket until stop
// reports true, and returns the admissions and the engine-time span of all
// attempts.
func hammer(t *testing.T, engines []Engine, goroutines int, l Limit, stop func(at time.Time) bool) (adm []admission, first, last int64) {
	t.Helper()
	var (
		mu       sync.Mutex
		lo, hi   atomic.Int64
		wg       sync.WaitGroup
		failures atomic.Int64
	)
	lo.Store(1<<62 - 1)
	for g := range goroutines {
		wg.Go(func() {
			e := engines[g%len(engines)]
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			var mine []admission
			for {
				n := 1 + rng.Int64N(4)
				d, err := e.Take(context.Background(), []Request{{Key: "hot", Limit: l, N: n}})
				if err != nil {
					failures.Add(1)
					break
				}
				at := d.At.UnixMicro()
				for v := lo.Load(); at < v && !lo.CompareAndSwap(v, at); v = lo.Load() {
				}
				for v := hi.Load(); at > v && !hi.CompareAndSwap(v, at); v = hi.Load() {
				}
				if d.Allowed {
					mine = append(mine, admission{at, n})
				}
				if stop(d.At) {
					break
				}
			}
			mu.Lock()
			adm = append(adm, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d takes failed", f)
	}
	return adm, lo.Load(), hi.Load()
}

// checkEnvelope asserts that in every window [t_i, t_j] of admissions the
// tokens granted are at most burst + rate·(t_j − t_i), exactly, and that the
// run granted at least minPct % of burst + rate·T. On a virtual clock that
// share is exact; in real time it also depends on how fast the callers are
// scheduled, so real-time runs ask only for a share that shows the bucket
// is not starving them.
func checkEnvelope(t *testing.T, adm []admission, first, last int64, l Limit, minPct int64) {
	t.Helper()
	if err := envelopeViolation(adm, l); err != nil {
		t.Fatal(err)
	}
	burst := l.Burst
	if burst == 0 {
		burst = l.Capacity
	}
	var got int64
	for _, a := range adm {
		got += a.n
	}
	span := last - first
	ideal := burst + l.Capacity*span/l.Per.Microseconds()
	t.Logf("%d admissions, %d tokens in %v; envelope %d (%.1f %%)",
		len(adm), got, time.Duration(span)*time.Microsecond, ideal, 100*float64(got)/float64(ideal))
	if got*100 < ideal*minPct {
		t.Fatalf("granted %d tokens, below %d %% of %d", got, minPct, ideal)
	}
}

// envelopeViolation returns an error for the first window that grants more
// than burst + rate·d; it sorts adm.
func envelopeViolation(adm []admission, l Limit) error {
	slices.SortFunc(adm, func(a, b admission) int { return cmp.Compare(a.at, b.at) })
	sum := make([]int64, len(adm)+1)
	for i, a := range adm {
		sum[i+1] = sum[i] + a.n
	}
	burst, perUS := l.Burst, l.Per.Microseconds()
	if burst == 0 {
		burst = l.Capacity
	}
	for i := range adm {
		for j := i; j < len(adm); j++ {
			tokens, d := sum[j+1]-sum[i], adm[j].at-adm[i].at
			if (tokens-burst)*perUS > l.Capacity*d {
				return fmt.Errorf("%d tokens granted in %d µs [%d, %d]: more than burst %d + %d per %v",
					tokens, d, adm[i].at, adm[j].at, burst, l.Capacity, l.Per)
			}
		}
	}
	return nil
}

func TestEnvelopeViolation(t *testing.T) {
	l := Limit{Capacity: 10, Per: time.Second, Burst: 3} // 100 ms per token
	tests := []struct {
		name string
		adm  []admission
		bad  bool
	}{
		{"burst at once", []admission{{0, 2}, {0, 1}}, false},
		{"burst + 1 at once", []admission{{0, 2}, {0, 2}}, true},
		{"refill on time", []admission{{0, 3}, {100_000, 1}, {200_000, 1}}, false},
		{"refill 1 µs early", []admission{{0, 3}, {100_000, 1}, {199_999, 1}}, true},
		{"late window", []admission{{0, 1}, {1_000_000, 3}, {1_100_000, 1}}, false},
		{"late window over", []admission{{0, 1}, {1_000_000, 3}, {1_099_999, 1}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := envelopeViolation(tt.adm, l); (err != nil) != tt.bad {
				t.Fatalf("violation = %v, want %v", err, tt.bad)
			}
		})
	}
}

func TestExactnessMemory(t *testing.T) {
	// A virtual clock that moves 20 µs per read: no wall-clock dependence,
	// and the goroutines race on the bucket exactly as they would in time.
	var ticks atomic.Int64
	clock := func() time.Time { return epoch.Add(time.Duration(ticks.Add(20)) * time.Microsecond) }
	end := epoch.Add(3 * time.Second)
	l := Limit{Capacity: 1000, Per: time.Second, Burst: 50}
	adm, first, last := hammer(t, []Engine{NewMemory(clock)}, 64, l, func(at time.Time) bool { return !at.Before(end) })
	checkEnvelope(t, adm, first, last, l, 90)
}

func TestExactnessRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	l := Limit{Capacity: 2000, Per: time.Second, Burst: 100}
	run := func(t *testing.T, engines []Engine) {
		end := time.Now().Add(2 * time.Second) // real time: Redis TIME is the clock
		adm, first, last := hammer(t, engines, 64, l, func(time.Time) bool { return time.Now().After(end) })
		checkEnvelope(t, adm, first, last, l, 50)
	}
	t.Run("standalone, 3 replicas", func(t *testing.T) {
		srv := redistest.Start(t)
		prefix := uniquePrefix()
		var engines []Engine
		for range 3 {
			engines = append(engines, newTestRedis(t, srv.NewClient(t), RedisOptions{Prefix: prefix}))
		}
		run(t, engines)
	})
	t.Run("cluster, 3 replicas", func(t *testing.T) {
		c := redistest.StartCluster(t, 3)
		prefix := uniquePrefix()
		var engines []Engine
		for range 3 {
			engines = append(engines, newTestRedis(t, c.NewClient(t), RedisOptions{Prefix: prefix}))
		}
		run(t, engines)
	})
}
