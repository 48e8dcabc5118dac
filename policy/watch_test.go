package policy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/claude-guardian/claude-guardian/internal/logtest"
)

// writeRenamed writes name the way editors do: a temporary file, then a
// rename over the old one.
func writeRenamed(t *testing.T, dir, name, text string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".swp")
	must(t, os.WriteFile(tmp, []byte(text), 0o644))
	must(t, os.Rename(tmp, filepath.Join(dir, name)))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatcherEditorRenameAndBadVersions(t *testing.T) {
	dir := t.TempDir()
	writeRenamed(t, dir, "p.rego", goodDecision)
	var logs logtest.Buffer
	m := NewMetrics(prometheus.NewRegistry())
	e := NewEngine(nil, Options{Metrics: m})
	w := NewWatcher(dir, e, slog.New(slog.NewTextHandler(&logs, nil)), 10*time.Millisecond)
	must(t, w.Load(context.Background()))
	first := e.Current().Revision
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	writeRenamed(t, dir, "p.rego", strings.Replace(goodDecision, `"fixed"`, `"second"`, 1))
	waitFor(t, "the renamed file to load", func() bool { return e.Current().Revision != first })
	in := &Input{Request: Request{Endpoint: "messages", Model: "m"}}
	if d, err := e.Decide(context.Background(), in, ""); err != nil || d.Reason != "second" {
		t.Fatalf("decision %+v, %v", d, err)
	}
	good := e.Current().Revision

	writeRenamed(t, dir, "p.rego", "package guardian.route\ndecision := {")
	// The watcher counts the failure, then logs it: wait for both, or the
	// log can be read between the two.
	rejected := "policy reload failed: keeping the last good version"
	waitFor(t, "the bad version to be rejected, counted and logged", func() bool {
		return testutil.ToFloat64(m.reloads.WithLabelValues("failed")) == 1 && strings.Contains(logs.String(), rejected)
	})
	if e.Current().Revision != good {
		t.Fatal("a bad version replaced the good one")
	}
	if !strings.Contains(logs.String(), "serving="+good) {
		t.Errorf("log: %s", logs.String())
	}
	if n := testutil.ToFloat64(m.reloads.WithLabelValues("ok")); n != 2 {
		t.Errorf("reloads ok = %v", n)
	}
}

// TestWatcherRunLoadsChangesMadeBeforeItWatched: a version written after
// the caller's Load but before Run's watch was in place is loaded by Run,
// not left waiting for the next change.
func TestWatcherRunLoadsChangesMadeBeforeItWatched(t *testing.T) {
	dir := t.TempDir()
	writeRenamed(t, dir, "p.rego", goodDecision)
	e := NewEngine(nil, Options{Metrics: NewMetrics(prometheus.NewRegistry())})
	w := NewWatcher(dir, e, slog.New(slog.DiscardHandler), 10*time.Millisecond)
	must(t, w.Load(context.Background()))
	first := e.Current().Revision
	writeRenamed(t, dir, "p.rego", strings.Replace(goodDecision, `"fixed"`, `"second"`, 1))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the version written before Run to load", func() bool { return e.Current().Revision != first })
}
