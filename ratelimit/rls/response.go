package rls

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/claude-guardian/claude-guardian/anthropic"
)

// okStatus is the status of a descriptor without a rule; shared, read-only.
var okStatus = &rlspb.RateLimitResponse_DescriptorStatus{Code: rlspb.RateLimitResponse_OK}

func okResponse(n int) *rlspb.RateLimitResponse {
	r := &rlspb.RateLimitResponse{OverallCode: rlspb.RateLimitResponse_OK, Statuses: make([]*rlspb.RateLimitResponse_DescriptorStatus, n)}
	for i := range r.Statuses {
		r.Statuses[i] = okStatus
	}
	return r
}

// respond builds the response from decided items and records stats.
func (s *Server) respond(w *work, leaseID string) *rlspb.RateLimitResponse {
	resp := &rlspb.RateLimitResponse{OverallCode: rlspb.RateLimitResponse_OK}
	resp.Statuses = make([]*rlspb.RateLimitResponse_DescriptorStatus, len(w.items))
	statuses := make([]rlspb.RateLimitResponse_DescriptorStatus, len(w.items))
	quota, quotaOver := 0, 0
	closest := -1
	for i := range w.items {
		it := &w.items[i]
		st := &statuses[i]
		resp.Statuses[i] = st
		switch it.kind {
		case kindNone:
			resp.Statuses[i] = okStatus
			continue
		case kindUnlimited:
			st.Code, st.LimitRemaining = rlspb.RateLimitResponse_OK, math.MaxUint32
			continue
		}
		r := it.rule
		over := it.over
		s.m.record(r, it.metricKey, it.dynamic, hitsForStats(it), it.before, it.after, limitOf(it), over, r.ShadowMode)
		if over && r.ShadowMode {
			over = false
		}
		st.Code = rlspb.RateLimitResponse_OK
		if over {
			st.Code = rlspb.RateLimitResponse_OVER_LIMIT
		}
		st.CurrentLimit = r.Limit
		st.LimitRemaining = uint32(min(max(it.remaining, 0), math.MaxUint32))
		st.DurationUntilReset = durationpb.New(max(it.reset, 0))
		switch {
		case r.QuotaMode:
			quota++
			if over {
				quotaOver++
			}
		case over:
			resp.OverallCode = rlspb.RateLimitResponse_OVER_LIMIT
		}
		if closest < 0 || over && statuses[closest].Code != rlspb.RateLimitResponse_OVER_LIMIT ||
			(over == (statuses[closest].Code == rlspb.RateLimitResponse_OVER_LIMIT) && st.LimitRemaining < statuses[closest].LimitRemaining) {
			closest = i
		}
	}
	if quota > 0 && quota == quotaOver {
		resp.OverallCode = rlspb.RateLimitResponse_OVER_LIMIT
	}
	if s.opts.Headers && closest >= 0 {
		st := &statuses[closest]
		resp.ResponseHeadersToAdd = append(resp.ResponseHeadersToAdd,
			header(s.opts.LimitHeader, strconv.FormatUint(uint64(st.CurrentLimit.GetRequestsPerUnit()), 10)),
			header(s.opts.RemainingHeader, strconv.FormatUint(uint64(st.LimitRemaining), 10)),
			header(s.opts.ResetHeader, strconv.FormatInt(ceilSeconds(st.DurationUntilReset.AsDuration()), 10)))
	}
	if s.opts.AnthropicErrors && resp.OverallCode == rlspb.RateLimitResponse_OVER_LIMIT {
		s.anthropicError(w, resp, statuses)
	}
	if leaseID != "" {
		resp.DynamicMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{
			LeaseMetadataKey: structpb.NewStringValue(leaseID),
		}}
	}
	return resp
}

// hitsForStats is what a descriptor adds to the hit counters: refunds and
// checks add nothing.
func hitsForStats(it *item) uint64 {
	if it.negative {
		return 0
	}
	return it.hits
}

func limitOf(it *item) uint64 {
	if it.kind == kindLease {
		return uint64(it.rule.Concurrency)
	}
	return uint64(it.rule.RequestsPerUnit)
}

func header(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, Value: v} }

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// anthropicError adds Anthropic's rate_limit_error body, content-type and
// retry-after (the longest wait of the enforced over-limit descriptors, at
// least 1 s) to an OVER_LIMIT response.
func (s *Server) anthropicError(w *work, resp *rlspb.RateLimitResponse, statuses []rlspb.RateLimitResponse_DescriptorStatus) {
	var wait time.Duration
	var first *item
	for i := range w.items {
		it := &w.items[i]
		if statuses[i].Code != rlspb.RateLimitResponse_OVER_LIMIT {
			continue
		}
		if first == nil {
			first = it
		}
		wait = max(wait, it.reset)
	}
	secs := max(1, ceilSeconds(wait))
	msg := "This request would exceed your rate limit. Please retry after " + strconv.FormatInt(secs, 10) + " seconds."
	if first != nil {
		msg = fmt.Sprintf("This request would exceed the rate limit %s of %s. Please retry after %d seconds.",
			ruleName(first), describeLimit(first), secs)
	}
	resp.RawBody = anthropic.ErrorBody(anthropic.RateLimitError, msg, "")
	resp.ResponseHeadersToAdd = append(resp.ResponseHeadersToAdd,
		header("content-type", "application/json"),
		header("retry-after", strconv.FormatInt(secs, 10)))
}

func ruleName(it *item) string {
	if it.rule.Name != "" {
		return strconvQuote(it.rule.Name)
	}
	return strconvQuote(it.rule.Key)
}

func strconvQuote(s string) string { return "\"" + strings.ReplaceAll(s, "\"", "'") + "\"" }

func describeLimit(it *item) string {
	r := it.rule
	if it.kind == kindLease {
		return fmt.Sprintf("%d concurrent requests", r.Concurrency)
	}
	unit := strings.ToLower(r.Unit.String())
	if m := r.Limit.GetUnitMultiplier().GetValue(); m > 1 {
		return fmt.Sprintf("%d per %d %ss", r.RequestsPerUnit, m, unit)
	}
	return fmt.Sprintf("%d per %s", r.RequestsPerUnit, unit)
}
