package config

import (
	"fmt"
	"strconv"
	"time"
)

// Pool configures how requests are admitted to the key pool.
type Pool struct {
	// MaxWait is how long a request may wait in the admission queue for
	// capacity before it gets a 429 with retry-after (default 30 s, the
	// article's; the routing policy can lower it per request).
	MaxWait Duration `yaml:"max_wait"`
	// OutputReservation is how many output tokens a request reserves:
	// "max_tokens" (the default, safe whether Anthropic counts output at
	// the start or as produced) or a number N, meaning min(max_tokens, N).
	OutputReservation string `yaml:"output_reservation"`
	// OutputCounting is how Anthropic counts output tokens per minute
	// (OTPM), which decides when a request may start: "as_produced" (the
	// default, Anthropic's current documentation: OTPM is "evaluated in
	// real time as output tokens are produced" and max_tokens does not
	// factor in, so a request may start while the account has any output
	// tokens left; its reservation may leave our bucket in debt until it is
	// settled) or "at_start" (the mid-2025 documentation: OTPM estimated
	// from max_tokens when the request starts, so the whole reservation
	// must be available first).
	OutputCounting string `yaml:"output_counting"`
	// Affinity keeps a conversation (system prompt and first message) on
	// the account it used while that account has headroom, so Anthropic's
	// prompt cache keeps hitting. Default true.
	Affinity *bool `yaml:"affinity"`
	// LeaseTTL is how long a concurrency lease lives without renewal:
	// leases are renewed every third of it while their request runs, and
	// expire this long after a replica holding them dies (default 1 m).
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// DefaultMaxWait is the admission queue's default deadline.
const DefaultMaxWait = Duration(30 * time.Second)

// OutputTokens returns the output reservation for a request's max_tokens.
func (p Pool) OutputTokens(maxTokens int64) int64 {
	if n, err := strconv.ParseInt(p.OutputReservation, 10, 64); err == nil {
		return min(maxTokens, n)
	}
	return maxTokens
}

// Output counting modes (pool.output_counting).
const (
	OutputAsProduced = "as_produced"
	OutputAtStart    = "at_start"
)

// AffinityOn reports whether conversation affinity is on.
func (p Pool) AffinityOn() bool { return p.Affinity == nil || *p.Affinity }

func (p *Pool) applyDefaults() {
	if p.MaxWait == 0 {
		p.MaxWait = DefaultMaxWait
	}
	if p.LeaseTTL == 0 {
		p.LeaseTTL = Duration(time.Minute)
	}
	if p.OutputReservation == "" {
		p.OutputReservation = "max_tokens"
	}
	if p.OutputCounting == "" {
		p.OutputCounting = OutputAsProduced
	}
}

func (p *Pool) validate() error {
	if p.MaxWait < 0 {
		return fmt.Errorf("pool.max_wait: must not be negative")
	}
	if p.LeaseTTL < Duration(3*time.Second) {
		return fmt.Errorf("pool.lease_ttl: must be at least 3s")
	}
	if p.OutputReservation != "max_tokens" {
		if n, err := strconv.ParseInt(p.OutputReservation, 10, 64); err != nil || n < 1 {
			return fmt.Errorf("pool.output_reservation: %q is not max_tokens or a positive number of tokens", p.OutputReservation)
		}
	}
	if p.OutputCounting != OutputAsProduced && p.OutputCounting != OutputAtStart {
		return fmt.Errorf("pool.output_counting: %q is not as_produced or at_start", p.OutputCounting)
	}
	return nil
}
