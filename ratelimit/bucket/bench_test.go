package bucket

// Benchmarks. Compare runs with benchstat:
//
//	go test -run '^$' -bench . -benchtime 2s -count 6 ./ratelimit/bucket > new.txt
//	benchstat old.txt new.txt
//
// CI runs them with -benchtime=1x; gate on allocs/op, not ns/op.

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// benchReqs returns n requests on one tag that always pass.
func benchReqs(tag string, n int) []Request {
	names := []string{"rpm", "itpm", "rpd"}
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{Key: "{" + tag + "}" + names[i], Limit: Rate(1_000_000_000, time.Second), N: 1}
		if i == 2 {
			reqs[i].Limit = PerDay(1<<50, nil)
		}
	}
	return reqs
}

func BenchmarkMemoryTake(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(strconv.Itoa(n)+"-buckets", func(b *testing.B) {
			m := NewMemory(nil)
			reqs := benchReqs("acct", n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Take(ctx, reqs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(strconv.Itoa(n)+"-buckets-parallel", func(b *testing.B) {
			m := NewMemory(nil)
			var seq atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				reqs := benchReqs("acct"+strconv.FormatInt(seq.Add(1), 10), n)
				ctx := context.Background()
				for pb.Next() {
					if _, err := m.Take(ctx, reqs); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkRedisTake(b *testing.B) {
	srv := redistest.Start(b)
	client := func() redis.UniversalClient { return srv.NewClient(b) }
	tests := []struct {
		name     string
		opts     RedisOptions
		buckets  int
		parallel bool
	}{
		{"sequential/1-bucket", RedisOptions{}, 1, false},
		{"sequential/3-buckets", RedisOptions{}, 3, false},
		{"parallel/1-bucket/batched", RedisOptions{}, 1, true},
		{"parallel/3-buckets/batched", RedisOptions{}, 3, true},
		{"parallel/1-bucket/unbatched", RedisOptions{MaxBatch: 1, Workers: 64}, 1, true},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			e := newTestRedis(b, client(), tt.opts)
			b.ReportAllocs()
			if !tt.parallel {
				reqs := benchReqs("acct", tt.buckets)
				ctx := context.Background()
				for b.Loop() {
					if _, err := e.Take(ctx, reqs); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			c := client()
			if err := c.ConfigResetStat(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			var seq atomic.Int64
			b.SetParallelism(16) // 16 × GOMAXPROCS callers, as an RLS under load
			b.RunParallel(func(pb *testing.PB) {
				reqs := benchReqs("acct"+strconv.FormatInt(seq.Add(1), 10), tt.buckets)
				ctx := context.Background()
				for pb.Next() {
					if _, err := e.Take(ctx, reqs); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(scriptMicros(b, c)/float64(b.N), "redis-µs/op")
			if n := e.b.batches.Load(); n > 0 {
				b.ReportMetric(float64(e.b.batched.Load())/float64(n), "calls/pipeline")
			}
		})
	}
}

// scriptMicros is the Redis CPU spent in scripts since the last
// CONFIG RESETSTAT (INFO commandstats: evalsha and eval, µs).
func scriptMicros(b *testing.B, c redis.UniversalClient) float64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		for _, f := range strings.Split(strings.TrimSpace(line[strings.IndexByte(line, ':')+1:]), ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				n, _ := strconv.ParseFloat(v, 64)
				total += n
			}
		}
	}
	return total
}
