package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
)

// TestLargeRequestBody: a request of a few MiB (an image here) reaches
// guardian and Anthropic through the shipped envoy.yaml. At Envoy's default
// 1 MiB buffer limit, Envoy itself answered 413 text/plain "Payload Too
// Large" before guardian saw it.
func TestLargeRequestBody(t *testing.T) {
	s := startStack(t, stackOpts{})
	c := s.client(gatewayKey)
	img := strings.Repeat("AAAA", 600_000) // 2.4 MB of base64
	req := hello
	req.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(
		anthropic.NewImageBlockBase64("image/png", img),
		anthropic.NewTextBlock("What is in this image?"))}
	if _, err := c.Messages.New(context.Background(), req); err != nil {
		t.Fatalf("2.4 MB request: %v", err)
	}
	if n := len(s.anthropic.Requests()); n != 1 {
		t.Fatalf("Anthropic saw %d requests", n)
	}
}
