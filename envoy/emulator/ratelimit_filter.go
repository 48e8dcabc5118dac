package emulator

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// rateLimitFilter is envoy.filters.http.ratelimit for one stream.
type rateLimitFilter struct {
	cfg        *rlfilterv3.RateLimit
	s          *stream
	respAdd    *headerMap // headers for the response (OK path)
	streamDone []*routev3.RateLimit
	domain     string
	ran        bool
}

func (f *rateLimitFilter) stat(name string) string {
	return "cluster." + f.cfg.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().GetClusterName() + ".ratelimit." + name
}

// policies returns the rate limits for the current route (RateLimitPerRoute
// rate_limits, else the filter's rate_limits) and the domain.
func (f *rateLimitFilter) policies() ([]*routev3.RateLimit, string) {
	domain, limits := f.cfg.GetDomain(), f.cfg.GetRateLimits()
	if a := f.s.currentRoute().perFilter(rateLimitName); a != nil {
		m, err := a.UnmarshalNew()
		if pr, ok := m.(*rlfilterv3.RateLimitPerRoute); err == nil && ok {
			if len(pr.GetRateLimits()) > 0 {
				limits = pr.GetRateLimits()
			}
			if pr.GetDomain() != "" {
				domain = pr.GetDomain()
			}
		}
	}
	return limits, domain
}

// decodeHeaders builds descriptors and calls the RLS.
func (f *rateLimitFilter) decodeHeaders() *localReply {
	if f.s.currentRoute() == nil {
		return nil
	}
	limits, domain := f.policies()
	f.ran, f.domain = true, domain
	var now []*routev3.RateLimit
	for _, l := range limits {
		if l.GetApplyOnStreamDone() {
			f.streamDone = append(f.streamDone, l)
		} else {
			now = append(now, l)
		}
	}
	descs := f.descriptors(now)
	if len(descs) == 0 {
		return nil
	}
	timeout := dur(f.cfg.GetTimeout(), 20*time.Millisecond)
	ctx, cancel := context.WithTimeout(f.s.ctx, timeout)
	defer cancel()
	resp, err := f.call(ctx, &rlsv3.RateLimitRequest{Domain: domain, Descriptors: descs})
	if err != nil || resp.GetOverallCode() == rlsv3.RateLimitResponse_UNKNOWN {
		f.s.e.stats.inc(f.stat("error"))
		if f.cfg.GetFailureModeDeny() {
			code := 500
			if c := f.cfg.GetStatusOnError().GetCode(); c != 0 {
				code = int(c)
			}
			return &localReply{status: code, details: "rate_limiter_error"}
		}
		f.s.e.stats.inc(f.stat("failure_mode_allowed"))
		return nil
	}
	xrl := xRateLimitHeaders(f.cfg, resp)
	if resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
		f.s.e.stats.inc(f.stat("over_limit"))
		code := 429
		if c := int(f.cfg.GetRateLimitedStatus().GetCode()); c >= 400 {
			code = c
		}
		return &localReply{status: code, body: resp.GetRawBody(), details: "request_rate_limited", mutate: func(h *headerMap) {
			for _, hv := range resp.GetResponseHeadersToAdd() {
				h.add(hv.GetKey(), hv.GetValue())
			}
			if !f.cfg.GetDisableXEnvoyRatelimitedHeader() {
				h.add("x-envoy-ratelimited", "true")
			}
			h.h = append(h.h, xrl.h...)
			h.applyOptions(f.cfg.GetResponseHeadersToAdd())
		}}
	}
	f.s.e.stats.inc(f.stat("ok"))
	for _, hv := range resp.GetRequestHeadersToAdd() {
		f.s.reqH.set(hv.GetKey(), hv.GetValue())
	}
	f.respAdd = &headerMap{}
	for _, hv := range resp.GetResponseHeadersToAdd() {
		f.respAdd.add(hv.GetKey(), hv.GetValue())
	}
	f.respAdd.h = append(f.respAdd.h, xrl.h...)
	return nil
}

// encodeHeaders adds the OK-path response headers.
func (f *rateLimitFilter) encodeHeaders(h *headerMap) {
	if f.respAdd != nil {
		for _, e := range f.respAdd.h {
			h.add(e.key, e.value)
		}
		f.respAdd = nil
	}
}

// onDestroy sends apply_on_stream_done descriptors, fire and forget.
func (f *rateLimitFilter) onDestroy() {
	if !f.ran || len(f.streamDone) == 0 {
		return
	}
	descs := f.descriptors(f.streamDone)
	if len(descs) == 0 {
		return
	}
	req := &rlsv3.RateLimitRequest{Domain: f.domain, Descriptors: descs}
	f.s.e.wg.Add(1)
	go func() {
		defer f.s.e.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), dur(f.cfg.GetTimeout(), 20*time.Millisecond))
		defer cancel()
		go func() {
			select {
			case <-f.s.e.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		if _, err := f.call(ctx, req); err != nil {
			f.s.e.streamDone.failed.Add(1)
			f.s.e.log.Debug("ratelimit: stream-done call failed", "err", err)
			return
		}
		f.s.e.streamDone.ok.Add(1)
	}()
}

func (f *rateLimitFilter) call(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	conn, err := f.s.e.grpcConn(f.cfg.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().GetClusterName())
	if err != nil {
		return nil, err
	}
	resp, err := rlsv3.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("emulator: ratelimit: %w", err)
	}
	return resp, nil
}

// descriptors populates one descriptor per rate limit (router_ratelimit.cc).
func (f *rateLimitFilter) descriptors(limits []*routev3.RateLimit) []*rlcommonv3.RateLimitDescriptor {
	var out []*rlcommonv3.RateLimitDescriptor
	for _, l := range limits {
		d := &rlcommonv3.RateLimitDescriptor{}
		ok := true
		for _, a := range l.GetActions() {
			if !f.action(a, d) {
				ok = false
				break
			}
		}
		if !ok || len(d.Entries) == 0 {
			continue
		}
		if ha := l.GetHitsAddend(); ha != nil {
			n, good := f.hits(ha)
			if !good {
				continue
			}
			d.HitsAddend = wrapperspb.UInt64(n)
			d.IsNegativeHits = ha.GetIsNegativeHits()
		}
		out = append(out, d)
	}
	return out
}

// action appends one entry; false drops the whole descriptor.
func (f *rateLimitFilter) action(a *routev3.RateLimit_Action, d *rlcommonv3.RateLimitDescriptor) bool {
	add := func(k, v string) {
		d.Entries = append(d.Entries, &rlcommonv3.RateLimitDescriptor_Entry{Key: k, Value: v})
	}
	switch {
	case a.GetRequestHeaders() != nil:
		rh := a.GetRequestHeaders()
		v, ok := f.s.reqH.get(strings.ToLower(rh.GetHeaderName()))
		if !ok {
			return rh.GetSkipIfAbsent()
		}
		add(rh.GetDescriptorKey(), v)
	case a.GetGenericKey() != nil:
		k := a.GetGenericKey().GetDescriptorKey()
		if k == "" {
			k = "generic_key"
		}
		add(k, a.GetGenericKey().GetDescriptorValue())
	case a.GetMetadata() != nil:
		m := a.GetMetadata()
		var path []string
		for _, p := range m.GetMetadataKey().GetPath() {
			path = append(path, p.GetKey())
		}
		v := ""
		if x := f.s.dm.lookup(m.GetMetadataKey().GetKey(), path); x != nil {
			v = x.GetStringValue()
		}
		switch {
		case v != "":
			add(m.GetDescriptorKey(), v)
		case m.GetDefaultValue() != "":
			add(m.GetDescriptorKey(), m.GetDefaultValue())
		default:
			return m.GetSkipIfAbsent()
		}
	default:
		return false
	}
	return true
}

// hits evaluates hits_addend: a number, or a format with one
// %DYNAMIC_METADATA(ns:key[:key...])% substitution parsed as a uint ≤ 1e9.
func (f *rateLimitFilter) hits(ha *routev3.RateLimit_HitsAddend) (uint64, bool) {
	if ha.GetNumber() != nil {
		return ha.GetNumber().GetValue(), true
	}
	s := ha.GetFormat()
	const pre, post = "%DYNAMIC_METADATA(", ")%"
	if strings.HasPrefix(s, pre) && strings.HasSuffix(s, post) {
		parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(s, pre), post), ":")
		if len(parts) < 2 {
			return 0, false
		}
		v := f.s.dm.lookup(parts[0], parts[1:])
		if v == nil {
			return 0, false
		}
		fs, good := formatValue(v)
		if !good {
			return 0, false
		}
		s = fs
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > 1e9 {
		return 0, false
	}
	return n, true
}

// xRateLimitHeaders builds the draft-03 X-RateLimit headers from the status
// with the lowest limit_remaining among those with a current_limit.
func xRateLimitHeaders(cfg *rlfilterv3.RateLimit, resp *rlsv3.RateLimitResponse) *headerMap {
	out := &headerMap{}
	if cfg.GetEnableXRatelimitHeaders() != rlfilterv3.RateLimit_DRAFT_VERSION_03 {
		return out
	}
	var min *rlsv3.RateLimitResponse_DescriptorStatus
	var policies []string
	for _, st := range resp.GetStatuses() {
		cl := st.GetCurrentLimit()
		if cl == nil {
			continue
		}
		if min == nil || st.GetLimitRemaining() < min.GetLimitRemaining() {
			min = st
		}
		p := fmt.Sprintf("%d;w=%d", cl.GetRequestsPerUnit(), windowSeconds(cl))
		if cl.GetName() != "" {
			p += fmt.Sprintf(";name=%q", cl.GetName())
		}
		policies = append(policies, p)
	}
	if min == nil {
		return out
	}
	out.add("x-ratelimit-limit", strings.Join(append([]string{strconv.Itoa(int(min.GetCurrentLimit().GetRequestsPerUnit()))}, policies...), ", "))
	out.add("x-ratelimit-remaining", strconv.Itoa(int(min.GetLimitRemaining())))
	if d := min.GetDurationUntilReset(); d != nil {
		out.add("x-ratelimit-reset", strconv.FormatInt(int64(d.AsDuration()/time.Second), 10))
	}
	return out
}

func windowSeconds(l *rlsv3.RateLimitResponse_RateLimit) int64 {
	secs := map[rlsv3.RateLimitResponse_RateLimit_Unit]int64{
		rlsv3.RateLimitResponse_RateLimit_SECOND: 1, rlsv3.RateLimitResponse_RateLimit_MINUTE: 60,
		rlsv3.RateLimitResponse_RateLimit_HOUR: 3600, rlsv3.RateLimitResponse_RateLimit_DAY: 86400,
		rlsv3.RateLimitResponse_RateLimit_WEEK: 604800, rlsv3.RateLimitResponse_RateLimit_MONTH: 2592000,
		rlsv3.RateLimitResponse_RateLimit_YEAR: 31536000}[l.GetUnit()]
	m := int64(l.GetUnitMultiplier().GetValue())
	if m == 0 {
		m = 1
	}
	return secs * m
}
