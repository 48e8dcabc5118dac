package anthropic

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Axis is one of the limits Anthropic reports in anthropic-ratelimit-*.
type Axis uint8

// The axes, in header-name order.
const (
	Requests Axis = iota
	InputTokens
	OutputTokens
	Tokens // input + output, or the most restrictive limit in effect
	numAxes
)

// String returns the axis's header infix ("input-tokens").
func (a Axis) String() string {
	switch a {
	case Requests:
		return "requests"
	case InputTokens:
		return "input-tokens"
	case OutputTokens:
		return "output-tokens"
	case Tokens:
		return "tokens"
	}
	return "unknown"
}

// Axes lists every axis.
var Axes = [...]Axis{Requests, InputTokens, OutputTokens, Tokens}

// AxisReading is one axis of a response's rate-limit headers.
type AxisReading struct {
	Present   bool
	Limit     int64
	Remaining int64     // token axes are rounded to the nearest thousand
	Reset     time.Time // when the bucket is full again (RFC 3339)
}

// RateLimitReading is everything a response says about the account's limits.
type RateLimitReading struct {
	Axes [numAxes]AxisReading
	// RetryAfter is the retry-after header (seconds), or retry-after-ms
	// when present; zero when absent.
	RetryAfter time.Duration
	// HasRetryAfter tells an absent header from "retry now".
	HasRetryAfter bool
	retryAfterMs  bool // retry-after-ms wins over retry-after, as in the SDKs
}

// Axis returns the reading for a.
func (r *RateLimitReading) Axis(a Axis) AxisReading { return r.Axes[a] }

// Any reports whether any anthropic-ratelimit-* header was present.
func (r *RateLimitReading) Any() bool {
	for _, a := range r.Axes {
		if a.Present {
			return true
		}
	}
	return false
}

// Observe reads one response header into the reading. Names must be lower
// case (as HTTP/2 and Envoy deliver them). It returns whether the header
// was a rate-limit header.
func (r *RateLimitReading) Observe(name, value string) bool {
	switch name {
	case "retry-after":
		if d, ok := parseSeconds(value); ok && !r.retryAfterMs {
			r.RetryAfter, r.HasRetryAfter = d, true
		}
		return true
	case "retry-after-ms":
		if ms, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && ms >= 0 && !math.IsInf(ms, 0) {
			r.RetryAfter, r.HasRetryAfter = time.Duration(ms*float64(time.Millisecond)), true
			r.retryAfterMs = true
		}
		return true
	}
	rest, ok := strings.CutPrefix(name, "anthropic-ratelimit-")
	if !ok {
		return false
	}
	for _, a := range Axes {
		field, ok := strings.CutPrefix(rest, a.String()+"-")
		if !ok {
			continue
		}
		ax := &r.Axes[a]
		switch field {
		case "limit":
			if v, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil && v >= 0 {
				ax.Limit, ax.Present = v, true
			}
		case "remaining":
			if v, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil && v >= 0 {
				ax.Remaining, ax.Present = v, true
			}
		case "reset":
			if t, err := time.Parse(time.RFC3339, strings.TrimSpace(value)); err == nil {
				ax.Reset, ax.Present = t, true
			}
		}
		return true
	}
	return false
}

// parseSeconds reads retry-after: float seconds, or an HTTP date (as the
// SDKs accept).
func parseSeconds(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}
