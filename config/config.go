// Package config loads and validates guardian.yaml, the one file that tells a
// guardian process where to listen, which gateway keys its callers use, which
// Anthropic accounts and keys form the pool, and where the backends are.
//
// Errors name the offending field the way a user reads it in the file, for
// example "accounts[1].keys[0].key: empty".
package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole guardian.yaml after defaults, environment expansion and
// validation. It is immutable once returned by Load or Parse.
type Config struct {
	Listen   Listen    `yaml:"listen"`
	Redis    Redis     `yaml:"redis"`
	Gateway  Gateway   `yaml:"gateway"`
	Clients  []Client  `yaml:"clients"`
	Accounts []Account `yaml:"accounts"`
	Backends Backends  `yaml:"backends"`
	Log      Log       `yaml:"log"`
	// Ratelimit configures the rate-limit service.
	Ratelimit Ratelimit `yaml:"ratelimit"`
	// Policy configures the routing policy (OPA Rego).
	Policy Policy `yaml:"policy"`
	// Pool configures admission to the key pool.
	Pool Pool `yaml:"pool"`
}

// Listen holds the addresses of the three servers a guardian process runs.
type Listen struct {
	// ExtProc is the ext_proc gRPC address (front and upstream processors).
	ExtProc string `yaml:"extproc"`
	// RateLimit is the RLS gRPC address; empty disables the RLS.
	RateLimit string `yaml:"ratelimit"`
	// Admin serves /metrics, /healthz and /readyz over HTTP.
	Admin string `yaml:"admin"`
}

// Redis selects shared state. An empty URL keeps all state in memory, which is
// right for exactly one replica.
type Redis struct {
	URL string `yaml:"url"`
	// Timeout bounds one call of the key pool's state (connecting: 4×);
	// it replaces any timeouts and retries the URL sets. While Redis is
	// unavailable the pool's calls fail at once and requests go without a
	// reservation; a probe every second finds it back. The RLS has its own
	// ratelimit.redis_timeout.
	Timeout Duration `yaml:"timeout"`
}

// DefaultRedisTimeout is redis.timeout's default.
const DefaultRedisTimeout = Duration(100 * time.Millisecond)

// Gateway holds limits of the front processor.
type Gateway struct {
	// MaxRequestBytes caps a request body; larger bodies get 413
	// request_too_large. Anthropic's own cap is 32 MiB.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// MaxResponseScanBytes caps how much of a non-streaming JSON response is
	// kept to read its usage; past it the usage counts as unknown.
	MaxResponseScanBytes int64 `yaml:"max_response_scan_bytes"`
	// ShutdownTimeout bounds how long SIGTERM waits for in-flight streams.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// DrainDelay is how long SIGTERM keeps accepting new streams after
	// readiness and gRPC health turn NOT_SERVING, while Kubernetes and
	// Envoy take the endpoint out of rotation (nil: DefaultDrainDelay).
	DrainDelay *Duration `yaml:"drain_delay"`
}

// DefaultDrainDelay is gateway.drain_delay's default.
const DefaultDrainDelay = Duration(5 * time.Second)

// Drain returns gateway.drain_delay, or its default when unset.
func (g Gateway) Drain() time.Duration {
	if g.DrainDelay == nil {
		return time.Duration(DefaultDrainDelay)
	}
	return time.Duration(*g.DrainDelay)
}

// Client is one application (tenant) and the gateway key it presents.
type Client struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
	// Priority is the tenant's priority class: high, normal (default) or
	// low. The routing policy sees it and the admission queue uses it.
	Priority string `yaml:"priority"`
	// AllowModelRewrite lets the routing policy change the model the
	// tenant asked for (e.g. a short, simple request to haiku). Default
	// false: the model is never changed behind the caller's back.
	AllowModelRewrite bool `yaml:"allow_model_rewrite"`
	// Concurrency caps the tenant's requests in flight to Claude (0: no
	// cap); past it requests wait in the admission queue.
	Concurrency int64 `yaml:"concurrency"`
}

// Account is one Anthropic organization: limits belong to it and its keys
// share them.
type Account struct {
	Name   string `yaml:"name"`
	Limits Limits `yaml:"limits"`
	// Classes overrides Limits per model class (opus, sonnet, haiku):
	// Anthropic counts each class against its own limits.
	Classes map[string]Limits `yaml:"classes"`
	// Weight scales the account's share when accounts have equal headroom
	// (default 1; 0 keeps the default).
	Weight float64 `yaml:"weight"`
	// Concurrency caps the account's requests in flight (0: no cap), the
	// article's "concurrent outstanding requests".
	Concurrency int64 `yaml:"concurrency"`
	Keys        []Key `yaml:"keys"`
}

// ModelClasses are the keys Account.Classes accepts.
var ModelClasses = []string{"opus", "sonnet", "haiku"}

// Limits are an account's per-minute limits. Zero means not configured: the
// gateway learns it from Anthropic's anthropic-ratelimit-* headers.
type Limits struct {
	RPM  int64 `yaml:"rpm"`
	ITPM int64 `yaml:"itpm"`
	OTPM int64 `yaml:"otpm"`
}

// Key is one Anthropic API key of an account.
type Key struct {
	ID  string `yaml:"id"`
	Key string `yaml:"key"`
	// MissingEnv names the environment variable the key was to come from
	// when it was unset; such a key is disabled with a warning instead of
	// failing the whole config, so `make run` works without credentials.
	MissingEnv string `yaml:"-"`
}

// Usable reports whether the key has a value.
func (k Key) Usable() bool { return k.Key != "" }

// Backends describes the upstreams Envoy routes to.
type Backends struct {
	Anthropic Anthropic `yaml:"anthropic"`
	Ollama    *Ollama   `yaml:"ollama"`
}

// Anthropic is the Claude backend, reached through Envoy's anthropic cluster.
type Anthropic struct{}

// Ollama is the local model backend, reached through Envoy's ollama cluster.
type Ollama struct {
	Model string `yaml:"model"`
	// URL is Ollama's address for health checks and embeddings; Envoy
	// carries the messages themselves.
	URL string `yaml:"url"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 30s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Defaults used when a field is absent.
const (
	DefaultExtProcAddr          = "127.0.0.1:9002"
	DefaultRateLimitAddr        = "127.0.0.1:8081"
	DefaultAdminAddr            = "127.0.0.1:8080"
	DefaultMaxRequestBytes      = 32 << 20
	DefaultMaxResponseScanBytes = 4 << 20
	DefaultShutdownTimeout      = Duration(60 * time.Second)
)
