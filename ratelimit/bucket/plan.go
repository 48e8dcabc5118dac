package bucket

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// op is what a call does to its buckets.
type op uint8

const (
	opTake op = iota
	opPeek
	opAdjust
)

// Bounds that keep every number the Lua script handles below 2^53, where Lua
// doubles are still exact integers. Times are microseconds since the Unix
// epoch (about 2^50.6 today).
const (
	maxCapacity = 1 << 52
	maxTau      = 1 << 50 // about 35 years of burst
	maxInc      = 1 << 51 // an increment beyond this can never pass anyway
	maxDailyN   = 1 << 52
)

// instant is us + frac/den microseconds, with 0 <= frac < den; den is the
// bucket's Capacity. Token-bucket arithmetic is exact in this form.
type instant struct{ us, frac int64 }

func (a instant) add(b instant, den int64) instant {
	r := instant{a.us + b.us, a.frac + b.frac}
	if r.frac >= den {
		r.frac -= den
		r.us++
	}
	return r
}

func (a instant) sub(b instant, den int64) instant {
	r := instant{a.us - b.us, a.frac - b.frac}
	if r.frac < 0 {
		r.frac += den
		r.us--
	}
	return r
}

func (a instant) less(b instant) bool {
	return a.us < b.us || (a.us == b.us && a.frac < b.frac)
}

// ceilDuration rounds a non-negative instant difference up to a whole
// microsecond; negative differences give 0.
func (a instant) ceilDuration() time.Duration {
	if a.us < 0 {
		return 0
	}
	us := a.us
	if a.frac > 0 {
		us++
	}
	return time.Duration(us) * time.Microsecond
}

// scaled returns n*perUS/den as an instant, saturating at maxInc.
func scaled(n, perUS, den int64) instant {
	hi, lo := bits.Mul64(uint64(n), uint64(perUS))
	if hi >= uint64(den) {
		return instant{maxInc, 0}
	}
	q, r := bits.Div64(hi, lo, uint64(den))
	if q > maxInc {
		return instant{maxInc, 0}
	}
	return instant{int64(q), int64(r)}
}

// plan is one request prepared for either backend.
type plan struct {
	kind  Kind
	cap   int64
	n     int64 // N as given
	never bool  // Take/Peek N larger than the bucket

	// TokenBucket.
	perUS int64
	inc   instant // |N| emission intervals
	tau   instant // Burst emission intervals
	ctau  instant // what a Take may fill: tau plus Debt emission intervals

	// Daily: starts of yesterday, today, tomorrow and the day after, µs.
	win [4]int64
}

func newPlan(o op, r *Request, now time.Time) (plan, error) {
	l := &r.Limit
	if r.Key == "" {
		return plan{}, ErrInvalidKey
	}
	if o != opAdjust && r.N < 0 {
		return plan{}, fmt.Errorf("%w: %q N=%d", ErrNegativeN, r.Key, r.N)
	}
	if l.Capacity < 1 || l.Capacity > maxCapacity {
		return plan{}, fmt.Errorf("%w: %q capacity %d", ErrInvalidLimit, r.Key, l.Capacity)
	}
	if r.Debt < 0 || (r.Debt > 0 && l.Kind != TokenBucket) {
		return plan{}, fmt.Errorf("%w: %q debt %d (token buckets only, not negative)", ErrInvalidLimit, r.Key, r.Debt)
	}
	p := plan{kind: l.Kind, cap: l.Capacity, n: r.N}
	switch l.Kind {
	case TokenBucket:
		p.perUS = l.Per.Microseconds()
		burst := l.Burst
		if burst == 0 {
			burst = l.Capacity
		}
		if p.perUS < 1 || burst < 0 {
			return plan{}, fmt.Errorf("%w: %q per %v burst %d", ErrInvalidLimit, r.Key, l.Per, l.Burst)
		}
		p.tau = scaled(burst, p.perUS, p.cap)
		if p.tau.us >= maxTau {
			return plan{}, fmt.Errorf("%w: %q burst lasts over %d µs", ErrInvalidLimit, r.Key, int64(maxTau))
		}
		n := r.N
		if n < 0 {
			n = -n // n > math.MinInt64: Adjust rejects MinInt64 below
		}
		if r.N == math.MinInt64 {
			n = math.MaxInt64
		}
		p.inc = scaled(n, p.perUS, p.cap)
		p.ctau = p.tau
		debt := int64(0)
		if o != opAdjust && r.Debt > 0 {
			debt = min(r.Debt, r.N)
			p.ctau = scaled(burst+debt, p.perUS, p.cap)
			if p.ctau.us >= maxTau {
				return plan{}, fmt.Errorf("%w: %q burst and debt last over %d µs", ErrInvalidLimit, r.Key, int64(maxTau))
			}
		}
		p.never = o != opAdjust && r.N-debt > burst
	case Daily:
		if r.N > maxDailyN || r.N < -maxDailyN {
			return plan{}, fmt.Errorf("%w: %q N=%d out of range", ErrInvalidLimit, r.Key, r.N)
		}
		p.win = dayWindows(now, l.Location)
		p.never = o != opAdjust && r.N > l.Capacity
	default:
		return plan{}, fmt.Errorf("%w: %q unknown kind %d", ErrInvalidLimit, r.Key, l.Kind)
	}
	return p, nil
}

// state is a stored bucket: TokenBucket (tat µs, tat frac); Daily (window
// start µs, count).
type state struct{ a, b int64 }

// outcome is one bucket's decision in the shape the Lua script returns it:
// ok, and the state the result is computed from (after the call if the call
// committed, before it otherwise).
type outcome struct {
	ok     bool
	before state
	after  state
	// Daily only: end of the current window, µs.
	end int64
}

// apply runs the decision for one bucket at now (µs). has reports whether st
// was stored. It mirrors the Lua script line for line.
func (p *plan) apply(o op, st state, has bool, now int64) (outcome, error) {
	if p.kind == Daily {
		return p.applyDaily(o, st, has, now)
	}
	tat := instant{now, 0}
	if has {
		s := instant{st.a, min(st.b, p.cap-1)}
		if tat.less(s) {
			tat = s
		}
	}
	full := instant{now, 0}.add(p.tau, p.cap) // the TAT of an empty bucket
	out := outcome{ok: true, before: state{tat.us, tat.frac}}
	next := tat
	switch {
	case o == opAdjust && p.n > 0:
		// A charge fills up to empty and no further, and never lowers a
		// debt a Take left (see Request.Debt).
		next = tat.add(p.inc, p.cap)
		if full.less(next) {
			next = full
			if full.less(tat) {
				next = tat
			}
		}
	case o == opAdjust && p.n < 0:
		next = tat.sub(p.inc, p.cap)
		if next.less(instant{now, 0}) {
			next = instant{now, 0}
		}
	case o != opAdjust:
		next = tat.add(p.inc, p.cap)
		if (instant{now, 0}).add(p.ctau, p.cap).less(next) {
			out.ok = false
			next = tat
		}
	}
	out.after = state{next.us, next.frac}
	return out, nil
}

func (p *plan) applyDaily(o op, st state, has bool, now int64) (outcome, error) {
	start, end, err := pickWindow(p.win, now)
	if err != nil {
		return outcome{}, err
	}
	var count int64
	if has && st.a == start {
		count = st.b
	}
	out := outcome{ok: true, before: state{start, count}, end: end}
	next := count + p.n
	switch {
	case o == opAdjust:
		next = max(0, min(next, p.cap))
	case next > p.cap:
		out.ok = false
		next = count
	}
	out.after = state{start, next}
	return out, nil
}

// result turns an outcome into the caller's Result; committed reports whether
// the call's changes were applied. Adjust outcomes are always ok.
func (p *plan) result(out outcome, committed bool, now int64) Result {
	st := out.before
	if committed {
		st = out.after
	}
	res := Result{Allowed: out.ok, Limit: p.cap}
	if p.kind == Daily {
		res.Remaining = max(0, p.cap-st.b)
		if st.b > 0 {
			res.ResetAfter = time.Duration(out.end-now) * time.Microsecond
		}
		switch {
		case out.ok:
		case p.never:
			res.RetryAfter = Never
		default:
			res.RetryAfter = time.Duration(out.end-now) * time.Microsecond
		}
		return res
	}
	tat := instant{st.a, st.b}
	nowI := instant{now, 0}
	res.ResetAfter = tat.sub(nowI, p.cap).ceilDuration()
	res.Remaining = tokensIn(nowI.add(p.tau, p.cap).sub(tat, p.cap), p.cap, p.perUS)
	switch {
	case out.ok:
	case p.never:
		res.RetryAfter = Never
	default:
		res.RetryAfter = tat.add(p.inc, p.cap).sub(p.ctau, p.cap).sub(nowI, p.cap).ceilDuration()
	}
	return res
}

// tokensIn is the number of whole tokens that refill in d: d*den/perUS.
func tokensIn(d instant, den, perUS int64) int64 {
	if d.us < 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(d.us), uint64(den))
	var carry uint64
	lo, carry = bits.Add64(lo, uint64(d.frac), 0)
	hi += carry
	if hi >= uint64(perUS) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(perUS))
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}
