package rls

import (
	"context"
	"errors"
	"time"

	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
	"github.com/claude-guardian/claude-guardian/ratelimit/rlsconfig"
)

// errUnavailable is the gRPC error of the FailError fallback mode.
var errUnavailable = status.Error(codes.Unavailable, "rate-limit store unavailable")

func (s *Server) decide(ctx context.Context, w *work, req *rlspb.RateLimitRequest) (*rlspb.RateLimitResponse, error) {
	descs := req.GetDescriptors()
	cfg := s.cfg.Load()
	domain := req.GetDomain()
	if cfg == nil || !cfg.HasDomain(domain) {
		s.m.notFound()
		return okResponse(len(descs)), nil
	}
	if cap(w.items) < len(descs) {
		w.items = make([]item, len(descs))
	}
	w.items = w.items[:len(descs)]
	now := s.opts.Clock()
	replacing := false
	for i, d := range descs {
		it := &w.items[i]
		it.req = -1
		it.hits = hitsOf(req, d)
		it.negative = d.GetIsNegativeHits()
		es := stripReserved(it, d.GetEntries())
		var shared []string
		per := time.Duration(0)
		override := d.GetLimit() != nil
		if override {
			it.rule, per, it.metricKey = overrideRule(domain, es, d.GetLimit())
			it.dynamic = true
		} else {
			m := cfg.Lookup(domain, es)
			it.rule, it.metricKey, it.dynamic, shared = m.Rule, m.MetricKey, m.Dynamic, m.Shared
			if m.Rule != nil {
				per = rlsconfig.UnitDuration(m.Rule.Unit)
				replacing = replacing || len(m.Rule.Replaces) > 0
			}
		}
		classify(it, per)
		switch it.kind {
		case kindBucket, kindLease:
			w.bucketKey(it, domain, es, shared, suffixOf(it, override))
		case kindWindow:
			unit := int64(per / time.Second)
			w.windowKey(it, domain, es, shared, now.Unix()/unit*unit)
		}
	}
	if replacing {
		applyReplaces(w.items)
	}

	var leaseID string
	if err := s.run(ctx, w, &leaseID); err != nil {
		if errors.Is(err, ErrUnavailable) {
			s.m.error("unavailable")
			return nil, errUnavailable
		}
		s.m.error("store")
		s.log.Warn("rate-limit decision failed: answering OK", "domain", domain, "err", err)
		return okResponse(len(descs)), nil
	}
	return s.respond(w, leaseID), nil
}

// applyReplaces drops rules that a matched rule replaces.
func applyReplaces(items []item) {
	for i := range items {
		r := items[i].rule
		if r == nil || r.Name == "" {
			continue
		}
		for j := range items {
			if rj := items[j].rule; rj != nil && contains(rj.Replaces, r.Name) {
				items[i].rule, items[i].kind = nil, kindNone
				break
			}
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// enforcedTake reports whether it joins the all-or-nothing take.
func enforcedTake(it *item) bool {
	return it.kind == kindBucket && !it.negative && !it.adjust && !it.rule.ShadowMode && !it.rule.QuotaMode
}

// run executes every store call of a request.
func (s *Server) run(ctx context.Context, w *work, leaseID *string) error {
	items := w.items
	// 1. Enforced token buckets, one all-or-nothing take per hash tag.
	allowed := true
	for i := range items {
		if !enforcedTake(&items[i]) || items[i].decided {
			continue
		}
		tag := items[i].key[:items[i].tagLen]
		w.idx = w.idx[:0]
		for j := i; j < len(items); j++ {
			if enforcedTake(&items[j]) && !items[j].decided && items[j].key[:items[j].tagLen] == tag {
				w.idx = append(w.idx, j)
			}
		}
		ok, err := s.call(ctx, w, w.idx, true, allowed)
		if err != nil {
			s.rollback(ctx, w)
			return err
		}
		if ok && allowed {
			w.taken = append(w.taken, w.idx...)
		}
		allowed = allowed && ok
	}
	if !allowed {
		s.rollback(ctx, w)
	}
	// 2. Concurrency leases, only if the buckets granted.
	for i := range items {
		if it := &items[i]; it.kind == kindLease {
			if err := s.lease(ctx, it, allowed, leaseID); err != nil {
				return err
			}
			if it.over && allowed {
				allowed = false
				s.rollback(ctx, w)
				s.releaseAcquired(ctx, items[:i], leaseID)
			}
		}
	}
	// 3. Fixed windows: always counted, as the reference does.
	if err := s.windows(ctx, w); err != nil {
		return err
	}
	// 4. Shadow and quota buckets, each on its own; refunds and charges.
	for i := range items {
		it := &items[i]
		if it.kind != kindBucket || it.decided {
			continue
		}
		w.idx = append(w.idx[:0], i)
		if _, err := s.call(ctx, w, w.idx, !it.negative && !it.adjust, true); err != nil {
			return err
		}
	}
	// 5. requests_per_unit 0.
	for i := range items {
		if it := &items[i]; it.kind == kindZero {
			it.decided, it.over = true, it.hits > 0 && !it.negative && !it.adjust
			it.before, it.after = 0, it.hits
		}
	}
	return nil
}

// call runs one Take (take true; commit false turns it into a check) or
// Adjust over items idx, merging repeated keys, and records the results.
func (s *Server) call(ctx context.Context, w *work, idx []int, take, commit bool) (bool, error) {
	w.reqs = w.reqs[:0]
	for _, i := range idx {
		it := &w.items[i]
		n := clampN(it.hits)
		if !take && it.negative {
			n = -n
		}
		if !commit {
			n = 0
		}
		it.req = -1
		for j := range w.reqs {
			if w.reqs[j].Key == it.key {
				it.req = j
				w.reqs[j].N += n
			}
		}
		if it.req < 0 {
			it.req = len(w.reqs)
			w.reqs = append(w.reqs, bucket.Request{Key: it.key, Limit: it.limit, N: n})
		}
	}
	var d bucket.Decision
	var err error
	if take {
		d, err = s.store.Take(ctx, w.reqs)
	} else {
		d, err = s.store.Adjust(ctx, w.reqs)
	}
	if err != nil {
		return false, err
	}
	for _, i := range idx {
		it := &w.items[i]
		r := &d.Buckets[it.req]
		it.decided = true
		it.over = take && commit && !r.Allowed
		if take && !commit && !r.Allowed {
			it.over = true // another tag refused first; report this one's own state
		}
		it.remaining = r.Remaining
		it.reset = r.ResetAfter
		if it.over && r.RetryAfter != bucket.Never {
			it.reset = r.RetryAfter
		}
		used := uint64(max(0, r.Limit-r.Remaining))
		switch {
		case !take:
			it.before, it.after = used, used
		case r.Allowed && commit:
			it.after, it.before = used, used-min(used, it.hits)
		default:
			it.before, it.after = used, used+it.hits
		}
	}
	return d.Allowed, nil
}

// rollback refunds the groups granted so far in this request.
func (s *Server) rollback(ctx context.Context, w *work) {
	if len(w.taken) == 0 {
		return
	}
	reqs := make([]bucket.Request, 0, len(w.taken))
	for _, i := range w.taken {
		it := &w.items[i]
		reqs = append(reqs, bucket.Request{Key: it.key, Limit: it.limit, N: -clampN(it.hits)})
	}
	// Refund tag by tag (one hash tag per call).
	for len(reqs) > 0 {
		tag := hashTagOf(reqs[0].Key)
		n := 0
		for _, r := range reqs {
			if hashTagOf(r.Key) == tag {
				n++
			}
		}
		group := make([]bucket.Request, 0, n)
		rest := reqs[:0]
		for _, r := range reqs {
			if hashTagOf(r.Key) == tag {
				if !hasKey(group, r.Key) {
					group = append(group, r)
				}
			} else {
				rest = append(rest, r)
			}
		}
		if _, err := s.store.Adjust(ctx, group); err != nil {
			s.m.error("rollback")
		}
		reqs = rest
	}
	w.taken = w.taken[:0]
}

func hasKey(reqs []bucket.Request, k string) bool {
	for _, r := range reqs {
		if r.Key == k {
			return true
		}
	}
	return false
}

func hashTagOf(k string) string {
	for i := 0; i < len(k); i++ {
		if k[i] == '}' {
			return k[:i]
		}
	}
	return k
}

// lease acquires, renews or releases a concurrency lease.
func (s *Server) lease(ctx context.Context, it *item, allowed bool, leaseID *string) error {
	r := it.rule
	it.decided = true
	limit := int64(r.Concurrency)
	it.remaining = limit
	switch {
	case it.negative && it.leaseID == "":
		s.m.lease("no_id")
	case it.negative:
		ok, err := s.store.Release(ctx, it.key, it.leaseID)
		if err != nil {
			return err
		}
		s.m.lease(pick(ok, "released", "unknown"))
	case it.leaseID != "":
		ok, err := s.store.Renew(ctx, it.key, it.leaseID, r.LeaseTTL)
		if err != nil {
			return err
		}
		s.m.lease(pick(ok, "renewed", "unknown"))
	case it.hits == 0 || !allowed:
	default:
		l, err := s.store.Acquire(ctx, it.key, limit, r.LeaseTTL)
		if err != nil {
			return err
		}
		it.remaining = max(0, l.Limit-l.Held)
		it.before, it.after = uint64(max(0, l.Held-1)), uint64(l.Held)
		if !l.Acquired {
			it.over = true
			it.before, it.after = uint64(l.Held), uint64(l.Held+1)
			it.reset = l.RetryAfter
			if it.reset == bucket.Never {
				it.reset = r.LeaseTTL
			}
			s.m.lease("denied")
			return nil
		}
		it.leaseID = l.ID
		*leaseID = l.ID
		s.m.lease("acquired")
	}
	return nil
}

// releaseAcquired releases leases acquired earlier in a refused request.
func (s *Server) releaseAcquired(ctx context.Context, items []item, leaseID *string) {
	for i := range items {
		it := &items[i]
		if it.kind == kindLease && !it.negative && it.leaseID != "" && *leaseID != "" {
			if _, err := s.store.Release(ctx, it.key, it.leaseID); err != nil {
				s.m.error("rollback")
			}
			it.remaining++
		}
	}
	*leaseID = ""
}

// windows runs every fixed-window increment in one store call.
func (s *Server) windows(ctx context.Context, w *work) error {
	w.ops = w.ops[:0]
	for i := range w.items {
		it := &w.items[i]
		if it.kind != kindWindow {
			continue
		}
		n := clampN(it.hits)
		if it.negative {
			n = -n
		}
		it.req = len(w.ops)
		w.ops = append(w.ops, WindowOp{Key: it.key, N: n, TTL: rlsconfig.UnitDuration(it.rule.Unit), Limit: int64(it.rule.RequestsPerUnit)})
	}
	if len(w.ops) == 0 {
		return nil
	}
	if err := s.store.IncrBy(ctx, w.ops); err != nil {
		return err
	}
	now := s.opts.Clock()
	for i := range w.items {
		it := &w.items[i]
		if it.kind != kindWindow {
			continue
		}
		op := &w.ops[it.req]
		it.decided = true
		after := max(0, op.After)
		it.over = !it.negative && !it.adjust && after > op.Limit
		it.remaining = max(0, op.Limit-after)
		unit := rlsconfig.UnitDuration(it.rule.Unit)
		it.reset = unit - time.Duration(now.UnixNano()%int64(unit))
		it.after = uint64(after)
		it.before = it.after - min(it.after, it.hits)
	}
	return nil
}

func pick(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}
