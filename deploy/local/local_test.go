package local

import (
	"os"
	"strings"
	"testing"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"

	"github.com/claude-guardian/claude-guardian/ratelimit/rlsconfig"
)

// TestRatelimitRules loads the shipped rules, on disk and embedded, and
// checks that the descriptors envoy/envoy.yaml sends, (tenant, axis), match.
func TestRatelimitRules(t *testing.T) {
	disk, err := rlsconfig.LoadDir(RatelimitDir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := rlsconfig.ReadFS(Ratelimit(), ".")
	if err != nil {
		t.Fatal(err)
	}
	emb, err := rlsconfig.Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	if disk.Hash != emb.Hash {
		t.Error("embedded rules differ from deploy/local/ratelimit")
	}
	envoy, err := os.ReadFile("../../envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, axis := range []string{"requests", "input_tokens", "requests_per_day", "concurrent"} {
		m := disk.Lookup("claude-guardian", []*rlv3.RateLimitDescriptor_Entry{{Key: "tenant", Value: "local"}, {Key: "axis", Value: axis}})
		if m.Rule == nil {
			t.Errorf("axis %s: no rule", axis)
		}
	}
	for _, want := range []string{"domain: claude-guardian", "descriptor_key: tenant", "descriptor_key: axis, descriptor_value: requests", "descriptor_key: axis, descriptor_value: input_tokens"} {
		if !strings.Contains(string(envoy), want) {
			t.Errorf("envoy/envoy.yaml no longer has %q: update deploy/local/ratelimit", want)
		}
	}
}
