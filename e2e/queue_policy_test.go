package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/claude-guardian/claude-guardian/testsupport/fakeanthropic"
)

// queueShedPolicy turns a request away once one is already waiting.
const queueShedPolicy = `package guardian.route

decision := {
	"backend": "claude", "model": input.request.model, "priority": "normal",
	"action": "reject", "status": 429, "max_wait_ms": 0, "reason": "queue-full",
	"message": sprintf("%d requests are already waiting", [input.state.queue_depth]),
} if {
	input.state.queue_depth >= 1
} else := {
	"backend": "claude", "model": input.request.model, "priority": "normal",
	"action": "queue", "max_wait_ms": 30000, "reason": "queued",
}
`

// TestPolicySeesQueueDepth: the routing policy reads the admission queue's
// depth (input.state.queue_depth), so a rule that sheds load once requests
// wait, like the bundled one at 1,000, fires. The tenant may have one
// request in flight; the first is held at Anthropic, the second waits in
// the queue, the third is turned away by the policy.
func TestPolicySeesQueueDepth(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "route.rego"), []byte(queueShedPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOpts{edit: func(y string) string {
		y = strings.Replace(y, "clients: [{name: shop, key: "+gatewayKey+"}]", "clients: [{name: shop, key: "+gatewayKey+", concurrency: 1}]", 1)
		return y + "policy: {dir: " + dir + "}\n"
	}})
	if !strings.Contains(guardianYAML, "clients: [{name: shop, key: "+gatewayKey+"}]") {
		t.Fatal("guardianYAML's clients line changed: update the edit")
	}
	s.anthropic.InjectNext(1, fakeanthropic.Fault{Kind: fakeanthropic.FaultDelayHeaders, Delay: 2 * time.Second})
	c := s.client(gatewayKey)
	ctx := context.Background()
	done := make(chan error, 2)
	go func() { _, err := c.Messages.New(ctx, hello); done <- err }() // held at Anthropic
	waitMetric(t, s, 1, `guardian_account_in_flight{account="org-a"}`, `guardian_account_in_flight{account="org-b"}`)
	go func() { _, err := c.Messages.New(ctx, hello); done <- err }() // waits for the tenant's slot
	waitMetric(t, s, 1, `guardian_queue_depth{tenant="shop"}`)

	_, err := c.Messages.New(ctx, hello)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || !strings.Contains(string(apiErr.RawJSON()), "1 requests are already waiting") {
		t.Fatalf("third request: %v, want the policy's 429", err)
	}
	for i := range 2 {
		if err := <-done; err != nil {
			t.Errorf("request %d: %v", i+1, err)
		}
	}
}
