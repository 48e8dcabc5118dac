package config

import (
	"fmt"
	"path/filepath"
	"time"
)

// Ratelimit configures the rate-limit service (listen.ratelimit).
type Ratelimit struct {
	// ConfigDir holds rule files in envoyproxy/ratelimit's YAML format,
	// reloaded on change. A relative path is relative to the directory of
	// the guardian.yaml that names it. Empty: no rules, every call is OK.
	ConfigDir string `yaml:"config_dir"`
	// Store is "auto" (Redis when redis.url is set, else memory), "memory"
	// or "redis".
	Store string `yaml:"store"`
	// Fallback is what a replica does while Redis is unreachable or slow:
	// "local_share" (each limit divided by Replicas, in memory),
	// "fail_open", or "error" (UNAVAILABLE: Envoy's failure_mode_deny
	// decides).
	Fallback string `yaml:"fallback"`
	// Replicas divides limits in the local_share fallback. Default 1.
	Replicas int `yaml:"replicas"`
	// RedisTimeout bounds one Redis call before the fallback answers.
	RedisTimeout Duration `yaml:"redis_timeout"`
	// Headers adds RateLimit-Limit/-Remaining/-Reset to RLS responses.
	Headers bool `yaml:"headers"`
	// AnthropicErrors gives OVER_LIMIT responses Anthropic's
	// rate_limit_error JSON body and retry-after. Default true.
	AnthropicErrors *bool `yaml:"anthropic_errors"`
}

// Defaults of the ratelimit section.
const (
	DefaultRatelimitStore        = "auto"
	DefaultRatelimitFallback     = "local_share"
	DefaultRatelimitRedisTimeout = Duration(50 * time.Millisecond)
)

// UseRedis reports whether the RLS keeps its counters in Redis.
func (c *Config) UseRedis() bool {
	return c.Ratelimit.Store == "redis" || (c.Ratelimit.Store == "auto" && c.Redis.URL != "")
}

// AnthropicErrorBodies reports whether OVER_LIMIT carries Anthropic's body.
func (r Ratelimit) AnthropicErrorBodies() bool {
	return r.AnthropicErrors == nil || *r.AnthropicErrors
}

func (r *Ratelimit) applyDefaults() {
	if r.Store == "" {
		r.Store = DefaultRatelimitStore
	}
	if r.Fallback == "" {
		r.Fallback = DefaultRatelimitFallback
	}
	if r.Replicas == 0 {
		r.Replicas = 1
	}
	if r.RedisTimeout == 0 {
		r.RedisTimeout = DefaultRatelimitRedisTimeout
	}
}

func (c *Config) validateRatelimit() error {
	r := &c.Ratelimit
	switch r.Store {
	case "auto", "memory":
	case "redis":
		if c.Redis.URL == "" {
			return fmt.Errorf("ratelimit.store: redis needs redis.url")
		}
	default:
		return fmt.Errorf("ratelimit.store: %q is not auto, memory or redis", r.Store)
	}
	switch r.Fallback {
	case "local_share", "fail_open", "error":
	default:
		return fmt.Errorf("ratelimit.fallback: %q is not local_share, fail_open or error", r.Fallback)
	}
	if r.Replicas < 1 {
		return fmt.Errorf("ratelimit.replicas: must be at least 1")
	}
	if r.RedisTimeout < 0 {
		return fmt.Errorf("ratelimit.redis_timeout: must be positive")
	}
	return nil
}

// resolveRatelimitDir makes a relative config_dir relative to base.
func (c *Config) resolveRatelimitDir(base string) {
	if d := c.Ratelimit.ConfigDir; d != "" && !filepath.IsAbs(d) {
		c.Ratelimit.ConfigDir = filepath.Join(base, d)
	}
}
