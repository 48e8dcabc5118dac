package rlsconfig

import (
	"path/filepath"
	"testing"

	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
)

// TestReferenceExamples loads config files from envoyproxy/ratelimit's
// README and examples (testdata/reference/README.md says where each comes
// from) and checks the matches the README documents.
func TestReferenceExamples(t *testing.T) {
	const (
		sec  = rlspb.RateLimitResponse_RateLimit_SECOND
		min  = rlspb.RateLimitResponse_RateLimit_MINUTE
		hour = rlspb.RateLimitResponse_RateLimit_HOUR
		day  = rlspb.RateLimitResponse_RateLimit_DAY
	)
	type want struct {
		entries []string
		rpu     uint32 // 0 with unit 0: no rule
		unit    rlspb.RateLimitResponse_RateLimit_Unit
		metric  string // "" : not checked
	}
	tests := []struct {
		file   string
		domain string
		wants  []want
	}{
		{"readme_example01_1.yaml", "mongo_cps", []want{
			{[]string{"database", "users"}, 500, sec, "mongo_cps.database_users"},
			{[]string{"database", "default"}, 500, sec, ""},
			{[]string{"database", "other"}, 0, 0, ""},
		}},
		{"readme_example02_1.yaml", "messaging", []want{
			{[]string{"message_type", "marketing", "to_number", "2061111111"}, 5, day, "messaging.message_type_marketing.to_number"},
			{[]string{"message_type", "marketing", "to_number", "2062222222"}, 5, day, ""},
			{[]string{"to_number", "2061111111"}, 100, day, "messaging.to_number"},
			{[]string{"message_type", "marketing"}, 0, 0, ""},
		}},
		{"readme_example03_1.yaml", "edge_proxy_per_ip", []want{
			{[]string{"remote_address", "50.0.0.1"}, 10, sec, "edge_proxy_per_ip.remote_address"},
			{[]string{"remote_address", "50.0.0.5"}, 0, sec, "edge_proxy_per_ip.remote_address_50.0.0.5"},
		}},
		{"readme_example04_1.yaml", "example4", []want{
			{[]string{"key", "value", "subkey", "subvalue"}, 0, 0, ""},
			{[]string{"key", "value"}, 300, sec, ""},
		}},
		{"readme_example04_2.yaml", "example4", []want{
			{[]string{"key", "value", "subkey", "subvalue"}, 300, sec, "example4.key_value.subkey"},
		}},
		{"readme_example06_1.yaml", "example6", []want{
			{[]string{"service", "auth-service", "user", "user-a"}, 10, sec, ""},
			{[]string{"service", "auth-service", "user", "user-b"}, 20, sec, ""},
		}},
		{"readme_example07_1.yaml", "example7", []want{
			{[]string{"key_1", "value_1", "user", "bkthomps"}, 5, sec, ""},
			{[]string{"key_2", "value_2", "user", "bkthomps"}, 10, sec, ""},
		}},
		{"readme_example08_1.yaml", "example8", []want{
			{[]string{"key1", "unspecified_value"}, 10, min, "example8.key1_unspecified_value"},
			{[]string{"key1", "unspecified_value2"}, 10, min, "example8.key1_unspecified_value2"},
			{[]string{"key1", "value1"}, 20, min, "example8.key1_value1"},
		}},
		{"readme_example09_1.yaml", "example9", []want{
			{[]string{"key1", "value1"}, 20, min, "example9.key1_value*"},
			{[]string{"key1", "valueXYZ"}, 20, min, ""},
			{[]string{"key1", "other"}, 0, 0, ""},
		}},
		{"readme_example09_2.yaml", "example9", []want{
			{[]string{"path", "/api/123/action"}, 20, min, ""},
			{[]string{"path", "/api/user-id/action"}, 20, min, ""},
			{[]string{"path", "/api/123/other"}, 0, 0, ""},
		}},
		{"readme_example09_3.yaml", "example9", []want{
			{[]string{"route", "/api/v1/resource/123/action"}, 20, min, ""},
			{[]string{"route", "/api/v2/resource/456/other"}, 0, 0, ""},
		}},
		{"readme_example10_1.yaml", "example10", []want{
			{[]string{"route", "api", "http_method", "GET", "subject_id", "123"}, 60, min, "example10.route_api.http_method_GET.subject_id"},
			{[]string{"route", "web", "http_method", "POST", "subject_id", "456"}, 60, min, "example10.route_web.http_method_POST.subject_id"},
		}},
		{"readme_example10_2.yaml", "example10_wildcard", []want{
			{[]string{"user", "alice", "action", "readfile", "resource", "documents"}, 100, min, "example10_wildcard.user_alice.action_readfile.resource"},
		}},
		{"readme_example11_1.yaml", "example11", []want{
			{[]string{"files", "files/a.pdf"}, 10, hour, "example11.files_files/*"},
			{[]string{"files_no_share", "files_no_share/a.pdf"}, 10, hour, "example11.files_no_share_files_no_share/*"},
		}},
		// The README shows "route_api.method_GET"; the reference code (and
		// its config_test "share_threshold takes priority over
		// value_to_metric") gives the pattern with '*' and no method value.
		{"readme_example11_2.yaml", "example11_metrics", []want{
			{[]string{"route", "api/v1", "method", "GET"}, 60, min, "example11_metrics.route_api/*.method"},
		}},
		{"examples_config_config.yaml", "mongo_cps", []want{{[]string{"database", "users"}, 500, sec, ""}}},
		{"examples_config_example.yaml", "rl", []want{
			{[]string{"category", "account"}, 4, min, ""},
			{[]string{"source_cluster", "proxy", "destination_cluster", "mock"}, 1, min, ""},
			{[]string{"foo", "x"}, 2, min, "rl.foo"},
			{[]string{"foo", "x", "bar", "bkthomps"}, 1, min, "rl.foo.bar_bkthomps"},
			{[]string{"foo", "x", "bar", "y"}, 3, min, "rl.foo.bar"},
			{[]string{"unspec", "abc"}, 2, min, "rl.unspec_abc"},
		}},
		{"integration_basic.yaml", "basic", []want{
			{[]string{"key1", "foo"}, 50, sec, "basic.key1"},
			{[]string{"one_per_minute", "x"}, 1, min, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := parseOne(t, filepath.Join("testdata/reference", tt.file))
			for _, w := range tt.wants {
				m := c.Lookup(tt.domain, entries(w.entries...))
				if w.unit == 0 {
					if m.Rule != nil {
						t.Errorf("%v matched %s", w.entries, m.Rule.Key)
					}
					continue
				}
				if m.Rule == nil {
					t.Errorf("%v: no match", w.entries)
					continue
				}
				if m.Rule.RequestsPerUnit != w.rpu || m.Rule.Unit != w.unit {
					t.Errorf("%v: %d/%v, want %d/%v", w.entries, m.Rule.RequestsPerUnit, m.Rule.Unit, w.rpu, w.unit)
				}
				if w.metric != "" && m.MetricKey != w.metric {
					t.Errorf("%v: metric key %q, want %q", w.entries, m.MetricKey, w.metric)
				}
			}
		})
	}
}

func TestReferenceFlags(t *testing.T) {
	c := parseOne(t, "testdata/reference/readme_example05_1.yaml")
	if m := c.Lookup("internal", entries("ldap", "x")); m.Rule == nil || !m.Rule.Unlimited || m.Rule.Limit != nil {
		t.Errorf("ldap: %+v", m.Rule)
	}
	c = parseOne(t, "testdata/reference/readme_example06_1.yaml")
	if m := c.Lookup("example6", entries("service", "s", "user", "user-a")); !m.Rule.ShadowMode {
		t.Error("user-a not in shadow mode")
	}
	c = parseOne(t, "testdata/reference/readme_example07_1.yaml")
	a := c.Lookup("example7", entries("key_1", "value_1", "user", "bkthomps")).Rule
	b := c.Lookup("example7", entries("key_2", "value_2", "user", "bkthomps")).Rule
	if a.Name != "specific_limit" || len(b.Replaces) != 1 || b.Replaces[0] != "specific_limit" {
		t.Errorf("replaces: %+v %+v", a, b)
	}
	c = parseOne(t, "testdata/reference/readme_example11_1.yaml")
	if m := c.Lookup("example11", entries("files", "files/a.pdf")); len(m.Shared) != 1 || m.Shared[0] != "files/*" {
		t.Errorf("share_threshold: %+v", m)
	}
	if m := c.Lookup("example11", entries("files_no_share", "files_no_share/a.pdf")); m.Shared != nil {
		t.Errorf("no share_threshold: %+v", m)
	}
	c = parseOne(t, "testdata/reference/examples_config_example.yaml")
	if m := c.Lookup("rl", entries("service", "service_1")); !m.Rule.QuotaMode {
		t.Error("quota_mode lost")
	}
	if m := c.Lookup("nope", entries("service", "service_1")); m.Rule != nil {
		t.Error("unknown domain matched")
	}
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		{"k_foo*", "k_foo", true},
		{"k_foo*", "k_foobar", true},
		{"k_foo*", "k_fo", false},
		{"k_bar*b", "k_barab", true},
		{"k_bar*b", "k_bar", false},
		{"k_a*b*c", "k_abc", true},
		{"k_a*b*c", "k_axxbyyc", true},
		{"k_a*b*c", "k_acb", false},
		{"k_*", "k_", true},
		{"exact", "exact", true},
	}
	for _, tt := range tests {
		if got := wildcardMatch(splitStar(tt.pattern), tt.value); got != tt.want {
			t.Errorf("%q ~ %q = %v", tt.pattern, tt.value, got)
		}
	}
}
