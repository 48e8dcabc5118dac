package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyCommands(t *testing.T) {
	ctx := context.Background()
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(ctx, args, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("policy", "test", "../../policy/rego")
	if code != 0 || !strings.Contains(out, "PASS guardian.route_test.test_short_simple_goes_to_haiku") || !strings.Contains(out, "../../policy/rego: ok") {
		t.Fatalf("policy test: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = run("policy", "eval", "bundled", "--input", "../../policy/testdata/input.json")
	var d map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || d["backend"] != "ollama" || d["reason"] != "degraded-low-headroom" {
		t.Fatalf("policy eval: %d\n%s\n%s", code, out, errs)
	}

	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "p.rego"), []byte("package guardian.route\ndecision := {\"backend\": \"claude\"}\n"), 0o644)
	os.WriteFile(filepath.Join(bad, "p_test.rego"), []byte("package guardian.route_test\nimport data.guardian.route\ntest_no if route.decision.backend == \"ollama\"\n"), 0o644)
	code, _, errs = run("policy", "test", bad)
	if code != 1 || !strings.Contains(errs, "FAIL guardian.route_test.test_no") || !strings.Contains(errs, "1 of 1 Rego tests failed") {
		t.Fatalf("failing test: %d %s", code, errs)
	}
	if code, _, errs = run("policy", "eval", bad); code != 2 || !strings.Contains(errs, "policy eval DIR --input FILE") {
		t.Fatalf("usage: %d %s", code, errs)
	}
}
