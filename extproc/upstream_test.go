package extproc

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/claude-guardian/claude-guardian/anthropic"
)

// upstreamAttempt runs one upstream-filter stream (one attempt) and returns
// the request-header mutation and the response-header mutation.
func upstreamAttempt(t *testing.T, h *harness, reqKV, respKV []string) (mutation, mutation) {
	t.Helper()
	s := h.open(t, RoleUpstream)
	kv := append([]string{":method", "POST", ":path", "/v1/messages", ":authority", "api.anthropic.com",
		"x-envoy-attempt-count", "1"}, reqKV...)
	req := readMutation(s.roundTrip(reqHeaders(false, kv...)).GetRequestHeaders().GetResponse().GetHeaderMutation())
	resp := readMutation(s.roundTrip(respHeaders(false, respKV...)).GetResponseHeaders().GetResponse().GetHeaderMutation())
	s.close()
	return req, resp
}

func TestUpstreamSetsPoolKeyAndStripsInternalHeaders(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	req, resp := upstreamAttempt(t, h,
		[]string{"authorization", "Bearer should-never-reach-anthropic", HeaderTenant, "shop", HeaderRequestID, "req_abc", HeaderBackend, "claude"},
		[]string{":status", "200", "anthropic-ratelimit-requests-limit", "50", "anthropic-ratelimit-requests-remaining", "49",
			"anthropic-ratelimit-requests-reset", "2026-11-28T12:00:01Z",
			"anthropic-ratelimit-input-tokens-limit", "30000", "anthropic-ratelimit-input-tokens-remaining", "29000",
			"anthropic-ratelimit-input-tokens-reset", "2026-11-28T12:00:02Z"})
	if req.set["x-api-key"] != poolKeyA1 {
		t.Errorf("x-api-key = %q, want the first pool key", req.set["x-api-key"])
	}
	for _, name := range []string{"authorization", HeaderTenant, HeaderBackend} {
		if !req.removes(name) {
			t.Errorf("%s must not reach Anthropic (removes %v)", name, req.remove)
		}
	}
	if req.removes(HeaderRequestID) {
		t.Error("x-guardian-request-id must survive for the next attempts")
	}
	if resp.set[HeaderAccount] != "org-a" {
		t.Errorf("account header = %q", resp.set[HeaderAccount])
	}
	r, at := h.pool.Accounts()[0].Reading()
	if at.IsZero() || r.Axis(anthropic.Requests).Remaining != 49 || r.Axis(anthropic.InputTokens).Limit != 30000 {
		t.Errorf("account reading not recorded: %+v", r)
	}
	if got := testutil.ToFloat64(h.poolMetr.RemainingGauge("org-a", "input-tokens")); got != 29000 {
		t.Errorf("remaining gauge = %v", got)
	}
}

func TestUpstream429CoolsAccountDown(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, resp := upstreamAttempt(t, h, nil, []string{":status", "429", "retry-after", "20", "content-type", "application/json"})
	if resp.set[HeaderAccount] != "org-a" {
		t.Fatalf("first attempt should use org-a, got %v", resp.set)
	}
	if until := h.pool.Accounts()[0].CoolingUntil(); !until.Equal(h.now.Add(20 * time.Second)) {
		t.Errorf("org-a cools until %v, want now+20s", until)
	}
	// The retry (a new upstream stream) goes to the other account.
	req, _ := upstreamAttempt(t, h, []string{"x-api-key", poolKeyA1}, []string{":status", "200"})
	if req.set["x-api-key"] != poolKeyB1 {
		t.Errorf("retry used %q, want org-b's key", req.set["x-api-key"])
	}
	// After the cool-down org-a is first again.
	h.now = h.now.Add(21 * time.Second)
	req, _ = upstreamAttempt(t, h, nil, []string{":status", "200"})
	if req.set["x-api-key"] != poolKeyA1 {
		t.Errorf("after the cool-down: %q, want org-a's key", req.set["x-api-key"])
	}
}

func TestUpstream401DisablesKey(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	upstreamAttempt(t, h, nil, []string{":status", "401", "content-type", "application/json"})
	k := h.pool.Key("a1")
	if k.Disabled() == "" {
		t.Fatal("key a1 should be out of service after a 401")
	}
	if got := testutil.ToFloat64(h.poolMetr.DisabledGauge("org-a", "a1")); got != 1 {
		t.Errorf("disabled gauge = %v", got)
	}
	req, _ := upstreamAttempt(t, h, nil, []string{":status", "200"})
	if req.set["x-api-key"] != poolKeyB1 {
		t.Errorf("next attempt used %q, want org-b's key", req.set["x-api-key"])
	}
	// 403 on the last key: no usable key left, and the front says so.
	upstreamAttempt(t, h, nil, []string{":status", "403"})
	if h.pool.Usable() {
		t.Fatal("pool should have no usable key")
	}
	req, _ = upstreamAttempt(t, h, nil, []string{":status", "401"})
	if _, ok := req.set["x-api-key"]; ok || !req.removes("x-api-key") {
		t.Errorf("with no key in service no credential may be sent: %+v", req)
	}
}
