package extproc

import (
	"time"

	"github.com/claude-guardian/claude-guardian/keypool"
)

// PoolHeadroom reports the key pool's capacity to the routing policy
// (policy.HeadroomSource). Anthropic's readings come per account, not per
// model class, so every class sees the same figure until the pool tracks
// classes: the best headroom among accounts that have a key in service and
// are not cooling down, an account's headroom being its tightest axis's
// remaining ÷ limit from its latest anthropic-ratelimit-* reading (1 with
// no reading, or once the axis's reset has passed).
type PoolHeadroom struct {
	Pool *keypool.Pool
}

// Headroom implements [policy.HeadroomSource].
func (p PoolHeadroom) Headroom(_ string, now time.Time) (float64, time.Duration) {
	best, serving := 0.0, false
	var soonest time.Duration
	for _, a := range p.Pool.Accounts() {
		if !a.InService() {
			continue
		}
		if until := a.CoolingUntil(); until.After(now) {
			if d := until.Sub(now); soonest == 0 || d < soonest {
				soonest = d
			}
			continue
		}
		serving = true
		if h := accountHeadroom(a, now); h > best {
			best = h
		}
	}
	if serving {
		return best, 0
	}
	return 0, soonest
}

func accountHeadroom(a *keypool.Account, now time.Time) float64 {
	r, at := a.Reading()
	h := 1.0
	if at.IsZero() {
		return h
	}
	for _, ax := range r.Axes {
		if !ax.Present || ax.Limit <= 0 || !ax.Reset.After(now) {
			continue
		}
		if f := float64(ax.Remaining) / float64(ax.Limit); f < h {
			h = f
		}
	}
	return max(h, 0)
}
