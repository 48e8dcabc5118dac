package rls

// Benchmarks of the decision path. Compare runs with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 6 ./ratelimit/rls > old.txt
//	# change, then the same into new.txt
//	benchstat old.txt new.txt
//
// CI runs them once (-benchtime=1x); TestAllocCeiling gates allocations,
// which are stable, instead of time, which is not.

import (
	"context"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

const benchConfig = `
domain: claude-guardian
descriptors:
  - key: tenant
    descriptors:
      - {key: axis, value: requests, rate_limit: {unit: second, requests_per_unit: 1000000000}}
      - {key: axis, value: input_tokens, rate_limit: {unit: second, requests_per_unit: 1000000000}}
`

// benchRequests are what Envoy sends for envoy/envoy.yaml: requests and
// input tokens of one tenant, 1000 tenants.
func benchRequests() []*rlspb.RateLimitRequest {
	reqs := make([]*rlspb.RateLimitRequest, 1000)
	for i := range reqs {
		tenant := "tenant-" + strconv.Itoa(i)
		reqs[i] = &rlspb.RateLimitRequest{Domain: "claude-guardian", Descriptors: []*rlv3.RateLimitDescriptor{
			desc("tenant", tenant, "axis", "requests"),
			{Entries: desc("tenant", tenant, "axis", "input_tokens").Entries, HitsAddend: wrapperspb.UInt64(500)},
		}}
	}
	return reqs
}

func benchServer(b *testing.B, st Store) *Server {
	s := New(Options{Store: st, Headers: true, AnthropicErrors: true})
	s.SetConfig(mustConfig(b, benchConfig))
	return s
}

func runParallel(b *testing.B, call func(*rlspb.RateLimitRequest) error) {
	reqs := benchRequests()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // 32 callers on 2 cores: calls wait on I/O
	b.ResetTimer()
	cpu0 := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(reqs[n.Add(1)%int64(len(reqs))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	// This process's CPU (user + system) per call: the Go side alone,
	// without the Redis server's share of the machine.
	b.ReportMetric(float64(processCPU(b)-cpu0)/1e3/float64(b.N), "cpu-µs/op")
}

// processCPU is the CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecisionMemory is the server's own cost: no gRPC, memory store.
func BenchmarkDecisionMemory(b *testing.B) {
	s := benchServer(b, NewMemoryStore(nil))
	runParallel(b, func(r *rlspb.RateLimitRequest) error {
		_, err := s.ShouldRateLimit(context.Background(), r)
		return err
	})
}

// BenchmarkDecisionGRPCMemory adds gRPC over loopback, in process (both
// sides' allocations are counted).
func BenchmarkDecisionGRPCMemory(b *testing.B) {
	c := serveGRPCB(b, benchServer(b, NewMemoryStore(nil)))
	runParallel(b, func(r *rlspb.RateLimitRequest) error {
		_, err := c.ShouldRateLimit(context.Background(), r)
		return err
	})
}

// BenchmarkDecisionRedis is the server on Redis (loopback), no gRPC.
func BenchmarkDecisionRedis(b *testing.B) {
	srv := redistest.Start(b)
	st, closeFn, err := NewRedisStore(srv.Client, bucket.RedisOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	s := benchServer(b, st)
	runParallel(b, func(r *rlspb.RateLimitRequest) error {
		_, err := s.ShouldRateLimit(context.Background(), r)
		return err
	})
}

// BenchmarkDecisionGRPCRedis is the whole path: gRPC and Redis.
func BenchmarkDecisionGRPCRedis(b *testing.B) {
	srv := redistest.Start(b)
	st, closeFn, err := NewRedisStore(srv.Client, bucket.RedisOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	c := serveGRPCB(b, benchServer(b, st))
	runParallel(b, func(r *rlspb.RateLimitRequest) error {
		_, err := c.ShouldRateLimit(context.Background(), r)
		return err
	})
}

// TestAllocCeiling gates the allocations of one decision (memory store,
// two descriptors, no gRPC) at a ceiling set from the measurement.
func TestAllocCeiling(t *testing.T) {
	const ceiling = 12
	s := New(Options{})
	s.SetConfig(mustConfig(t, benchConfig))
	reqs := benchRequests()
	i := 0
	got := testing.AllocsPerRun(200, func() {
		if _, err := s.ShouldRateLimit(context.Background(), reqs[i%len(reqs)]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if got > ceiling {
		t.Errorf("%.1f allocations per decision, ceiling %d", got, ceiling)
	}
	t.Logf("%.1f allocations per decision", got)
}
