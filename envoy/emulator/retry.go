package emulator

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Retry-on bits (RetryStateImpl::parseRetryOn).
const (
	retry5xx = 1 << iota
	retryGatewayError
	retryConnectFailure
	retryRetriable4xx
	retryRetriableStatusCodes
	retryReset
	retryRetriableHeaders
)

// retryState follows RetryStateImpl for the policy fields the emulator
// implements.
type retryState struct {
	on        int
	codes     []uint32
	headers   []*routev3.HeaderMatcher // retriable_headers
	remaining uint32
	next      time.Duration // JitteredExponentialBackOffStrategy::next_interval_
	max       time.Duration
	reset     []*routev3.RetryPolicy_ResetHeader
	resetMax  time.Duration
	held      bool // a retry counted against the cluster's max_retries
}

// releaseRetry gives back the retry counted against the cluster's
// max_retries, once the retried attempt's outcome is known (or the request
// ends), as RetryStateImpl::resetRetry. A nil state holds nothing.
func (rs *retryState) releaseRetry(c *cluster) {
	if rs != nil && rs.held {
		c.retries.Add(-1)
		rs.held = false
	}
}

func newRetryState(p *routev3.RetryPolicy) *retryState {
	if p == nil {
		return nil
	}
	rs := &retryState{codes: p.GetRetriableStatusCodes(), headers: p.GetRetriableHeaders(), remaining: 1}
	for _, s := range strings.Split(p.GetRetryOn(), ",") {
		switch strings.TrimSpace(s) {
		case "5xx":
			rs.on |= retry5xx
		case "gateway-error":
			rs.on |= retryGatewayError
		case "connect-failure":
			rs.on |= retryConnectFailure
		case "retriable-4xx":
			rs.on |= retryRetriable4xx
		case "retriable-status-codes":
			rs.on |= retryRetriableStatusCodes
		case "reset":
			rs.on |= retryReset
		case "retriable-headers":
			rs.on |= retryRetriableHeaders
		}
	}
	if rs.on == 0 {
		return nil
	}
	if p.GetNumRetries() != nil {
		rs.remaining = p.GetNumRetries().GetValue()
	}
	base := 25 * time.Millisecond
	if b := p.GetRetryBackOff().GetBaseInterval(); b != nil {
		base = b.AsDuration()
	}
	rs.next, rs.max = base, 10*base
	if m := p.GetRetryBackOff().GetMaxInterval(); m != nil {
		rs.max = m.AsDuration()
	}
	if rl := p.GetRateLimitedRetryBackOff(); rl != nil {
		rs.reset = rl.GetResetHeaders()
		rs.resetMax = 300 * time.Second
		if m := rl.GetMaxInterval(); m != nil {
			rs.resetMax = m.AsDuration()
		}
	}
	return rs
}

// wouldRetryHeaders is RetryStateImpl::wouldRetryFromHeaders.
func (rs *retryState) wouldRetryHeaders(status int, h *headerMap) bool {
	if _, ok := h.get("x-envoy-ratelimited"); ok {
		return false // retry_on envoy-ratelimited is not implemented
	}
	switch {
	case rs.on&retry5xx != 0 && status >= 500 && status < 600:
		return true
	case rs.on&retryGatewayError != 0 && status >= 502 && status <= 504:
		return true
	case rs.on&retryRetriable4xx != 0 && status == http.StatusConflict:
		return true
	}
	if rs.on&retryRetriableStatusCodes != 0 {
		for _, c := range rs.codes {
			if int(c) == status && c != http.StatusTooEarly {
				return true
			}
		}
	}
	if rs.on&retryRetriableHeaders != 0 {
		// (Envoy also reads x-envoy-retriable-header-names from the
		// request; not implemented.)
		for _, m := range rs.headers {
			if headerMatch(m, h) {
				return true
			}
		}
	}
	return false
}

// wouldRetryReset is RetryStateImpl::wouldRetryFromReset.
func (rs *retryState) wouldRetryReset(connectFailure bool) bool {
	if connectFailure && rs.on&retryConnectFailure != 0 {
		return true
	}
	return rs.on&(retryReset|retry5xx|retryGatewayError) != 0
}

// resetInterval parses the first reset header whose interval is at most the
// max interval (RetryStateImpl::parseResetInterval: larger ones are skipped).
func (rs *retryState) resetInterval(h *headerMap, now time.Time) (time.Duration, bool) {
	for _, r := range rs.reset {
		v, ok := h.get(strings.ToLower(r.GetName()))
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		var d time.Duration
		if r.GetFormat() == routev3.RetryPolicy_UNIX_TIMESTAMP {
			ts := uint64(now.Unix())
			if n < ts {
				continue
			}
			d = time.Duration(n-ts) * time.Second
		} else {
			d = time.Duration(n) * time.Second
		}
		if d <= rs.resetMax {
			return d, true
		}
	}
	return 0, false
}

// backoff returns the next exponential back-off: random in [0, next), next
// doubling up to max (JitteredExponentialBackOffStrategy).
func (rs *retryState) backoff() time.Duration {
	b := rs.next
	if rs.next < rs.max/2 {
		rs.next *= 2
	} else {
		rs.next = rs.max
	}
	if b <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(b)))
}

// lowerBound is JitteredLowerBoundBackOffStrategy: random in [d, 1.5d).
func lowerBound(d time.Duration) time.Duration {
	if d/2 <= 0 {
		return d
	}
	return d + time.Duration(rand.Int64N(int64(d/2)))
}
