// Package rlsconfig loads rate-limit rules written in envoyproxy/ratelimit's
// YAML format, unchanged, plus claude-guardian's extensions, and matches RLS
// descriptors against them with the reference service's semantics.
//
// # Format
//
// One file per domain:
//
//	domain: <unique domain>
//	descriptors:
//	  - key: <required>
//	    value: <optional; '*' matches any run of characters>
//	    rate_limit:            # optional
//	      unit: second | minute | hour | day | week | month | year
//	      requests_per_unit: <uint32>
//	      unlimited: <bool>    # forbids unit
//	      name: <optional, for replaces>
//	      replaces: [{name: <name>}]
//	      # claude-guardian extensions:
//	      algorithm: token_bucket | fixed_window   # default token_bucket
//	      burst: <uint32>      # token_bucket: bucket size, default requests_per_unit
//	      day_reset_timezone: <IANA zone>  # unit day: reset at local midnight
//	      concurrency: <uint32>            # concurrent leases instead of a rate
//	      lease_ttl: <duration>            # concurrency: reclaim after, default 10m
//	    shadow_mode: <bool>
//	    quota_mode: <bool>
//	    detailed_metric: <bool>
//	    value_to_metric: <bool>
//	    share_threshold: <bool>
//	    metadata: <any map; accepted and ignored>
//	    descriptors: [...]     # nested
//
// Unknown keys are errors (per level, stricter than the reference, which
// accepts any known key at any level).
//
// # Matching
//
// A request descriptor's entries are matched level by level: first the exact
// "key_value", then the wildcard patterns of that level in file order, then
// the key alone. A rule applies only when it sits at the level of the
// descriptor's last entry. An unknown domain or an unmatched descriptor has no
// rule.
package rlsconfig

import (
	"crypto/sha256"
	"time"

	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
)

// Algorithm selects how a rule counts.
type Algorithm uint8

const (
	// TokenBucket refills continuously (GCRA): never more than Burst plus
	// RequestsPerUnit per unit in any interval. The default.
	TokenBucket Algorithm = iota
	// FixedWindow counts per window floor(now/unit) like envoyproxy/ratelimit,
	// so up to twice the limit passes around a window edge.
	FixedWindow
)

// String returns the YAML spelling.
func (a Algorithm) String() string {
	if a == FixedWindow {
		return "fixed_window"
	}
	return "token_bucket"
}

// DefaultLeaseTTL reclaims a concurrency lease whose release never came.
const DefaultLeaseTTL = 10 * time.Minute

// Rule is one rate_limit block. Rules are shared by every request and must
// not be modified.
type Rule struct {
	// Key is the reference's stats key of the rule: domain and the config
	// path, e.g. "messaging.message_type_marketing.to_number".
	Key string
	// Domain and the descriptor key of the rule's own level, for metric labels.
	Domain, DescriptorKey string

	Name            string
	Unit            rlspb.RateLimitResponse_RateLimit_Unit
	RequestsPerUnit uint32
	Unlimited       bool
	Replaces        []string
	ShadowMode      bool
	QuotaMode       bool
	DetailedMetric  bool

	Algorithm Algorithm
	// Burst is the token bucket's size; 0 means RequestsPerUnit.
	Burst uint32
	// Location, when set on a unit-day token-bucket rule, makes it a calendar
	// quota reset at local midnight.
	Location *time.Location
	// Concurrency, when positive, makes the rule a concurrency limit: each hit
	// acquires a lease held until released or LeaseTTL passes.
	Concurrency uint32
	LeaseTTL    time.Duration

	// Limit is the current_limit sent in responses (nil for unlimited).
	Limit *rlspb.RateLimitResponse_RateLimit
}

// UnitDuration is the reference's length of a unit (a month is 30 days, a
// year 365); 0 for UNKNOWN.
func UnitDuration(u rlspb.RateLimitResponse_RateLimit_Unit) time.Duration {
	switch u {
	case rlspb.RateLimitResponse_RateLimit_SECOND:
		return time.Second
	case rlspb.RateLimitResponse_RateLimit_MINUTE:
		return time.Minute
	case rlspb.RateLimitResponse_RateLimit_HOUR:
		return time.Hour
	case rlspb.RateLimitResponse_RateLimit_DAY:
		return 24 * time.Hour
	case rlspb.RateLimitResponse_RateLimit_WEEK:
		return 7 * 24 * time.Hour
	case rlspb.RateLimitResponse_RateLimit_MONTH:
		return 30 * 24 * time.Hour
	case rlspb.RateLimitResponse_RateLimit_YEAR:
		return 365 * 24 * time.Hour
	}
	return 0
}

// Config is a loaded set of domains: an immutable snapshot.
type Config struct {
	domains map[string]*node
	// Files lists the files loaded, in load order.
	Files []string
	// Hash identifies the content loaded (names and bytes).
	Hash [sha256.Size]byte
}

// Domains returns the number of domains.
func (c *Config) Domains() int { return len(c.domains) }

// HasDomain reports whether domain is configured.
func (c *Config) HasDomain(domain string) bool {
	_, ok := c.domains[domain]
	return ok
}

// node is one level of a domain's descriptor tree.
type node struct {
	children map[string]*node // "key" or "key_value"
	wild     []wildEntry      // patterns containing '*', in file order
	rule     *Rule

	valueToMetric bool
	// shareThreshold: values matching this node's wildcard share one
	// counter; sharePattern is the value part of the pattern.
	shareThreshold bool
	sharePattern   string
}

type wildEntry struct {
	key   string   // the children key, e.g. "path_/api/*"
	parts []string // key split on '*'
}
