package fakeanthropic

import (
	"context"
	"errors"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// TestOfficialGoSDK checks that the official Go SDK (v2: Bearer auth,
// anthropic-version 2026-10-21) decodes the fake's answers.
func TestOfficialGoSDK(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{RPM: 3, ITPM: 1e6, OTPM: 1e6}))
	ts := start(t, s)
	client := anthropic.NewClient(option.WithAPIKey(keyA1), option.WithBaseURL(ts.URL), option.WithMaxRetries(0),
		option.WithHeader(OutputTokensHeader, "9"))
	ctx := context.Background()
	params := anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-6",
		MaxTokens: 100,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello there, world!"))},
	}

	msg, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Usage.OutputTokens != 9 || msg.StopReason != "end_turn" || len(msg.Content) != 1 || CountText(msg.Content[0].Text) != 9 {
		t.Errorf("message %+v", msg)
	}
	rec := s.Requests()[0]
	if rec.CredentialHeader != "authorization" || rec.Header.Get("anthropic-version") != Version2026 {
		t.Errorf("SDK sent %s / %s", rec.CredentialHeader, rec.Header.Get("anthropic-version"))
	}

	stream := client.Messages.NewStreaming(ctx, params)
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	if acc.Usage.OutputTokens != 9 || acc.Content[0].Text != msg.Content[0].Text || acc.StopReason != "end_turn" {
		t.Errorf("accumulated %+v", acc)
	}

	// A mid-stream error event becomes an SDK error.
	s.InjectNext(1, Fault{Kind: FaultStreamError, AfterDeltas: 1})
	stream = client.Messages.NewStreaming(ctx, params)
	for stream.Next() {
	}
	if stream.Err() == nil {
		t.Error("mid-stream error not surfaced")
	}
	stream.Close()

	// The 4th request is over the RPM limit.
	_, err = client.Messages.New(ctx, params)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.RequestID == "" {
		t.Fatalf("err = %v", err)
	}

	n, err := client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: params.Model, Messages: params.Messages})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := CountTokens(s.Requests()[len(s.Requests())-1].Body)
	if int(n.InputTokens) != want {
		t.Errorf("count_tokens %d, want %d", n.InputTokens, want)
	}
}
