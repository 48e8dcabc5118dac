package keypool

import (
	"testing"
	"time"
)

func TestAffinityTableLifetime(t *testing.T) {
	a, b := &Account{Name: "a"}, &Account{Name: "b"}
	t0 := time.Unix(1_700_000_000, 0)
	var tab affinityTable
	tab.store(1, a, t0)
	tests := []struct {
		after time.Duration
		want  *Account
	}{
		{0, a},
		{affinityEvery - time.Second, a},
		{affinityEvery, a},                 // cur is the older generation now
		{2*affinityEvery - time.Second, a}, // still
		{2 * affinityEvery, nil},           // both generations stale
		{10 * affinityEvery, nil},
	}
	for _, tt := range tests {
		if got := tab.load(1, t0.Add(tt.after)); got != tt.want {
			t.Errorf("after %v: %v, want %v", tt.after, got, tt.want)
		}
	}

	// A store after one period starts a generation; the first entry stays
	// findable in the older one, then goes with it.
	tab.store(2, b, t0.Add(affinityEvery))
	if tab.load(1, t0.Add(affinityEvery+time.Second)) != a || tab.load(2, t0.Add(affinityEvery+time.Second)) != b {
		t.Error("entries of both generations should be found")
	}
	tab.store(3, b, t0.Add(2*affinityEvery))
	if tab.load(1, t0.Add(2*affinityEvery)) != nil || tab.load(2, t0.Add(2*affinityEvery)) != b {
		t.Error("the oldest generation should be gone, the previous kept")
	}
	// Refreshing keeps a conversation: used again, it lives on.
	tab.store(2, b, t0.Add(2*affinityEvery))
	if tab.load(2, t0.Add(3*affinityEvery+time.Second)) != b {
		t.Error("a refreshed entry was dropped")
	}
	// After a long quiet spell nothing old comes back.
	tab.store(4, a, t0.Add(10*affinityEvery))
	if tab.load(2, t0.Add(10*affinityEvery)) != nil || tab.len() != 1 {
		t.Errorf("stale entries kept: %d", tab.len())
	}
}

// An entry is forgotten with its generation, 2 × affinityEvery after the
// generation began, however late the next generation started.
func TestAffinityGenerationExpires(t *testing.T) {
	a := &Account{Name: "a"}
	t0 := time.Unix(1_700_000_000, 0)
	var tab affinityTable
	tab.store(1, a, t0)
	tab.store(2, a, t0.Add(7*time.Minute)) // a new generation; 1 is in the older
	if tab.load(1, t0.Add(2*affinityEvery-time.Second)) != a {
		t.Error("dropped before 2 × affinityEvery")
	}
	if got := tab.load(1, t0.Add(2*affinityEvery)); got != nil {
		t.Error("kept past 2 × affinityEvery after its last use")
	}
	if tab.load(2, t0.Add(2*affinityEvery)) != a {
		t.Error("the newer generation was dropped")
	}
}

// One-off prompts, one per request: the table stays bounded (it kept an
// entry per request before: 200,000 entries, 23 MB, in review).
func TestAffinityTableBounded(t *testing.T) {
	a := &Account{Name: "a"}
	t0 := time.Unix(1_700_000_000, 0)
	var tab affinityTable
	for i := range 200_000 {
		tab.store(uint64(i)+1, a, t0.Add(time.Duration(i)*time.Millisecond))
		if n := tab.len(); n > 2*affinityCap {
			t.Fatalf("%d entries after %d stores", n, i+1)
		}
	}
	// The most recent conversations are still found.
	if tab.load(200_000, t0.Add(200*time.Second)) != a {
		t.Error("the latest conversation was dropped")
	}
}
