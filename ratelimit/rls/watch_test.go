package rls

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func limitOfDomain(s *Server, domain string) uint32 {
	c := s.Config()
	if c == nil {
		return 0
	}
	m := c.Lookup(domain, desc("k", "v").Entries)
	if m.Rule == nil {
		return 0
	}
	return m.Rule.RequestsPerUnit
}

func ruleYAML(n string) []byte {
	return []byte("domain: d\ndescriptors: [{key: k, rate_limit: {unit: second, requests_per_unit: " + n + "}}]\n")
}

func startWatcher(t *testing.T, dir string) (*Server, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	s := New(Options{Metrics: m})
	w := NewWatcher(dir, s, nil, m)
	w.Debounce, w.Poll = 20*time.Millisecond, -1
	if err := w.Load(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, watching := make(chan struct{}), make(chan struct{})
	w.watching = func() { close(watching) }
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-watching
	return s, m
}

func TestReloadGoodThenBadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), ruleYAML("1"), 0o600)
	s, m := startWatcher(t, dir)
	if limitOfDomain(s, "d") != 1 {
		t.Fatal("initial config not loaded")
	}
	// An editor writing a temp file and renaming it over the original.
	tmp := filepath.Join(dir, ".a.yaml.swp")
	os.WriteFile(tmp, ruleYAML("2"), 0o600)
	os.Rename(tmp, filepath.Join(dir, "a.yaml"))
	waitFor(t, "reload to 2", func() bool { return limitOfDomain(s, "d") == 2 })

	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("domain: d\ndescriptors: [{key: k, rate_limit: {unit: fortnight}}]\n"), 0o600)
	waitFor(t, "the bad load to be counted", func() bool {
		return testutil.ToFloat64(m.configLoads.WithLabelValues("error")) >= 1
	})
	if limitOfDomain(s, "d") != 2 {
		t.Fatal("bad file replaced the last good config")
	}
	os.WriteFile(filepath.Join(dir, "a.yaml"), ruleYAML("3"), 0o600)
	// Load serves the config, then counts it: wait for both.
	waitFor(t, "reload to 3, counted", func() bool {
		return limitOfDomain(s, "d") == 3 && testutil.ToFloat64(m.configLoads.WithLabelValues("success")) >= 3
	})
	if got := testutil.ToFloat64(m.configLoads.WithLabelValues("success")); got != 3 {
		t.Errorf("successful loads = %v, want 3", got)
	}
}

// TestReloadConfigMapSwap mimics a Kubernetes ConfigMap volume: the visible
// files link through "..data", which is atomically re-pointed to a new
// timestamped directory.
func TestReloadConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	mkVersion := func(name, n string) {
		os.Mkdir(filepath.Join(dir, name), 0o700)
		os.WriteFile(filepath.Join(dir, name, "limits.yaml"), ruleYAML(n), 0o600)
	}
	mkVersion("..2026_03_02_12_00_00.1", "5")
	os.Symlink("..2026_03_02_12_00_00.1", filepath.Join(dir, "..data"))
	os.Symlink("..data/limits.yaml", filepath.Join(dir, "limits.yaml"))
	s, _ := startWatcher(t, dir)
	if limitOfDomain(s, "d") != 5 {
		t.Fatal("initial config not loaded")
	}
	mkVersion("..2026_03_02_12_05_00.2", "6")
	os.Symlink("..2026_03_02_12_05_00.2", filepath.Join(dir, "..data_tmp"))
	os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
	os.RemoveAll(filepath.Join(dir, "..2026_03_02_12_00_00.1"))
	waitFor(t, "reload after the ..data swap", func() bool { return limitOfDomain(s, "d") == 6 })
}

// TestReloadDirSymlinkSwap re-points the config directory itself (a symlink,
// as with envoyproxy/ratelimit's runtime root).
func TestReloadDirSymlinkSwap(t *testing.T) {
	root := t.TempDir()
	for n, v := range map[string]string{"v1": "7", "v2": "8"} {
		os.Mkdir(filepath.Join(root, n), 0o700)
		os.WriteFile(filepath.Join(root, n, "a.yaml"), ruleYAML(v), 0o600)
	}
	link := filepath.Join(root, "current")
	os.Symlink("v1", link)
	s, _ := startWatcher(t, link)
	if limitOfDomain(s, "d") != 7 {
		t.Fatal("initial config not loaded")
	}
	os.Symlink("v2", link+".tmp")
	os.Rename(link+".tmp", link)
	waitFor(t, "reload after the directory swap", func() bool { return limitOfDomain(s, "d") == 8 })
	// And a later edit in the new target is seen too.
	os.WriteFile(filepath.Join(root, "v2", "a.yaml"), ruleYAML("9"), 0o600)
	waitFor(t, "reload of an edit in the new target", func() bool { return limitOfDomain(s, "d") == 9 })
}

// TestReloadDirectoryRemovedAndCreatedAgain: the rules directory deleted
// and written again under the same name (its inode number may be reused)
// keeps being watched: later edits load without the poll.
func TestReloadDirectoryRemovedAndCreatedAgain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rules")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "a.yaml"), ruleYAML("1"), 0o600)
	s, _ := startWatcher(t, dir)
	for _, n := range []string{"2", "3"} {
		os.RemoveAll(dir)
		os.Mkdir(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "a.yaml"), ruleYAML(n), 0o600)
		waitFor(t, "reload to "+n+" after the directory was replaced", func() bool { return limitOfDomain(s, "d") == uint32(mustAtoi(t, n)) })
	}
	tmp := filepath.Join(dir, ".a.yaml.swp")
	os.WriteFile(tmp, ruleYAML("4"), 0o600)
	os.Rename(tmp, filepath.Join(dir, "a.yaml"))
	waitFor(t, "an in-place edit after the replacements", func() bool { return limitOfDomain(s, "d") == 4 })
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
