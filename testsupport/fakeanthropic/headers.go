package fakeanthropic

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// setRateLimitHeaders writes the anthropic-ratelimit-* headers of account a
// at now (reference §1, Response headers). Caller holds s.mu.
func setRateLimitHeaders(h http.Header, a *accountState, now time.Time) {
	rpmLevel := a.rpm.levelAt(now)
	inLevel := a.itpm.levelAt(now)
	outLevel := a.otpm.levelAt(now)
	inReset := now.Add(a.itpm.untilFull(now))
	outReset := now.Add(a.otpm.untilFull(now))

	set := func(axis string, limit int64, remaining int64, reset time.Time) {
		p := "anthropic-ratelimit-" + axis + "-"
		h.Set(p+"limit", strconv.FormatInt(limit, 10))
		h.Set(p+"remaining", strconv.FormatInt(remaining, 10))
		h.Set(p+"reset", formatReset(reset))
	}
	set("requests", a.limits.RPM, int64(math.Floor(math.Max(0, rpmLevel))), now.Add(a.rpm.untilFull(now)))
	set("input-tokens", a.limits.ITPM, roundThousand(inLevel), inReset)
	set("output-tokens", a.limits.OTPM, roundThousand(outLevel), outReset)
	tokReset := inReset
	if outReset.After(tokReset) {
		tokReset = outReset
	}
	set("tokens", a.limits.ITPM+a.limits.OTPM, roundThousand(math.Max(0, inLevel)+math.Max(0, outLevel)), tokReset)
}

// roundThousand floors v at 0 and rounds it to the nearest thousand.
func roundThousand(v float64) int64 {
	if v <= 0 {
		return 0
	}
	return int64(math.Round(v/1000)) * 1000
}

// formatReset rounds t up to a whole second and formats it as RFC 3339 UTC
// with a Z suffix.
func formatReset(t time.Time) string {
	t = t.UTC()
	if tr := t.Truncate(time.Second); !tr.Equal(t) {
		t = tr.Add(time.Second)
	}
	return t.Format(time.RFC3339)
}
