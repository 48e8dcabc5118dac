package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"
)

// Load reads, expands and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	c.resolveRatelimitDir(filepath.Dir(path))
	c.Policy.resolveDir(filepath.Dir(path))
	return c, nil
}

// Parse decodes a guardian.yaml document, expands ${NAME} and
// ${NAME:-default} from lookup, fills defaults and validates the result.
// Unknown fields are errors.
func Parse(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.expand(lookup); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// errUnset is returned by expandString for a ${NAME} without default whose
// variable is not set.
type errUnset struct{ name string }

func (e errUnset) Error() string { return "environment variable " + e.name + " is not set" }

// expandString replaces every ${NAME} and ${NAME:-default} in s.
func expandString(s string, lookup func(string) (string, bool)) (string, error) {
	var firstErr error
	out := envRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		v, ok := lookup(m[1])
		if m[2] != "" { // has a default
			if !ok || v == "" {
				return m[3]
			}
			return v
		}
		if !ok && firstErr == nil {
			firstErr = errUnset{m[1]}
		}
		return v
	})
	return out, firstErr
}

func (c *Config) expand(lookup func(string) (string, bool)) error {
	type field struct {
		path string
		p    *string
	}
	fields := []field{
		{"listen.extproc", &c.Listen.ExtProc},
		{"listen.ratelimit", &c.Listen.RateLimit},
		{"listen.admin", &c.Listen.Admin},
		{"redis.url", &c.Redis.URL},
		{"ratelimit.config_dir", &c.Ratelimit.ConfigDir},
		{"policy.dir", &c.Policy.Dir},
	}
	if c.Backends.Ollama != nil {
		fields = append(fields, field{"backends.ollama.url", &c.Backends.Ollama.URL})
	}
	for i := range c.Clients {
		fields = append(fields, field{fmt.Sprintf("clients[%d].key", i), &c.Clients[i].Key})
	}
	for _, f := range fields {
		v, err := expandString(*f.p, lookup)
		if err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		*f.p = v
	}
	// An account key whose variable is unset disables that key instead of
	// failing: the gateway still starts and says which variable to set.
	for i := range c.Accounts {
		for j := range c.Accounts[i].Keys {
			k := &c.Accounts[i].Keys[j]
			v, err := expandString(k.Key, lookup)
			var unset errUnset
			if errors.As(err, &unset) {
				k.Key, k.MissingEnv = "", unset.name
				continue
			}
			k.Key = v
		}
	}
	return nil
}

func (c *Config) applyDefaults() {
	if c.Listen.ExtProc == "" {
		c.Listen.ExtProc = DefaultExtProcAddr
	}
	if c.Listen.Admin == "" {
		c.Listen.Admin = DefaultAdminAddr
	}
	if c.Gateway.MaxRequestBytes == 0 {
		c.Gateway.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.Gateway.MaxResponseScanBytes == 0 {
		c.Gateway.MaxResponseScanBytes = DefaultMaxResponseScanBytes
	}
	if c.Gateway.ShutdownTimeout == 0 {
		c.Gateway.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Redis.Timeout == 0 {
		c.Redis.Timeout = DefaultRedisTimeout
	}
	c.Ratelimit.applyDefaults()
	c.Pool.applyDefaults()
}

// namePattern restricts tenant, account and key ids: they become header
// values and metric labels.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func checkName(path, v string) error {
	if v == "" {
		return fmt.Errorf("%s: empty", path)
	}
	if !namePattern.MatchString(v) {
		return fmt.Errorf("%s: %q must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", path, v)
	}
	return nil
}

func checkAddr(path, v string) error {
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return fmt.Errorf("%s: %q is not host:port", path, v)
	}
	return nil
}

func (c *Config) validate() error {
	if err := checkAddr("listen.extproc", c.Listen.ExtProc); err != nil {
		return err
	}
	if c.Listen.RateLimit != "" {
		if err := checkAddr("listen.ratelimit", c.Listen.RateLimit); err != nil {
			return err
		}
	}
	if err := checkAddr("listen.admin", c.Listen.Admin); err != nil {
		return err
	}
	if c.Redis.URL != "" {
		if _, err := redis.ParseURL(c.Redis.URL); err != nil {
			return fmt.Errorf("redis.url: %w", err)
		}
	}
	if c.Redis.Timeout < 0 {
		return fmt.Errorf("redis.timeout: must be positive")
	}
	if c.Gateway.MaxRequestBytes < 0 {
		return fmt.Errorf("gateway.max_request_bytes: must be positive")
	}
	if c.Gateway.MaxResponseScanBytes < 0 {
		return fmt.Errorf("gateway.max_response_scan_bytes: must be positive")
	}
	if c.Gateway.ShutdownTimeout < 0 {
		return fmt.Errorf("gateway.shutdown_timeout: must be positive")
	}
	if c.Gateway.Drain() < 0 {
		return fmt.Errorf("gateway.drain_delay: must not be negative")
	}
	if err := c.validateRatelimit(); err != nil {
		return err
	}
	if err := c.Pool.validate(); err != nil {
		return err
	}
	if err := c.Policy.validate(); err != nil {
		return err
	}
	if err := c.validateClients(); err != nil {
		return err
	}
	if err := c.validateAccounts(); err != nil {
		return err
	}
	if o := c.Backends.Ollama; o != nil && o.Model == "" {
		return fmt.Errorf("backends.ollama.model: empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return fmt.Errorf("log.format: %q is not json or text", c.Log.Format)
	}
	return nil
}

func (c *Config) validateClients() error {
	if len(c.Clients) == 0 {
		return fmt.Errorf("clients: at least one client (gateway key) is required")
	}
	names := map[string]int{}
	keys := map[string]int{}
	for i, cl := range c.Clients {
		p := fmt.Sprintf("clients[%d]", i)
		if err := checkName(p+".name", cl.Name); err != nil {
			return err
		}
		switch cl.Priority {
		case "", "high", "normal", "low":
		default:
			return fmt.Errorf("%s.priority: %q is not high, normal or low", p, cl.Priority)
		}
		if j, dup := names[cl.Name]; dup {
			return fmt.Errorf("%s.name: %q is also clients[%d].name", p, cl.Name, j)
		}
		names[cl.Name] = i
		if cl.Key == "" {
			return fmt.Errorf("%s.key: empty", p)
		}
		if cl.Concurrency < 0 {
			return fmt.Errorf("%s.concurrency: must not be negative", p)
		}
		if strings.TrimSpace(cl.Key) != cl.Key {
			return fmt.Errorf("%s.key: has leading or trailing white space", p)
		}
		if j, dup := keys[cl.Key]; dup {
			return fmt.Errorf("%s.key: same key as clients[%d]", p, j)
		}
		keys[cl.Key] = i
	}
	return nil
}

func checkLimits(path string, l Limits) error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"rpm", l.RPM}, {"itpm", l.ITPM}, {"otpm", l.OTPM}} {
		if f.v < 0 {
			return fmt.Errorf("%s.%s: must not be negative", path, f.name)
		}
	}
	return nil
}

func (c *Config) validateAccounts() error {
	if len(c.Accounts) == 0 {
		return fmt.Errorf("accounts: at least one Anthropic account is required")
	}
	names := map[string]int{}
	ids := map[string]string{}
	secrets := map[string]string{}
	for i, a := range c.Accounts {
		p := fmt.Sprintf("accounts[%d]", i)
		if err := checkName(p+".name", a.Name); err != nil {
			return err
		}
		if j, dup := names[a.Name]; dup {
			return fmt.Errorf("%s.name: %q is also accounts[%d].name", p, a.Name, j)
		}
		names[a.Name] = i
		if err := checkLimits(p+".limits", a.Limits); err != nil {
			return err
		}
		for class, l := range a.Classes {
			if !slices.Contains(ModelClasses, class) {
				return fmt.Errorf("%s.classes: %q is not a model class (%s)", p, class, strings.Join(ModelClasses, ", "))
			}
			if err := checkLimits(p+".classes."+class, l); err != nil {
				return err
			}
		}
		if a.Weight < 0 {
			return fmt.Errorf("%s.weight: must not be negative", p)
		}
		if a.Concurrency < 0 {
			return fmt.Errorf("%s.concurrency: must not be negative", p)
		}
		if len(a.Keys) == 0 {
			return fmt.Errorf("%s.keys: at least one key is required", p)
		}
		for j, k := range a.Keys {
			kp := fmt.Sprintf("%s.keys[%d]", p, j)
			if err := checkName(kp+".id", k.ID); err != nil {
				return err
			}
			if other, dup := ids[k.ID]; dup {
				return fmt.Errorf("%s.id: %q is also %s.id", kp, k.ID, other)
			}
			ids[k.ID] = kp
			if k.MissingEnv != "" {
				continue
			}
			if k.Key == "" {
				return fmt.Errorf("%s.key: empty", kp)
			}
			if strings.TrimSpace(k.Key) != k.Key {
				return fmt.Errorf("%s.key: has leading or trailing white space", kp)
			}
			if other, dup := secrets[k.Key]; dup {
				return fmt.Errorf("%s.key: same key as %s", kp, other)
			}
			secrets[k.Key] = kp
		}
	}
	return nil
}
