package rls

import (
	"strconv"
	"time"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
	"github.com/claude-guardian/claude-guardian/ratelimit/rlsconfig"
)

// kind is how one descriptor is decided.
type kind uint8

const (
	kindNone      kind = iota // no rule: OK without current_limit
	kindUnlimited             // OK, remaining MaxUint32
	kindZero                  // requests_per_unit 0: over on any hit
	kindBucket                // token bucket or calendar day
	kindWindow                // fixed window
	kindLease                 // concurrency
)

// item is one request descriptor being decided.
type item struct {
	kind      kind
	rule      *rlsconfig.Rule
	metricKey string
	dynamic   bool
	hits      uint64
	negative  bool // is_negative_hits: refund / release
	adjust    bool // guardian_adjust: charge unconditionally
	leaseID   string
	key       string
	tagLen    int
	limit     bucket.Limit
	req       int // index in work.reqs during a store call; -1 if none

	// Results.
	decided   bool
	over      bool
	remaining int64
	reset     time.Duration
	before    uint64
	after     uint64
}

// work is the pooled scratch of one call.
type work struct {
	items []item
	reqs  []bucket.Request
	idx   []int
	ops   []WindowOp
	taken []int // indexes of granted tag groups' items, for rollback
	buf   []byte
}

func (w *work) reset() {
	clear(w.items)
	clear(w.reqs)
	clear(w.ops)
	w.items, w.reqs, w.idx, w.ops, w.taken, w.buf = w.items[:0], w.reqs[:0], w.idx[:0], w.ops[:0], w.taken[:0], w.buf[:0]
}

// hitsOf returns a descriptor's hits: its own hits_addend when set (0 only
// checks), else the request's, at least 1.
func hitsOf(req *rlspb.RateLimitRequest, d *rlv3.RateLimitDescriptor) uint64 {
	if h := d.GetHitsAddend(); h != nil {
		return h.GetValue()
	}
	return max(1, uint64(req.GetHitsAddend()))
}

// stripReserved removes trailing guardian_lease / guardian_adjust entries.
func stripReserved(it *item, es []*rlv3.RateLimitDescriptor_Entry) []*rlv3.RateLimitDescriptor_Entry {
	for len(es) > 1 {
		e := es[len(es)-1]
		switch e.GetKey() {
		case LeaseEntry:
			it.leaseID = e.GetValue()
		case AdjustEntry:
			it.adjust = true
		default:
			return es
		}
		es = es[:len(es)-1]
	}
	return es
}

// overrideRule builds the rule of a descriptor's limit override. Its key
// names the descriptor's keys (domain.k1.k2); metricKey adds their values
// (domain.k1_v1.k2_v2), as envoyproxy/ratelimit's stats do. The values
// come from requests, so metricKey is a dynamic stats key: bounded by
// MaxDynamicKeys, past which they count under the rule's key.
func overrideRule(domain string, es []*rlv3.RateLimitDescriptor_Entry, o *rlv3.RateLimitDescriptor_RateLimitOverride) (r *rlsconfig.Rule, per time.Duration, metricKey string) {
	unit := rlspb.RateLimitResponse_RateLimit_Unit(o.GetUnit())
	mult := uint32(1)
	if m := o.GetUnitMultiplier(); m != nil && m.GetValue() > 0 {
		mult = m.GetValue()
	}
	key, metricKey := domain, domain
	last := ""
	for _, e := range es {
		key += "." + e.GetKey()
		metricKey += "." + e.GetKey()
		if e.GetValue() != "" {
			metricKey += "_" + e.GetValue()
		}
		last = e.GetKey()
	}
	r = &rlsconfig.Rule{
		Key: key, Domain: domain, DescriptorKey: last, Unit: unit, RequestsPerUnit: o.GetRequestsPerUnit(),
		Limit: &rlspb.RateLimitResponse_RateLimit{RequestsPerUnit: o.GetRequestsPerUnit(), Unit: unit},
	}
	if mult > 1 {
		r.Limit.UnitMultiplier = wrapperspb.UInt32(mult)
	}
	return r, rlsconfig.UnitDuration(unit) * time.Duration(mult), metricKey
}

// classify sets it.kind and its bucket limit from its rule.
func classify(it *item, per time.Duration) {
	r := it.rule
	switch {
	case r == nil:
		it.kind = kindNone
	case r.Unlimited:
		it.kind = kindUnlimited
	case r.Concurrency > 0:
		it.kind = kindLease
	case per <= 0:
		it.kind = kindNone // unknown unit in an override
	case r.RequestsPerUnit == 0:
		it.kind = kindZero
	case r.Algorithm == rlsconfig.FixedWindow:
		it.kind = kindWindow
	case r.Location != nil:
		it.kind = kindBucket
		it.limit = bucket.PerDay(int64(r.RequestsPerUnit), r.Location)
	default:
		it.kind = kindBucket
		it.limit = bucket.Limit{Kind: bucket.TokenBucket, Capacity: int64(r.RequestsPerUnit), Per: per, Burst: int64(r.Burst)}
	}
}

// bucketKey builds "{domain|k0=v0}|k1=v1|…|suffix" into w.buf: every key of
// one domain and first entry shares the hash tag between the braces.
// Shared entries use their wildcard pattern instead of the value.
func (w *work) bucketKey(it *item, domain string, es []*rlv3.RateLimitDescriptor_Entry, shared []string, suffix string) {
	b := append(w.buf[:0], '{')
	b = append(b, domain...)
	for i, e := range es {
		b = append(b, '|')
		b = append(b, e.GetKey()...)
		b = append(b, '=')
		if shared != nil && shared[i] != "" {
			b = append(b, shared[i]...)
		} else {
			b = append(b, e.GetValue()...)
		}
		if i == 0 {
			b = append(b, '}')
			it.tagLen = len(b)
		}
	}
	b = append(b, '|')
	b = append(b, suffix...)
	it.key = string(b)
	w.buf = b
}

// windowKey builds envoyproxy/ratelimit's fixed-window key:
// domain_k0_v0_k1_v1_…_windowStart.
func (w *work) windowKey(it *item, domain string, es []*rlv3.RateLimitDescriptor_Entry, shared []string, start int64) {
	b := append(w.buf[:0], domain...)
	b = append(b, '_')
	for i, e := range es {
		b = append(b, e.GetKey()...)
		b = append(b, '_')
		if shared != nil && shared[i] != "" {
			b = append(b, shared[i]...)
		} else {
			b = append(b, e.GetValue()...)
		}
		b = append(b, '_')
	}
	b = strconv.AppendInt(b, start, 10)
	it.key = string(b)
	w.buf = b
}

func suffixOf(it *item, override bool) string {
	switch {
	case it.kind == kindLease:
		return "cc"
	case it.limit.Kind == bucket.Daily:
		return "day"
	case override:
		return "ovr" + strconv.FormatInt(int64(it.limit.Per/time.Second), 10)
	}
	return "tb"
}

// clampN converts hits to a bucket amount.
func clampN(h uint64) int64 {
	if h > 1<<50 {
		return 1 << 50
	}
	return int64(h)
}
