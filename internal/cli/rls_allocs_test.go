package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
)

// rlsAllocCeiling is the bound on allocations per RLS decision in
// the serving process, gRPC's own included (measured with this test and make
// bench-rls: memory ~70, Redis ~79).
const rlsAllocCeiling = 90

// TestRLSAllocationsPerDecision runs bin/guardian's RLS (memory and Redis)
// under concurrent calls and counts the allocations of the serving process
// per decision from its go_memstats_mallocs_total: everything the server
// allocates, gRPC and HTTP/2 included, the client excluded.
func TestRLSAllocationsPerDecision(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	rules := t.TempDir()
	if err := os.WriteFile(filepath.Join(rules, "bench.yaml"), []byte(`domain: claude-guardian
descriptors:
  - key: tenant
    descriptors:
      - {key: axis, value: requests, rate_limit: {unit: second, requests_per_unit: 1000000}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"memory", "redis"} {
		t.Run(mode, func(t *testing.T) {
			redisLine := ""
			if mode == "redis" {
				redisLine = "redis: {url: redis://" + redistest.Start(t).Addr + "}\n"
			}
			s := startBinary(t, fmt.Sprintf(`listen: {extproc: "127.0.0.1:0", ratelimit: "127.0.0.1:0", admin: "127.0.0.1:0"}
%sclients: [{name: shop, key: gw-test-shop}]
accounts: [{name: org-a, keys: [{id: a1, key: sk-ant-test-a1}]}]
ratelimit: {config_dir: %q, headers: false}
gateway: {drain_delay: 0s}
log: {level: info, format: text}
`, redisLine, rules))
			conn, err := grpc.NewClient(s.ratelimit, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := rlspb.NewRateLimitServiceClient(conn)
			drive(t, client, 2000) // warm-up: connections, scripts, stream workers
			before := mallocs(t, s.admin)
			const calls = 10000
			drive(t, client, calls)
			per := float64(mallocs(t, s.admin)-before) / calls
			t.Logf("%s: %.1f allocations per decision in the serving process", mode, per)
			if per > rlsAllocCeiling {
				t.Errorf("%s: %.1f allocations per decision, ceiling %d", mode, per, rlsAllocCeiling)
			}
		})
	}
}

// drive makes n ShouldRateLimit calls from 32 goroutines over 1000 tenants;
// each must be OK.
func drive(t *testing.T, c rlspb.RateLimitServiceClient, n int64) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := next.Add(1); i <= n; i = next.Add(1) {
				r := &rlspb.RateLimitRequest{Domain: "claude-guardian", Descriptors: []*rlv3.RateLimitDescriptor{{
					Entries: []*rlv3.RateLimitDescriptor_Entry{{Key: "tenant", Value: "t" + strconv.FormatInt(i%1000, 10)}, {Key: "axis", Value: "requests"}}}}}
				resp, err := c.ShouldRateLimit(context.Background(), r)
				if err != nil || resp.OverallCode != rlspb.RateLimitResponse_OK {
					t.Errorf("call %d: %v %v", i, resp.GetOverallCode(), err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// mallocs reads go_memstats_mallocs_total from the admin /metrics.
func mallocs(t *testing.T, admin string) int64 {
	t.Helper()
	code, body := httpGet(t, "http://"+admin+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, "go_memstats_mallocs_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("go_memstats_mallocs_total %q: %v", v, err)
			}
			return int64(f)
		}
	}
	t.Fatal("no go_memstats_mallocs_total in /metrics")
	return 0
}
