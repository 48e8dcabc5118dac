package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/deploy/local"
	"github.com/claude-guardian/claude-guardian/internal/logtest"
	"github.com/claude-guardian/claude-guardian/internal/redistest"
)

const rlsRules = `domain: claude-guardian
descriptors:
  - key: tenant
    descriptors:
      - {key: axis, value: requests, rate_limit: {unit: minute, requests_per_unit: 2}}
`

// serveRLS runs Serve with the RLS on a free port and returns its address
// and a stop function that drains and checks Serve's result.
func serveRLS(t *testing.T, extra string) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(rlsRules), 0o600)
	yaml := `listen: {extproc: "127.0.0.1:0", ratelimit: "127.0.0.1:0", admin: "127.0.0.1:0"}
clients: [{name: shop, key: gw-test-shop}]
accounts: [{name: org-a, keys: [{id: a1, key: sk-ant-test-a1}]}]
gateway: {shutdown_timeout: 5s, drain_delay: 0s}
ratelimit: {config_dir: "` + dir + `"}
` + extra
	cfg, err := config.Parse([]byte(yaml), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, cfg, io.Discard)
	return s.RateLimit, func() {
		s.stop()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	}
}

func rlsCall(t *testing.T, addr string) *rlspb.RateLimitResponse {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := rlspb.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, &rlspb.RateLimitRequest{
		Domain: "claude-guardian",
		Descriptors: []*rlv3.RateLimitDescriptor{{Entries: []*rlv3.RateLimitDescriptor_Entry{
			{Key: "tenant", Value: "shop"}, {Key: "axis", Value: "requests"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func checkRLS(t *testing.T, addr string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: rlspb.RateLimitService_ServiceDesc.ServiceName})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	var got []rlspb.RateLimitResponse_Code
	for range 3 {
		got = append(got, rlsCall(t, addr).OverallCode)
	}
	if got[0] != rlspb.RateLimitResponse_OK || got[1] != rlspb.RateLimitResponse_OK || got[2] != rlspb.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("codes %v, want OK OK OVER_LIMIT", got)
	}
	if r := rlsCall(t, addr); string(r.RawBody) == "" {
		t.Error("OVER_LIMIT without Anthropic error body")
	}
}

func TestServeRateLimitMemory(t *testing.T) {
	addr, stop := serveRLS(t, "")
	checkRLS(t, addr)
	stop()
}

func TestServeRateLimitRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := redistest.Start(t)
	addr, stop := serveRLS(t, "redis: {url: \"redis://"+srv.Addr+"\"}\n")
	checkRLS(t, addr)
	stop()
	keys, err := srv.Client.Keys(context.Background(), "guardian:rl:*").Result()
	if err != nil || len(keys) == 0 {
		t.Errorf("no RLS keys in Redis: %v %v", keys, err)
	}
}

// TestServeEmbeddedDefault runs the embedded deploy/local/guardian.yaml (on
// free ports) away from a checkout: the embedded example rules are used.
func TestServeEmbeddedDefault(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := config.Parse(local.Config, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = config.Listen{ExtProc: "127.0.0.1:0", RateLimit: "127.0.0.1:0", Admin: "127.0.0.1:0"}
	var logs logtest.Buffer
	s := startServe(t, cfg, &logs)
	if r := rlsCall(t, s.RateLimit); r.Statuses[0].GetCurrentLimit().GetRequestsPerUnit() != 50 {
		t.Errorf("embedded rules not in force: %v", r)
	}
	s.stop()
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "using the embedded deploy/local/ratelimit") {
		t.Errorf("no log of the embedded rules:\n%s", logs.String())
	}
}
