package keypool

import (
	"cmp"
	"fmt"
	"math"
	"time"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// classBuckets are an account's buckets for one model class: the axes with
// a configured limit, their keys (one hash tag per account, so one engine
// call covers them) and limits.
type classBuckets struct {
	axes   []int
	keys   []string
	limits []bucket.Limit
}

func newAccount(ca config.Account) *Account {
	a := &Account{Name: ca.Name, Limits: ca.Limits, weight: ca.Weight, health: 1, concurrency: ca.Concurrency,
		limits: classLimits(ca), buckets: map[Class]*classBuckets{}, classes: map[Class]*classState{}}
	if a.weight == 0 {
		a.weight = 1
	}
	for _, c := range classes {
		l := a.limits[c]
		b := &classBuckets{}
		for ax, v := range [numAxes]int64{l.RPM, l.ITPM, l.OTPM} {
			if v <= 0 {
				continue // not configured: only Anthropic's headers gate it
			}
			b.axes = append(b.axes, ax)
			b.keys = append(b.keys, fmt.Sprintf("{acct:%s}:%s:%s", ca.Name, c, axisNames[ax]))
			b.limits = append(b.limits, bucket.Rate(v, time.Minute))
		}
		a.buckets[c] = b
		st := &classState{}
		for i := range st.remaining {
			st.remaining[i] = -1
		}
		a.classes[c] = st
	}
	return a
}

var axisNames = [numAxes]string{"rpm", "itpm", "otpm"}

// requests builds the engine call for amounts on the class's buckets.
func (a *Account) requests(c Class, rpm, in, out int64) []bucket.Request {
	b := a.buckets[c]
	amounts := [numAxes]int64{rpm, in, out}
	reqs := make([]bucket.Request, len(b.axes))
	for i, ax := range b.axes {
		reqs[i] = bucket.Request{Key: b.keys[i], Limit: b.limits[i], N: amounts[ax]}
	}
	return reqs
}

// outputBucket returns the index among the class's buckets of its output
// tokens bucket, its limit and how many tokens it holds when full; ok is
// false without an output limit.
func (a *Account) outputBucket(c Class) (i int, l bucket.Limit, full int64, ok bool) {
	b := a.buckets[c]
	for i, ax := range b.axes {
		if ax == axOTPM {
			l := b.limits[i]
			return i, l, cmp.Or(l.Burst, l.Capacity), true
		}
	}
	return 0, bucket.Limit{}, 0, false
}

// outputBefore returns what the class's output bucket held before a Take
// of out output tokens that d allowed, from the time until it is full
// again (Remaining stops at 0 and would hide a debt), rounded up; -1
// without an output limit.
func (a *Account) outputBefore(c Class, out int64, d bucket.Decision) int64 {
	i, l, full, ok := a.outputBucket(c)
	if !ok || i >= len(d.Buckets) {
		return -1
	}
	used := int64(math.Floor(d.Buckets[i].ResetAfter.Seconds() * float64(l.Capacity) / l.Per.Seconds()))
	return full - used + out
}

// capCharge is the extra output tokens that keep our output bucket at or
// below Anthropic's when a reservation of reserved output tokens, taken
// with before in the bucket, is settled held later. We charge the
// reservation when the request starts, Anthropic as the tokens are
// produced: while Anthropic's bucket sat full and wasted its refill, ours,
// already charged, refilled. In the worst case Anthropic counted
// everything at the settlement, when its bucket held min(full, before +
// refill); ours then needs before + refill − full more, and never more
// than the reservation (ours cannot be fuller than full either). It is 0
// unless the bucket was within one held-time of refill of full, so it costs
// nothing under load. (Measured with the fake: without it, requests taken
// on full buckets at start-up left ours about 0.5 output tokens above
// Anthropic's for good, enough for an upstream 429 now and then.) Input
// tokens and requests are counted by Anthropic when the request arrives,
// milliseconds after we charge them: nothing is charged for those.
func (a *Account) capCharge(c Class, before, reserved int64, held time.Duration) int64 {
	_, l, full, ok := a.outputBucket(c)
	if !ok || before < 0 {
		return 0
	}
	refill := int64(math.Ceil(float64(l.Capacity) * held.Seconds() / l.Per.Seconds()))
	return min(max(0, before+refill-full), reserved)
}

// admission is what need must find available to start: all of it, except
// output tokens unless they are counted at the start, where one is enough.
func admission(need Need, outAtStart bool) [numAxes]int64 {
	out := need.Output
	if !outAtStart {
		out = min(out, 1)
	}
	return [numAxes]int64{1, need.Input, out}
}

// remember keeps what a decision said of the class's buckets.
func (a *Account) remember(c Class, d bucket.Decision, m *Metrics) {
	b, st := a.buckets[c], a.classes[c]
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, ax := range b.axes {
		if i < len(d.Buckets) {
			st.remaining[ax] = d.Buckets[i].Remaining
			m.headroom.WithLabelValues(a.Name, string(c), axisNames[ax]).Set(float64(d.Buckets[i].Remaining))
		}
	}
}

// InService reports whether any key of the account is in service.
func (a *Account) InService() bool {
	for _, k := range a.Keys {
		if k.Disabled() == "" {
			return true
		}
	}
	return false
}

// fits reports whether need can ever start within the class's limits.
func (a *Account) fits(c Class, need Need, outAtStart bool) bool {
	l := a.limits[c]
	amounts := admission(need, outAtStart)
	for ax, limit := range [numAxes]int64{l.RPM, l.ITPM, l.OTPM} {
		if limit > 0 && amounts[ax] > limit {
			return false
		}
	}
	return true
}

// readingSlack accounts for Anthropic rounding token remainders to the
// nearest thousand: the true value may be up to 500 lower.
const readingSlack = 500

// anthropicWait is how long Anthropic's last reading says need must wait on
// this account (0 when it fits, or the reading is stale).
func (a *Account) anthropicWait(c Class, need Need, outAtStart bool, now time.Time) time.Duration {
	st := a.classes[c]
	st.mu.Lock()
	r, at := st.reading, st.readAt
	st.mu.Unlock()
	if at.IsZero() {
		return 0
	}
	var wait time.Duration
	check := func(x anthropic.AxisReading, n, slack int64) {
		if !x.Present || x.Limit <= 0 || !x.Reset.After(now) {
			return // absent, or past its reset: the bucket has refilled
		}
		// Refill since the reading, at the limit's per-minute rate.
		refilled := int64(now.Sub(at).Seconds() * float64(x.Limit) / 60)
		have := x.Remaining - slack + refilled
		if have >= n {
			return
		}
		d := time.Duration(float64(n-have) / float64(x.Limit) * float64(time.Minute))
		wait = max(wait, d)
	}
	amounts := admission(need, outAtStart)
	check(r.Axis(anthropic.Requests), amounts[axRPM], 0)
	check(r.Axis(anthropic.InputTokens), amounts[axITPM], readingSlack)
	check(r.Axis(anthropic.OutputTokens), amounts[axOTPM], readingSlack)
	return wait
}

// score is the account's headroom for need: the tightest axis's remaining
// after need, as a fraction of its limit, times the account's weight. Our
// buckets and Anthropic's fresh readings both count; the lower wins.
func (a *Account) score(c Class, need Need, now time.Time) float64 {
	st := a.classes[c]
	st.mu.Lock()
	rem, r, at := st.remaining, st.reading, st.readAt
	st.mu.Unlock()
	l := a.limits[c]
	amounts := [numAxes]int64{1, need.Input, need.Output}
	readings := [numAxes]anthropic.AxisReading{r.Axis(anthropic.Requests), r.Axis(anthropic.InputTokens), r.Axis(anthropic.OutputTokens)}
	best := 1.0
	for ax, limit := range [numAxes]int64{l.RPM, l.ITPM, l.OTPM} {
		have := limit
		if rem[ax] >= 0 {
			have = rem[ax]
		}
		if x := readings[ax]; !at.IsZero() && x.Present && x.Reset.After(now) {
			if limit <= 0 {
				limit, have = x.Limit, x.Remaining
			} else {
				have = min(have, x.Remaining)
			}
		}
		if limit <= 0 {
			continue
		}
		f := float64(have-amounts[ax]) / float64(limit)
		best = min(best, f)
	}
	return best * a.weight
}

// nextKey returns the account's keys in service in turn.
func (a *Account) nextKey() *Key {
	n := len(a.Keys)
	start := int(a.next.Add(1))
	for i := range n {
		if k := a.Keys[(start+i)%n]; k.Disabled() == "" {
			return k
		}
	}
	return nil
}

// KeyFor returns a key in service of the reservation's account, rotating
// among them, or nil when the account has none left.
func (r *Reservation) KeyFor() *Key { return r.Account.nextKey() }

// InFlight is the number of requests holding a reservation on the account.
func (a *Account) InFlight() int64 { return a.inflight.Load() }
