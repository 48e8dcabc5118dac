package rls

import (
	"strconv"
	"testing"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestStatsKeysBounded: stats keys built from request values (a
// detailed_metric rule, a descriptor's limit override) stop at
// MaxDynamicKeys series; the rest count under the rule's ".__other" key.
// Overrides made one series per value, without bound, before.
func TestStatsKeysBounded(t *testing.T) {
	override := func(ip string) *rlv3.RateLimitDescriptor {
		d := desc("remote_address", ip)
		d.Limit = &rlv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 10, Unit: 3} // per hour
		return d
	}
	tests := []struct {
		name, other string
		desc        func(ip string) *rlv3.RateLimitDescriptor
	}{
		{"detailed_metric", "d.remote_address.__other", func(ip string) *rlv3.RateLimitDescriptor { return desc("remote_address", ip) }},
		{"limit override", "d.remote_address.__other", override},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry())
			s := New(Options{Store: NewMemoryStore(nil), Metrics: m})
			s.SetConfig(mustConfig(t, "domain: d\ndescriptors: [{key: remote_address, detailed_metric: true, rate_limit: {unit: hour, requests_per_unit: 10}}]\n"))
			const values = MaxDynamicKeys + 500
			for i := range values {
				ask(t, s, "d", 0, tt.desc("10.0."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256)))
			}
			if n := testutil.CollectAndCount(m.totalHits); n != MaxDynamicKeys+1 {
				t.Errorf("%d total_hits series for %d values, want %d (+1 for the rest)", n, values, MaxDynamicKeys)
			}
			if got := testutil.ToFloat64(m.totalHits.WithLabelValues("d", tt.other)); got != 500 {
				t.Errorf("%s = %v, want 500", tt.other, got)
			}
		})
	}
}
