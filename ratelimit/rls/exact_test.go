package rls

import (
	"context"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// recorder wraps a Store and records granted takes at engine time, so the
// test checks what the engine decided, not when the client saw it.
type recorder struct {
	Store
	mu  sync.Mutex
	adm []int64 // µs of each admitted unit hit
}

func (r *recorder) Take(ctx context.Context, reqs []bucket.Request) (bucket.Decision, error) {
	d, err := r.Store.Take(ctx, reqs)
	if err == nil && d.Allowed && reqs[0].N > 0 {
		r.mu.Lock()
		r.adm = append(r.adm, d.At.UnixMicro())
		r.mu.Unlock()
	}
	return d, err
}

// serveGRPC starts s on a loopback port and returns a client.
func serveGRPC(t *testing.T, s rlspb.RateLimitServiceServer) rlspb.RateLimitServiceClient {
	return serveGRPCB(t, s)
}

func serveGRPCB(t testing.TB, s rlspb.RateLimitServiceServer) rlspb.RateLimitServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	rlspb.RegisterRateLimitServiceServer(g, s)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rlspb.NewRateLimitServiceClient(conn)
}

// TestExactAcrossReplicas: 3 RLS servers (each its own gRPC server, Redis
// client and engine) share one Redis; 64 concurrent callers hit one bucket
// of rate r = 100/s and burst b = 20. In every interval [t_i, t_j] between
// admissions (engine time, µs) the admitted count stays within
// b + r·(t_j − t_i): the token-bucket envelope, with zero over-admission.
func TestExactAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server, runs ~1.5 s")
	}
	const (
		rate  = 100
		burst = 120
		run   = 1500 * time.Millisecond
	)
	srv := redistest.Start(t)
	cfg := mustConfig(t, `
domain: d
descriptors:
  - key: tenant
    rate_limit: {unit: second, requests_per_unit: 100, burst: 120}
`)
	var recs []*recorder
	var clients []rlspb.RateLimitServiceClient
	for range 3 {
		st, closeFn, err := NewRedisStore(srv.NewClient(t), bucket.RedisOptions{Prefix: "exact:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeFn() })
		rec := &recorder{Store: st}
		s := New(Options{Store: rec})
		s.SetConfig(cfg)
		recs, clients = append(recs, rec), append(clients, serveGRPC(t, s))
	}
	req := &rlspb.RateLimitRequest{Domain: "d", Descriptors: []*rlv3.RateLimitDescriptor{desc("tenant", "t1")}}
	var calls, errs atomic.Int64
	stop := time.Now().Add(run)
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			c := clients[g%3]
			for time.Now().Before(stop) {
				if _, err := c.ShouldRateLimit(context.Background(), req); err != nil {
					errs.Add(1)
					return
				}
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	if errs.Load() > 0 {
		t.Fatalf("%d calls failed", errs.Load())
	}
	var adm []int64
	for _, r := range recs {
		adm = append(adm, r.adm...)
	}
	slices.Sort(adm)
	if len(adm) < burst {
		t.Fatalf("only %d admitted of %d calls", len(adm), calls.Load())
	}
	// count(i..j) ≤ b + r·(t_j − t_i)/1s, in integers: (count − b)·1e6 ≤ r·Δµs.
	for i := range adm {
		for j := i; j < len(adm); j++ {
			if n := int64(j - i + 1); (n-burst)*1_000_000 > rate*(adm[j]-adm[i]) {
				t.Fatalf("over-admission: %d admitted in %d µs (envelope %d + %d/s)", n, adm[j]-adm[i], burst, rate)
			}
		}
	}
	span := time.Duration(adm[len(adm)-1]-adm[0]) * time.Microsecond
	t.Logf("%d calls, %d admitted over %v by 3 servers (envelope allows %.0f)", calls.Load(), len(adm), span, burst+rate*span.Seconds())
}

// TestFixedWindowContrast shows the reference's weakness that token buckets
// remove: with a fixed window of L per second, 2L pass within 2 ms around a
// window edge; the token bucket with the same L passes L plus what 2 ms
// refill.
func TestFixedWindowContrast(t *testing.T) {
	const yaml = `
domain: d
descriptors:
  - {key: fw, rate_limit: {unit: second, requests_per_unit: 100, algorithm: fixed_window}}
  - {key: tb, rate_limit: {unit: second, requests_per_unit: 100}}
`
	stores := map[string]storeFactory{"memory": memoryFactory}
	if !testing.Short() {
		stores["redis"] = redisFactory(redistest.Start(t).Client)
	}
	for name, f := range stores {
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			s := New(Options{Store: f(t, clock.Now), Clock: clock.Now})
			s.SetConfig(mustConfig(t, yaml))
			admitted := func(key string) int {
				clock.Set(time.Date(2026, 3, 2, 12, 0, 0, 999_000_000, time.UTC)) // 1 ms before the edge
				n := 0
				for i := range 400 {
					if i == 200 {
						clock.Advance(2 * time.Millisecond) // 1 ms past the edge
					}
					if ask(t, s, "d", 0, desc(key, "x")).OverallCode == OK {
						n++
					}
				}
				return n
			}
			if fw := admitted("fw"); fw != 200 {
				t.Errorf("fixed window admitted %d in 2 ms, want 2L = 200", fw)
			}
			if tb := admitted("tb"); tb != 100 {
				t.Errorf("token bucket admitted %d in 2 ms, want L = 100 (0.2 refilled)", tb)
			}
		})
	}
}
