package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/deploy/local"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseValid(t *testing.T) {
	data, err := os.ReadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, env(map[string]string{
		"SHOP_GATEWAY_KEY": "gw-shop", "CLAUDE_KEY_A1": "sk-test-a1", // CLAUDE_KEY_B1 unset
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Clients[0].Key; got != "gw-shop" {
		t.Errorf("clients[0].key = %q, want expanded gw-shop", got)
	}
	if got := c.Clients[1].Key; got != "literal-search-key" {
		t.Errorf("clients[1].key = %q", got)
	}
	a := c.Accounts[0]
	if a.Keys[0].Key != "sk-test-a1" || a.Keys[1].Key != "fallback-a2" {
		t.Errorf("account keys = %q, %q", a.Keys[0].Key, a.Keys[1].Key)
	}
	if a.Limits != (Limits{RPM: 50, ITPM: 30000, OTPM: 8000}) {
		t.Errorf("limits = %+v", a.Limits)
	}
	b1 := c.Accounts[1].Keys[0]
	if b1.Usable() || b1.MissingEnv != "CLAUDE_KEY_B1" {
		t.Errorf("b1 = usable %v, missing %q; want disabled by CLAUDE_KEY_B1", b1.Usable(), b1.MissingEnv)
	}
	if c.Backends.Ollama == nil || c.Backends.Ollama.Model != "llama3.1:8b-instruct-q4_K_M" {
		t.Errorf("ollama = %+v", c.Backends.Ollama)
	}
	if time.Duration(c.Gateway.ShutdownTimeout) != 15*time.Second || c.Gateway.Drain() != time.Duration(DefaultDrainDelay) {
		t.Errorf("shutdown_timeout = %v, drain_delay = %v", c.Gateway.ShutdownTimeout, c.Gateway.Drain())
	}
	// Defaults.
	if c.Gateway.MaxRequestBytes != 32<<20 || c.Log.Level != "info" || c.Log.Format != "json" {
		t.Errorf("defaults not applied: %+v %+v", c.Gateway, c.Log)
	}
}

func TestEmbeddedLocalConfig(t *testing.T) {
	c, err := Parse(local.Config, env(nil))
	if err != nil {
		t.Fatalf("embedded deploy/local/guardian.yaml: %v", err)
	}
	if c.Redis.URL != "" {
		t.Errorf("local config must be in-memory, has redis.url %q", c.Redis.URL)
	}
	if c.Clients[0].Key != "local-dev-gateway-key" {
		t.Errorf("local gateway key default = %q", c.Clients[0].Key)
	}
	if k := c.Accounts[0].Keys[0]; k.MissingEnv != "ANTHROPIC_API_KEY" {
		t.Errorf("local account key should wait for ANTHROPIC_API_KEY, got %+v", k)
	}
	c, err = Parse(local.Config, env(map[string]string{"ANTHROPIC_API_KEY": "sk-test-x", "GUARDIAN_CLIENT_KEY": "mine"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Accounts[0].Keys[0].Key != "sk-test-x" || c.Clients[0].Key != "mine" {
		t.Errorf("env not used: %+v %+v", c.Accounts[0].Keys[0], c.Clients[0])
	}
}

// TestInvalidConfigs loads each testdata file (one per mistake) and checks
// the exact message.
func TestInvalidConfigs(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"unknown_field.yaml", "config: yaml: unmarshal errors:\n  line 1: field bogus not found in type config.Listen"},
		{"empty_account_key.yaml", "config: accounts[1].keys[0].key: empty"},
		{"duplicate_key_id.yaml", `config: accounts[0].keys[1].id: "a1" is also accounts[0].keys[0].id`},
		{"duplicate_key_secret.yaml", "config: accounts[1].keys[0].key: same key as accounts[0].keys[0]"},
		{"account_without_keys.yaml", "config: accounts[0].keys: at least one key is required"},
		{"negative_limit.yaml", "config: accounts[0].limits.rpm: must not be negative"},
		{"duplicate_account.yaml", `config: accounts[1].name: "org-a" is also accounts[0].name`},
		{"bad_account_name.yaml", `config: accounts[0].name: "org a" must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`},
		{"no_clients.yaml", "config: clients: at least one client (gateway key) is required"},
		{"no_accounts.yaml", "config: accounts: at least one Anthropic account is required"},
		{"duplicate_client.yaml", `config: clients[1].name: "shop" is also clients[0].name`},
		{"duplicate_client_key.yaml", "config: clients[1].key: same key as clients[0]"},
		{"empty_client_key.yaml", "config: clients[0].key: empty"},
		{"client_key_env_unset.yaml", "config: clients[0].key: environment variable UNSET_GATEWAY_KEY is not set"},
		{"bad_listen.yaml", `config: listen.extproc: "9002" is not host:port`},
		{"bad_redis_url.yaml", "config: redis.url: redis: invalid URL scheme: http"},
		{"redis_negative_timeout.yaml", "config: redis.timeout: must be positive"},
		{"ollama_without_model.yaml", "config: backends.ollama.model: empty"},
		{"bad_log_level.yaml", `config: log.level: "verbose" is not one of debug, info, warn, error`},
		{"bad_duration.yaml", `config: line 1: "soon" is not a duration such as 30s`},
		{"negative_body_cap.yaml", "config: gateway.max_request_bytes: must be positive"},
		{"negative_drain_delay.yaml", "config: gateway.drain_delay: must not be negative"},
		{"pool_bad_output_reservation.yaml", `config: pool.output_reservation: "lots" is not max_tokens or a positive number of tokens`},
		{"pool_bad_output_counting.yaml", `config: pool.output_counting: "at_end" is not as_produced or at_start`},
		{"pool_short_lease_ttl.yaml", "config: pool.lease_ttl: must be at least 3s"},
		{"client_negative_concurrency.yaml", "config: clients[0].concurrency: must not be negative"},
		{"account_bad_class.yaml", `config: accounts[0].classes: "gpt" is not a model class (opus, sonnet, haiku)`},
		{"bad_client_priority.yaml", `config: clients[0].priority: "urgent" is not high, normal or low`},
		{"bad_policy_sample_rate.yaml", "config: policy.log_sample_rate: 2 is not between 0 and 1"},
		{"ratelimit_bad_store.yaml", `config: ratelimit.store: "etcd" is not auto, memory or redis`},
		{"ratelimit_redis_without_url.yaml", "config: ratelimit.store: redis needs redis.url"},
		{"ratelimit_bad_fallback.yaml", `config: ratelimit.fallback: "panic" is not local_share, fail_open or error`},
		{"ratelimit_bad_replicas.yaml", "config: ratelimit.replicas: must be at least 1"},
		{"ratelimit_unknown_field.yaml", "config: yaml: unmarshal errors:\n  line 3: field reload not found in type config.Ratelimit"},
		{"clients_not_a_list.yaml", "config: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!map into []config.Client"},
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) != len(tests)+1 { // + valid.yaml
		t.Errorf("testdata has %d files, the table covers %d: every invalid file needs a case", len(files), len(tests)+1)
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(data, env(nil))
			if err == nil {
				t.Fatalf("Parse accepted %s", tt.file)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestExpandString(t *testing.T) {
	lookup := env(map[string]string{"A": "x", "EMPTY": ""})
	tests := []struct {
		in, want, err string
	}{
		{"plain", "plain", ""},
		{"${A}", "x", ""},
		{"pre-${A}-post", "pre-x-post", ""},
		{"${EMPTY}", "", ""},
		{"${EMPTY:-d}", "d", ""},
		{"${MISSING:-d}", "d", ""},
		{"${MISSING:-}", "", ""},
		{"${MISSING}", "", "environment variable MISSING is not set"},
		{"$A", "$A", ""}, // only the braced form expands
	}
	for _, tt := range tests {
		got, err := expandString(tt.in, lookup)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
			t.Errorf("expandString(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Load of a missing file: %v", err)
	}
}

func TestRatelimitSection(t *testing.T) {
	base := "clients: [{name: shop, key: k1}]\naccounts: [{name: org-a, keys: [{id: a1, key: sk-a1}]}]\n"
	c, err := Parse([]byte(base), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Ratelimit
	if r.Store != "auto" || r.Fallback != "local_share" || r.Replicas != 1 || r.RedisTimeout != DefaultRatelimitRedisTimeout || !r.AnthropicErrorBodies() || c.UseRedis() {
		t.Errorf("defaults: %+v", r)
	}
	if c.Redis.Timeout != DefaultRedisTimeout {
		t.Errorf("redis.timeout default %v", c.Redis.Timeout)
	}
	c, err = Parse([]byte(base+"redis: {url: redis://127.0.0.1:6379, timeout: 250ms}\n"), env(nil))
	if err != nil || c.Redis.Timeout != Duration(250*time.Millisecond) {
		t.Errorf("redis.timeout: %v %v", err, c.Redis.Timeout)
	}
	c, err = Parse([]byte(base+"redis: {url: redis://127.0.0.1:6379}\n"), env(nil))
	if err != nil || !c.UseRedis() {
		t.Errorf("auto with redis.url: %v %v", err, c.UseRedis())
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "guardian.yaml")
	os.WriteFile(p, []byte(base+"ratelimit: {config_dir: rules, store: memory, anthropic_errors: false}\n"), 0o600)
	c, err = Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ratelimit.ConfigDir != filepath.Join(dir, "rules") || c.UseRedis() || c.Ratelimit.AnthropicErrorBodies() {
		t.Errorf("loaded: %+v", c.Ratelimit)
	}
}

func TestPolicySection(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "guardian.yaml")
	os.WriteFile(p, []byte("clients: [{name: shop, key: k1, priority: high, allow_model_rewrite: true}, {name: search, key: k2}]\n"+
		"accounts: [{name: org-a, keys: [{id: a1, key: sk-a1}]}]\npolicy: {dir: rego, log_sample_rate: 0.25}\n"), 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.Dir != filepath.Join(dir, "rego") || c.Policy.LogSampleRate != 0.25 {
		t.Errorf("policy: %+v", c.Policy)
	}
	if !c.Clients[0].AllowModelRewrite || c.Clients[0].Priority != "high" || c.Clients[1].AllowModelRewrite || c.Clients[1].Priority != "" {
		t.Errorf("clients: %+v", c.Clients)
	}
}

func TestPoolSection(t *testing.T) {
	base := "clients: [{name: shop, key: k1}]\naccounts: [{name: org-a, limits: {rpm: 50}, keys: [{id: a1, key: sk-test-a1}]}]\n"
	c, err := Parse([]byte(base), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Pool.MaxWait) != 30*time.Second || c.Pool.OutputTokens(4096) != 4096 || !c.Pool.AffinityOn() || c.Pool.OutputCounting != OutputAsProduced {
		t.Errorf("defaults: %+v", c.Pool)
	}
	c, err = Parse([]byte("pool: {max_wait: 5s, output_reservation: 1024, output_counting: at_start, affinity: false}\n"+base), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Pool.MaxWait) != 5*time.Second || c.Pool.OutputTokens(4096) != 1024 || c.Pool.OutputTokens(100) != 100 || c.Pool.AffinityOn() || c.Pool.OutputCounting != OutputAtStart {
		t.Errorf("set: %+v", c.Pool)
	}
}

func TestDrainDelay(t *testing.T) {
	base := "clients: [{name: shop, key: k1}]\naccounts: [{name: org-a, keys: [{id: a1, key: sk-a1}]}]\n"
	for _, tt := range []struct {
		yaml string
		want time.Duration
	}{
		{"", 5 * time.Second},
		{"gateway: {drain_delay: 0s}\n", 0},
		{"gateway: {drain_delay: 12s}\n", 12 * time.Second},
	} {
		c, err := Parse([]byte(base+tt.yaml), env(nil))
		if err != nil {
			t.Errorf("%q: %v", tt.yaml, err)
		} else if c.Gateway.Drain() != tt.want {
			t.Errorf("%q: drain_delay %v, want %v", tt.yaml, c.Gateway.Drain(), tt.want)
		}
	}
}
