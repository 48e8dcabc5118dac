package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTypeScriptSDK runs e2e/ts/scenario.mjs — the official TypeScript SDK
// with only baseURL changed — against the same stack. It needs node and
// `npm ci` in e2e/ts (make test does it); without them it is skipped, or
// fails when GUARDIAN_REQUIRE_NODE is set (as in CI).
func TestTypeScriptSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	sdk := filepath.Join("ts", "node_modules", "@anthropic-ai", "sdk", "package.json")
	if _, statErr := os.Stat(sdk); err != nil || statErr != nil {
		if os.Getenv("GUARDIAN_REQUIRE_NODE") != "" {
			t.Fatalf("node (%v) or e2e/ts/node_modules (%v) missing: run `npm ci` in e2e/ts", err, statErr)
		}
		t.Skip("node or e2e/ts/node_modules missing: run `npm ci` in e2e/ts")
	}
	s := startStack(t, stackOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "scenario.mjs")
	cmd.Dir = "ts"
	cmd.Env = append(os.Environ(), "GUARDIAN_BASE_URL="+s.baseURL, "GUARDIAN_GATEWAY_KEY="+gatewayKey,
		"ANTHROPIC_API_KEY=", "ANTHROPIC_BASE_URL=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node scenario.mjs: %v\n%s", err, stderr.String())
	}
	var got struct {
		Message struct {
			ID, Type, Text string
			Usage          struct{ InputTokens, OutputTokens int } `json:"usage"`
		} `json:"message"`
		Stream struct {
			Text       string
			StopReason string `json:"stop_reason"`
			Usage      struct {
				InputTokens  int `json:"input_tokens"`
				OutputTokens int `json:"output_tokens"`
			} `json:"usage"`
		} `json:"stream"`
		UnknownKey struct {
			Status    int    `json:"status"`
			Type      string `json:"type"`
			Name      string `json:"name"`
			RequestID string `json:"request_id"`
		} `json:"unknown_key"`
		BadRequest struct {
			Status  int    `json:"status"`
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"bad_request"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("scenario output: %v\n%s", err, out)
	}
	if !strings.HasPrefix(got.Message.ID, "msg_") || got.Message.Text == "" {
		t.Errorf("message: %+v", got.Message)
	}
	if got.Stream.Text == "" || got.Stream.StopReason == "" || got.Stream.Usage.OutputTokens == 0 {
		t.Errorf("stream: %+v", got.Stream)
	}
	if got.UnknownKey.Status != 401 || got.UnknownKey.Type != "authentication_error" || got.UnknownKey.Name != "AuthenticationError" {
		t.Errorf("unknown key: %+v", got.UnknownKey)
	}
	if got.BadRequest.Status != 400 || got.BadRequest.Type != "invalid_request_error" || got.BadRequest.Message != "max_tokens: Field required" {
		t.Errorf("bad request: %+v", got.BadRequest)
	}
	reqs := onlyPoolKeys(t, s)
	if len(reqs) != 2 {
		t.Errorf("fake saw %d requests, want 2 (message and stream)", len(reqs))
	}
}
