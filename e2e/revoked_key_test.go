package e2e

import (
	"context"
	"testing"

	"github.com/claude-guardian/claude-guardian/testsupport/fakeanthropic"
)

// TestRevokedPoolKeyIsRetried: Anthropic no longer accepts org-a's key.
// The attempt that finds out is retried with another key (org-b's), so
// the caller, who never sent that key, does not get its 401; the key is
// then out of service and later requests go to org-b at once.
func TestRevokedPoolKeyIsRetried(t *testing.T) {
	s := startStack(t, stackOpts{accounts: []fakeanthropic.Account{
		{Name: "org-a", Keys: []string{"sk-ant-test-e2e-a1-rotated"}},
		{Name: "org-b", Keys: []string{poolKeyB}},
	}})
	c := s.client(gatewayKey)
	for i := range 3 {
		if _, err := c.Messages.New(context.Background(), hello); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	rejected, served := 0, 0
	for _, r := range s.anthropic.Requests() {
		switch r.Status {
		case 401:
			rejected++
		case 200:
			served++
		}
	}
	if rejected != 1 || served != 3 {
		t.Errorf("Anthropic answered 401 %d times and 200 %d times; want the revoked key tried once, then 3 served", rejected, served)
	}
	if v := metric(t, s, `guardian_key_disabled{account="org-a",key_id="a1"}`); v != 1 {
		t.Errorf("a1 disabled = %v", v)
	}
	waitMetric(t, s, 0, `guardian_account_in_flight{account="org-a"}`, `guardian_account_in_flight{account="org-b"}`)
}
