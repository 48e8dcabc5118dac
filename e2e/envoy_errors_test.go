package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
)

// toOllama routes every request to Ollama, when one is configured.
const toOllama = `package guardian.route

decision := {"backend": "ollama", "model": input.state.ollama.model, "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": "ollama"} if {
	input.state.ollama.configured
} else := {"backend": "claude", "model": input.request.model, "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": "claude"}
`

// TestEnvoyErrorReachesSDKAsAnthropicError: the policy sends the request
// to an Ollama that is down. Envoy's own reply (503, plain text "upstream
// connect error ...") reaches the SDK as Anthropic's error JSON, with a
// request id.
func TestEnvoyErrorReachesSDKAsAnthropicError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "route.rego"), []byte(toOllama), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOpts{ollamaDown: true, edit: func(y string) string {
		return y + "backends: {ollama: {model: \"llama3.1:8b\", url: \"\"}}\npolicy: {dir: " + dir + "}\n"
	}})
	_, err := s.client(gatewayKey).Messages.New(context.Background(), hello)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want an API error", err)
	}
	raw := apiErr.RawJSON()
	if apiErr.StatusCode != 503 || apiErr.Type() != "overloaded_error" || apiErr.RequestID == "" || !strings.Contains(raw, "claude-guardian: the backend could not be reached") {
		t.Fatalf("got %d %s (request id %q): %s", apiErr.StatusCode, apiErr.Type(), apiErr.RequestID, raw)
	}
}
