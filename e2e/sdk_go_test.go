package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claude-guardian/claude-guardian/testsupport/fakeanthropic"
)

// client is the official Go SDK with only the base URL (and the gateway key)
// changed. SDK retries are off so that what the test sees is what Envoy and
// guardian did.
func (s *stack) client(key string) *anthropic.Client {
	c := anthropic.NewClient(
		option.WithoutEnvironmentDefaults(),
		option.WithBaseURL(s.baseURL),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
		option.WithRequestTimeout(30*time.Second),
	)
	return &c
}

var hello = anthropic.MessageNewParams{
	Model:     anthropic.ModelClaudeSonnet4_6,
	MaxTokens: 64,
	Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello from the Go SDK"))},
}

// onlyPoolKeys checks that every request the fake received carried a pool
// key in x-api-key, and never the gateway key or an internal header other
// than the opaque request id.
func onlyPoolKeys(t *testing.T, s *stack) []fakeanthropic.RecordedRequest {
	t.Helper()
	reqs := s.anthropic.Requests()
	for _, r := range reqs {
		if r.CredentialHeader != "x-api-key" || (r.Credential != poolKeyA && r.Credential != poolKeyB) {
			t.Errorf("fake got credential %q in %q, want a pool key in x-api-key", r.Credential, r.CredentialHeader)
		}
		for name, vs := range r.Header {
			// x-guardian-request-id is kept on purpose: each retry attempt
			// finds the request's reservation by it.
			if n := strings.ToLower(name); strings.HasPrefix(n, "x-guardian-") && n != "x-guardian-request-id" {
				t.Errorf("internal header %s reached Anthropic", name)
			}
			for _, v := range vs {
				if strings.Contains(v, gatewayKey) {
					t.Errorf("the gateway key reached Anthropic in %s", name)
				}
			}
		}
		if host := r.Header.Get("Host"); host != "" && host != "api.anthropic.com" {
			t.Errorf("Host = %q, want api.anthropic.com", host)
		}
	}
	return reqs
}

func TestGoSDKMessage(t *testing.T) {
	s := startStack(t, stackOpts{})
	msg, err := s.client(gatewayKey).Messages.New(context.Background(), hello)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) == 0 || msg.Content[0].Text == "" || !strings.HasPrefix(msg.ID, "msg_") {
		t.Fatalf("message = %+v", msg)
	}
	reqs := onlyPoolKeys(t, s)
	if len(reqs) != 1 {
		t.Fatalf("fake saw %d requests", len(reqs))
	}
	if int(msg.Usage.InputTokens) != reqs[0].InputTokens || int(msg.Usage.OutputTokens) != reqs[0].OutputTokens || msg.Usage.OutputTokens == 0 {
		t.Errorf("usage %+v, fake reported %d/%d", msg.Usage, reqs[0].InputTokens, reqs[0].OutputTokens)
	}
}

func TestGoSDKStreaming(t *testing.T) {
	s := startStack(t, stackOpts{})
	stream := s.client(gatewayKey).Messages.NewStreaming(context.Background(), hello)
	var acc anthropic.Message
	var text strings.Builder
	for stream.Next() {
		ev := stream.Current()
		if err := acc.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
		if d, ok := ev.AsAny().(anthropic.ContentBlockDeltaEvent); ok {
			text.WriteString(d.Delta.Text)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	reqs := onlyPoolKeys(t, s)
	if len(reqs) != 1 || !reqs[0].Completed {
		t.Fatalf("fake: %+v", reqs)
	}
	if text.Len() == 0 || acc.StopReason == "" {
		t.Errorf("stream text %q stop %q", text.String(), acc.StopReason)
	}
	if int(acc.Usage.InputTokens) != reqs[0].InputTokens || int(acc.Usage.OutputTokens) != reqs[0].OutputTokens {
		t.Errorf("usage %+v, fake reported %d/%d", acc.Usage, reqs[0].InputTokens, reqs[0].OutputTokens)
	}
}

func TestGoSDKUnknownGatewayKey(t *testing.T) {
	s := startStack(t, stackOpts{})
	_, err := s.client("gw-test-not-a-gateway-key").Messages.New(context.Background(), hello)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want *anthropic.Error", err)
	}
	if apiErr.StatusCode != 401 || apiErr.Type() != "authentication_error" || !strings.HasPrefix(apiErr.RequestID, "req_") {
		t.Errorf("got %d %s request-id %q: %s", apiErr.StatusCode, apiErr.Type(), apiErr.RequestID, apiErr.Message)
	}
	if n := len(s.anthropic.Requests()); n != 0 {
		t.Errorf("an unauthenticated request reached Anthropic (%d)", n)
	}
}

func TestGoSDKMalformedBody(t *testing.T) {
	s := startStack(t, stackOpts{})
	_, err := s.client(gatewayKey).Messages.New(context.Background(), hello,
		option.WithRequestBody("application/json", []byte(`{"model":"claude-sonnet-4-6","max_tokens":`)))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v", err)
	}
	if apiErr.StatusCode != 400 || apiErr.Type() != "invalid_request_error" ||
		apiErr.Message != "request body is not valid JSON: unexpected end of JSON input (at byte 42)" {
		t.Errorf("got %d %s %q", apiErr.StatusCode, apiErr.Type(), apiErr.Message)
	}
	if n := len(s.anthropic.Requests()); n != 0 {
		t.Errorf("a malformed request reached Anthropic (%d)", n)
	}
}

// TestGoSDKRetriedOn429: Anthropic answers the first attempt 429. The
// upstream processor moves the request's reservation to the other account
// and drops retry-after, so Envoy's retry policy retries at once (its short
// back-off) with the other account's key, and the SDK sees the success.
func TestGoSDKRetriedOn429(t *testing.T) {
	s := startStack(t, stackOpts{})
	s.anthropic.InjectNext(1, fakeanthropic.Fault{Kind: fakeanthropic.FaultRateLimited, RetryAfter: 20 * time.Second})
	msg, err := s.client(gatewayKey).Messages.New(context.Background(), hello)
	if err != nil {
		t.Fatalf("the caller saw the 429: %v", err)
	}
	if len(msg.Content) == 0 {
		t.Fatal("empty message")
	}
	reqs := onlyPoolKeys(t, s)
	if len(reqs) != 2 || reqs[0].Status != 429 || reqs[1].Status != 200 {
		t.Fatalf("fake saw %d requests: %+v", len(reqs), reqs)
	}
	if reqs[0].Credential == reqs[1].Credential {
		t.Errorf("the retry used the refused account's key %q", reqs[0].Credential)
	}
	if got := reqs[1].Header.Get("x-envoy-attempt-count"); got != "2" {
		t.Errorf("x-envoy-attempt-count on the retry = %q, want 2", got)
	}
	if wait := reqs[1].Time.Sub(reqs[0].Time); wait > 5*time.Second {
		t.Errorf("retry after %v: with another account free it must not wait for retry-after (20 s)", wait)
	}
}

// TestGoSDKRetryWaitsWhenNoAccountIsFree: both accounts answer 429; with no
// account left the upstream processor keeps retry-after and Envoy's
// rate_limited_retry_back_off waits for it before the next attempt.
func TestGoSDKRetryWaitsWhenNoAccountIsFree(t *testing.T) {
	s := startStack(t, stackOpts{})
	s.anthropic.InjectNext(2, fakeanthropic.Fault{Kind: fakeanthropic.FaultRateLimited, RetryAfter: time.Second})
	if _, err := s.client(gatewayKey).Messages.New(context.Background(), hello); err != nil {
		t.Fatalf("the caller saw the 429: %v", err)
	}
	reqs := onlyPoolKeys(t, s)
	if len(reqs) != 3 || reqs[0].Status != 429 || reqs[1].Status != 429 || reqs[2].Status != 200 {
		t.Fatalf("fake saw %d requests: %+v", len(reqs), reqs)
	}
	if reqs[0].Credential == reqs[1].Credential {
		t.Error("the first retry should have moved to the other account")
	}
	if wait := reqs[2].Time.Sub(reqs[1].Time); wait < 900*time.Millisecond {
		t.Errorf("third attempt after %v: with every account refusing, Envoy must wait retry-after (1 s)", wait)
	}
}
