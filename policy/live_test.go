package policy

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/testsupport/fakeollama"
)

func TestOllamaHealth(t *testing.T) {
	srv := httptest.NewServer(fakeollama.New(fakeollama.Config{}))
	h := NewOllamaHealth(srv.URL, time.Hour, nil)
	if h.Healthy() {
		t.Fatal("healthy before the first check")
	}
	if err := h.Check(context.Background()); err != nil || !h.Healthy() {
		t.Fatalf("fake Ollama: %v", err)
	}
	h.ReportFailure()
	if h.Healthy() {
		t.Fatal("a reported failure must mark Ollama unhealthy")
	}
	must(t, h.Check(context.Background()))
	srv.Close()
	if err := h.Check(context.Background()); err == nil || h.Healthy() {
		t.Fatalf("closed server: %v, healthy %v", err, h.Healthy())
	}
}

type fixedHeadroom struct {
	h    float64
	cool time.Duration
}

func (f fixedHeadroom) Headroom(string, time.Time) (float64, time.Duration) { return f.h, f.cool }

type fixedHealth bool

func (f fixedHealth) Healthy() bool { return bool(f) }

func TestLiveState(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	rates := &UpstreamRates{}
	for i := range 10 {
		status := 200
		if i%2 == 0 {
			status = 529
		}
		rates.Observe("claude-haiku-4-5", status, now)
	}
	rates.Observe("claude-sonnet-4-6", 429, now) // one sample: not a rate yet
	l := &LiveState{Headroom: fixedHeadroom{0.123, 1500 * time.Millisecond}, Rates: rates, Ollama: fixedHealth(true),
		OllamaModel: "llama", QueueDepth: func() int { return 7 }, Now: func() time.Time { return now }}
	s := l.PolicyState()
	want := ClassState{Headroom: 0.12, CoolingDown: true, CooldownMS: 1500, ErrorRate: 0.5}
	if s.Classes[0] != want {
		t.Errorf("haiku = %+v, want %+v", s.Classes[0], want)
	}
	if s.Classes[1].RateLimitedRate != 0 {
		t.Errorf("one 429 is not a rate: %+v", s.Classes[1])
	}
	if s.QueueDepth != 7 || s.Ollama != (Ollama{Configured: true, Healthy: true, Model: "llama"}) {
		t.Errorf("state = %+v", s)
	}
	// Failures fade: four time constants later the counts are ~2 % of
	// what they were, under the sample minimum.
	later := now.Add(4 * Tau)
	l.Now = func() time.Time { return later }
	if s := l.PolicyState(); s.Classes[0].ErrorRate != 0 {
		t.Errorf("error rate after 4 tau = %v", s.Classes[0].ErrorRate)
	}
	if s := (&LiveState{}).PolicyState(); s.Classes[2].Headroom != 1 || s.Ollama.Configured {
		t.Errorf("empty live state = %+v", s)
	}
}
