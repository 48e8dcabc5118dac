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

// TestWatcherFollowsReplacedDirectory: the policy directory replaced whole
// (a symlink re-pointed, as git-sync does; a directory removed and created
// again) keeps being watched: later swaps and in-place edits load, without
// the poll. The watcher used to stop seeing changes after the first swap.
func TestWatcherFollowsReplacedDirectory(t *testing.T) {
	version := func(reason string) string { return strings.Replace(goodDecision, `"fixed"`, `"`+reason+`"`, 1) }
	tests := []struct {
		name    string
		replace func(t *testing.T, dir, reason string) // replaces dir whole with a version
	}{
		{"symlink re-pointed", func(t *testing.T, dir, reason string) {
			target := filepath.Join(filepath.Dir(dir), "rev-"+reason)
			must(t, os.Mkdir(target, 0o755))
			must(t, os.WriteFile(filepath.Join(target, "p.rego"), []byte(version(reason)), 0o644))
			tmp := dir + ".tmp"
			must(t, os.Symlink(target, tmp))
			must(t, os.Rename(tmp, dir))
		}},
		{"removed and created again", func(t *testing.T, dir, reason string) {
			must(t, os.RemoveAll(dir))
			must(t, os.Mkdir(dir, 0o755))
			must(t, os.WriteFile(filepath.Join(dir, "p.rego"), []byte(version(reason)), 0o644))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "policy")
			tt.replace(t, dir, "v1")
			e := NewEngine(nil, Options{Metrics: NewMetrics(prometheus.NewRegistry())})
			w := NewWatcher(dir, e, slog.New(slog.DiscardHandler), 10*time.Millisecond)
			w.Poll = -1
			must(t, w.Load(context.Background()))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); w.Run(ctx) }()
			defer func() { cancel(); <-done }()
			serving := func(reason string) func() bool {
				return func() bool {
					d, err := e.Decide(context.Background(), &Input{Request: Request{Endpoint: "messages", Model: "m"}}, "")
					return err == nil && d.Reason == reason
				}
			}
			waitFor(t, "v1", serving("v1"))
			for _, v := range []string{"v2", "v3"} {
				tt.replace(t, dir, v)
				waitFor(t, v+" after the directory was replaced", serving(v))
			}
			writeRenamed(t, dir, "p.rego", version("v4"))
			waitFor(t, "an in-place edit after the replacements", serving("v4"))
		})
	}
}
