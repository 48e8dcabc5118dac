package rls

import (
	"context"
	"fmt"
	"testing"
	"time"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/claude-guardian/claude-guardian/internal/testclock"
	"github.com/claude-guardian/claude-guardian/ratelimit/rlsconfig"
)

const (
	OK   = rlspb.RateLimitResponse_OK
	OVER = rlspb.RateLimitResponse_OVER_LIMIT
)

// fakeClock is a settable clock.
type fakeClock = testclock.Clock

func newFakeClock() *fakeClock { return testclock.New(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)) }

func mustConfig(t testing.TB, yaml string) *rlsconfig.Config {
	t.Helper()
	c, err := rlsconfig.Parse([]rlsconfig.File{{Name: "test.yaml", Data: []byte(yaml)}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// desc builds a descriptor from key/value pairs.
func desc(kv ...string) *rlv3.RateLimitDescriptor {
	d := &rlv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &rlv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func withHits(d *rlv3.RateLimitDescriptor, n uint64) *rlv3.RateLimitDescriptor {
	d.HitsAddend = wrapperspb.UInt64(n)
	return d
}

func negative(d *rlv3.RateLimitDescriptor, n uint64) *rlv3.RateLimitDescriptor {
	d.HitsAddend = wrapperspb.UInt64(n)
	d.IsNegativeHits = true
	return d
}

func ask(t testing.TB, s rlspb.RateLimitServiceServer, domain string, hits uint32, ds ...*rlv3.RateLimitDescriptor) *rlspb.RateLimitResponse {
	t.Helper()
	resp, err := s.ShouldRateLimit(context.Background(), &rlspb.RateLimitRequest{Domain: domain, Descriptors: ds, HitsAddend: hits})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Statuses) != len(ds) {
		t.Fatalf("%d statuses for %d descriptors", len(resp.Statuses), len(ds))
	}
	return resp
}

func codesOf(r *rlspb.RateLimitResponse) []rlspb.RateLimitResponse_Code {
	out := []rlspb.RateLimitResponse_Code{r.OverallCode}
	for _, s := range r.Statuses {
		out = append(out, s.Code)
	}
	return out
}

func reqOf(domain string, ds ...*rlv3.RateLimitDescriptor) *rlspb.RateLimitRequest {
	return &rlspb.RateLimitRequest{Domain: domain, Descriptors: ds}
}

func fmtSlice(s []string) string { return fmt.Sprint(s) }
