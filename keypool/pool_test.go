package keypool

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/config"
)

func newTestPool(t *testing.T, now *time.Time, log *bytes.Buffer) *Pool {
	t.Helper()
	return New([]config.Account{
		{Name: "org-a", Keys: []config.Key{{ID: "a1", Key: "sk-test-a1"}, {ID: "a2", MissingEnv: "KEY_A2"}}},
		{Name: "org-b", Keys: []config.Key{{ID: "b1", Key: "sk-test-b1"}}},
	}, Options{Now: func() time.Time { return *now }, Logger: slog.New(slog.NewTextHandler(log, nil))})
}

func TestPoolMissingEnvKeyIsDisabled(t *testing.T) {
	now := time.Unix(1000, 0)
	var log bytes.Buffer
	p := newTestPool(t, &now, &log)
	if r := p.Key("a2").Disabled(); r != "environment variable KEY_A2 is not set" {
		t.Errorf("a2 disabled reason = %q", r)
	}
	if !strings.Contains(log.String(), "env=KEY_A2") || strings.Contains(log.String(), "sk-test") {
		t.Errorf("log must name the variable and never a key: %s", log.String())
	}
	if p.Pick().ID != "a1" {
		t.Error("first usable key should be a1")
	}
}

func TestPoolPickAndCoolDown(t *testing.T) {
	now := time.Unix(1000, 0)
	var log bytes.Buffer
	p := newTestPool(t, &now, &log)
	tests := []struct {
		name   string
		key    string
		status int
		hdr    [][2]string
		wantA  time.Duration // org-a cool-down from now; 0 none
		pick   string
	}{
		{"200 leaves it in service", "a1", 200, nil, 0, "a1"},
		{"429 with retry-after", "a1", 429, [][2]string{{"retry-after", "30"}}, 30 * time.Second, "b1"},
		{"shorter 429 keeps the longer cool-down", "a1", 429, [][2]string{{"retry-after", "5"}}, 30 * time.Second, "b1"},
	}
	for _, tt := range tests {
		var r anthropic.RateLimitReading
		for _, h := range tt.hdr {
			r.Observe(h[0], h[1])
		}
		p.ObserveClass(p.Key(tt.key), Sonnet, tt.status, &r)
		until := p.Accounts()[0].CoolingUntil()
		if tt.wantA == 0 && !until.IsZero() || tt.wantA != 0 && !until.Equal(now.Add(tt.wantA)) {
			t.Errorf("%s: org-a cools until %v", tt.name, until)
		}
		if got := p.Pick().ID; got != tt.pick {
			t.Errorf("%s: Pick = %s, want %s", tt.name, got, tt.pick)
		}
	}
	// 429 without retry-after: until the latest reset of an exhausted axis.
	var r anthropic.RateLimitReading
	r.Observe("anthropic-ratelimit-input-tokens-remaining", "0")
	r.Observe("anthropic-ratelimit-input-tokens-reset", now.Add(12*time.Second).UTC().Format(time.RFC3339))
	p.ObserveClass(p.Key("b1"), Sonnet, 429, &r)
	if until := p.Accounts()[1].CoolingUntil(); !until.Equal(now.Add(12 * time.Second)) {
		t.Errorf("org-b cools until %v, want now+12s", until)
	}
	// Both cool down: the one that ends first.
	if got := p.Pick().ID; got != "b1" {
		t.Errorf("both cooling: Pick = %s, want b1 (ends first)", got)
	}
	now = now.Add(31 * time.Second)
	if got := p.Pick().ID; got != "a1" {
		t.Errorf("after cool-downs: Pick = %s", got)
	}
}

func TestPoolDisableOnAuthErrors(t *testing.T) {
	now := time.Unix(1000, 0)
	var log bytes.Buffer
	p := newTestPool(t, &now, &log)
	var r anthropic.RateLimitReading
	p.ObserveClass(p.Key("a1"), Sonnet, 403, &r)
	p.ObserveClass(p.Key("a1"), Sonnet, 401, &r) // logged once
	if p.Key("a1").Disabled() == "" || strings.Count(log.String(), "key_id=a1") != 1 {
		t.Errorf("a1 should be disabled and logged once: %s", log.String())
	}
	p.ObserveClass(p.Key("b1"), Sonnet, 401, &r)
	if p.Usable() || p.Pick() != nil {
		t.Error("no key should be usable")
	}
	if strings.Contains(log.String(), "sk-test") {
		t.Error("a key leaked into the log")
	}
}

// A rejected key is out for a minute, then on trial: rejected again, out
// for twice as long; accepted, back in service for good. An answer to an
// attempt sent before the rejection does not put it back.
func TestRejectedKeyBackOnTrial(t *testing.T) {
	now := time.Unix(1000, 0)
	var log bytes.Buffer
	p := newTestPool(t, &now, &log)
	k := p.Key("a1")
	var r anthropic.RateLimitReading
	gauge := func() float64 { return testutil.ToFloat64(p.metrics.keyDisabled.WithLabelValues("org-a", "a1")) }

	p.ObserveClass(k, Sonnet, 401, &r)
	p.ObserveClass(k, Sonnet, 200, &r) // sent before the rejection
	steps := []struct {
		after time.Duration
		out   bool
	}{
		{59 * time.Second, true},
		{time.Second, false}, // 1 min: on trial
	}
	for _, s := range steps {
		now = now.Add(s.after)
		if got := k.Disabled() != ""; got != s.out {
			t.Fatalf("at +%v: out of service %v, want %v", now.Sub(time.Unix(1000, 0)), got, s.out)
		}
	}
	// A late answer to an attempt sent before the trial began says nothing
	// of the key now: the rejection that follows doubles the period.
	p.ObserveSent(k, Sonnet, 200, &r, time.Unix(1000, 0))
	p.ObserveClass(k, Sonnet, 401, &r) // rejected on trial: 2 min
	now = now.Add(119 * time.Second)
	if k.Disabled() == "" || gauge() != 1 {
		t.Fatal("back before twice the period")
	}
	now = now.Add(time.Second)
	if k.Disabled() != "" || p.Pick() == nil {
		t.Fatal("not on trial after 2 min")
	}
	p.ObserveClass(k, Sonnet, 200, &r) // accepted on trial
	if k.Disabled() != "" || gauge() != 0 || !strings.Contains(log.String(), "back in service") {
		t.Fatalf("not back in service: %q, gauge %v\n%s", k.Disabled(), gauge(), log.String())
	}
	p.ObserveClass(k, Sonnet, 401, &r) // a new rejection starts again at 1 min
	now = now.Add(time.Minute)
	if k.Disabled() != "" {
		t.Error("the period did not start over after the key served")
	}
}
