package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// tenantRules gives each tenant 34 input tokens per minute (and plenty of
// requests), in envoyproxy/ratelimit's format.
const tenantRules = `domain: claude-guardian
descriptors:
  - key: tenant
    descriptors:
      - key: axis
        value: requests
        rate_limit: {unit: minute, requests_per_unit: 1000}
      - key: axis
        value: input_tokens
        rate_limit: {unit: minute, requests_per_unit: 34}
`

// TestTenantTokenBudget: Envoy's ratelimit filter charges the front
// processor's input-token estimate to the tenant; at the end of each stream
// the estimate is corrected with the real usage (a refund here: the fake
// counts fewer tokens than the estimate). Two requests fit only because of
// the refund; past the budget the SDK gets Anthropic's 429 with
// retry-after, a rate_limit_error body and RateLimit headers.
func TestTenantTokenBudget(t *testing.T) {
	s := startStack(t, stackOpts{rules: tenantRules})
	c := s.client(gatewayKey)
	ctx := context.Background()
	// hello is estimated at 19 tokens (8 + 4 + 21 bytes / 3.3), over half
	// the budget of 34; the fake counts 12, so each request is refunded 7:
	// 34 − 19 + 7 = 22 leaves room for the second (without the refund, 15
	// would not).
	for i := range 2 {
		if _, err := c.Messages.New(ctx, hello); err != nil {
			t.Fatalf("request %d: %v (without the stream-done refund the second would not fit)", i+1, err)
		}
		// Envoy sends the stream-done correction fire and forget after the
		// stream ends: wait for it to land before the next request.
		waitStreamDone(t, s, uint64(i+1))
	}
	// A prompt whose estimate alone exceeds what is left.
	big := hello
	big.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(strings.Repeat("word ", 40)))}
	var resp *http.Response
	_, err := c.Messages.New(ctx, big, option.WithResponseInto(&resp))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want a 429", err)
	}
	if apiErr.StatusCode != 429 || apiErr.Type() != "rate_limit_error" {
		t.Fatalf("got %d %s: %s", apiErr.StatusCode, apiErr.Type(), apiErr.RawJSON())
	}
	h := apiErr.Response.Header
	if h.Get("retry-after") == "" || h.Get("x-envoy-ratelimited") != "true" || h.Get("x-ratelimit-limit") == "" {
		t.Errorf("429 headers: %v", h)
	}
	if n := len(s.anthropic.Requests()); n != 2 {
		t.Errorf("Anthropic saw %d requests, want 2: the over-budget one must stop at Envoy", n)
	}
}

// waitStreamDone waits until Envoy has finished n stream-done calls; a
// failed one (the RLS timeout in envoy.yaml is 0.1 s) fails the test, as
// its correction is lost.
func waitStreamDone(t *testing.T, s *stack, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		answered, failed := s.envoy.StreamDoneCalls()
		if failed > 0 {
			t.Fatalf("%d stream-done call(s) failed: the correction was lost", failed)
		}
		if answered >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d stream-done calls answered after 5 s", answered, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
