package rlsconfig

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
)

func readFile(t *testing.T, path string) File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return File{Name: filepath.Base(path), Data: b}
}

func parseOne(t *testing.T, path string) *Config {
	t.Helper()
	c, err := Parse([]File{readFile(t, path)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func entries(kv ...string) []*rlv3.RateLimitDescriptor_Entry {
	var es []*rlv3.RateLimitDescriptor_Entry
	for i := 0; i+1 < len(kv); i += 2 {
		es = append(es, &rlv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return es
}

func TestInvalidConfigs(t *testing.T) {
	tests := []struct{ file, want string }{
		{"bad_algorithm.yaml", `bad_algorithm.yaml: line 4: algorithm "sliding_log" is not token_bucket or fixed_window`},
		{"bad_bool.yaml", `bad_bool.yaml: line 4: shadow_mode must be true or false, not "sometimes"`},
		{"bad_lease_ttl.yaml", `bad_lease_ttl.yaml: line 4: lease_ttl "forever" is not a duration of at least 1ms such as 10m`},
		{"bad_requests_per_unit.yaml", `bad_requests_per_unit.yaml: line 4: requests_per_unit must be an integer from 0 to 4294967295, not "-1"`},
		{"bad_unit.yaml", `bad_unit.yaml: line 4: invalid rate limit unit 'fortnight'`},
		{"bad_yaml.yaml", `bad_yaml.yaml: error loading config file: yaml: line 2: found unexpected end of stream`},
		{"burst_below_rate.yaml", `burst_below_rate.yaml: line 4: burst 5 is below requests_per_unit 10`},
		{"burst_fixed_window.yaml", `burst_fixed_window.yaml: line 4: burst and day_reset_timezone apply to algorithm token_bucket only`},
		{"concurrency_with_unit.yaml", `concurrency_with_unit.yaml: line 4: concurrency limits take no unit or requests_per_unit`},
		{"descriptors_not_list.yaml", `descriptors_not_list.yaml: line 3: descriptors must be a list`},
		{"duplicate_key.yaml", `duplicate_key.yaml: line 5: duplicate descriptor composite key 'd.a_v'`},
		{"empty_domain.yaml", `empty_domain.yaml: config file cannot have empty domain`},
		{"empty_key.yaml", `empty_key.yaml: line 3: descriptor has empty key`},
		{"lease_ttl_without_concurrency.yaml", `lease_ttl_without_concurrency.yaml: line 4: lease_ttl applies to concurrency limits only`},
		{"misspelled_key.yaml", `misspelled_key.yaml: line 5: config error, unknown key 'ratelimit' in a descriptor`},
		{"non_map_list.yaml", `non_map_list.yaml: line 3: config error, yaml file contains list of type other than map: a`},
		{"non_string_key.yaml", `non_string_key.yaml: line 1: config error, key is not of type string: 0.25`},
		{"repeated_key.yaml", `repeated_key.yaml: line 4: key 'key' repeated in a descriptor`},
		{"replaces_empty.yaml", `replaces_empty.yaml: line 8: should not have an empty replaces entry`},
		{"replaces_self.yaml", `replaces_self.yaml: line 5: replaces should not contain name of same descriptor`},
		{"share_threshold_no_wildcard.yaml", `share_threshold_no_wildcard.yaml: line 3: share_threshold can only be used with wildcard values (containing '*'), but found key 'files_a.pdf'`},
		{"timezone_not_day.yaml", `timezone_not_day.yaml: line 4: day_reset_timezone needs unit day, not hour`},
		{"timezone_unknown.yaml", `timezone_unknown.yaml: line 4: day_reset_timezone "Mars/Olympus_Mons" is not an IANA time zone such as America/Phoenix`},
		{"unknown_limit_key.yaml", `unknown_limit_key.yaml: line 7: config error, unknown key 'per_unit' in rate_limit`},
		{"unlimited_with_unit.yaml", `unlimited_with_unit.yaml: line 4: should not specify rate limit unit when unlimited`},
	}
	all, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(all) != len(tests) {
		t.Errorf("%d files in testdata/invalid, %d cases: every file needs a case", len(all), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Parse([]File{readFile(t, filepath.Join("testdata/invalid", tt.file))})
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
}

func TestDuplicateDomainAcrossFiles(t *testing.T) {
	f := File{Name: "a.yaml", Data: []byte("domain: d\ndescriptors: [{key: a}]\n")}
	g := File{Name: "b.yaml", Data: []byte("domain: d\ndescriptors: [{key: b}]\n")}
	_, err := Parse([]File{f, g})
	if want := "b.yaml: duplicate domain 'd' in config file"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestExtensions(t *testing.T) {
	c, err := Parse([]File{{Name: "x.yaml", Data: []byte(`
domain: ext
descriptors:
  - key: tenant
    descriptors:
      - {key: axis, value: requests, rate_limit: {unit: minute, requests_per_unit: 50, burst: 60}}
      - {key: axis, value: day, rate_limit: {unit: day, requests_per_unit: 1000, day_reset_timezone: America/Phoenix}}
      - {key: axis, value: fw, rate_limit: {unit: second, requests_per_unit: 5, algorithm: fixed_window}}
      - {key: axis, value: inflight, rate_limit: {concurrency: 4, lease_ttl: 30s}}
      - {key: axis, value: inflight2, rate_limit: {concurrency: 2}}
`)}})
	if err != nil {
		t.Fatal(err)
	}
	phx, _ := time.LoadLocation("America/Phoenix")
	tests := []struct {
		value string
		check func(r *Rule) bool
	}{
		{"requests", func(r *Rule) bool { return r.Algorithm == TokenBucket && r.Burst == 60 && r.RequestsPerUnit == 50 }},
		{"day", func(r *Rule) bool {
			return r.Location.String() == phx.String() && r.Unit == rlspb.RateLimitResponse_RateLimit_DAY
		}},
		{"fw", func(r *Rule) bool { return r.Algorithm == FixedWindow }},
		{"inflight", func(r *Rule) bool {
			return r.Concurrency == 4 && r.LeaseTTL == 30*time.Second && r.Limit.RequestsPerUnit == 4
		}},
		{"inflight2", func(r *Rule) bool { return r.Concurrency == 2 && r.LeaseTTL == DefaultLeaseTTL }},
	}
	for _, tt := range tests {
		m := c.Lookup("ext", entries("tenant", "t1", "axis", tt.value))
		if m.Rule == nil || !tt.check(m.Rule) {
			t.Errorf("%s: rule %+v", tt.value, m.Rule)
		}
	}
}

func TestReadDirSkipsHiddenAndOthers(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("domain: a\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte("domain: b\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, ".hidden.yaml"), []byte("x: ["), 0o600)
	os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o700)
	c, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Domains() != 2 || !c.HasDomain("a") || !c.HasDomain("b") {
		t.Errorf("files %v", c.Files)
	}
	if _, err := LoadDir(t.TempDir()); err == nil {
		t.Error("empty dir loaded")
	}
}
