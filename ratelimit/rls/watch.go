package rls

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/claude-guardian/claude-guardian/internal/dirwatch"
	"github.com/claude-guardian/claude-guardian/ratelimit/rlsconfig"
)

// ConfigSetter receives each new config.
type ConfigSetter interface {
	SetConfig(*rlsconfig.Config)
}

// Watcher reloads a config directory when it changes: fsnotify events on the
// directory (editors that write and rename, Kubernetes ConfigMap volumes,
// whose "..data" link is swapped) and on its parent (the directory itself
// being a symlink that is swapped), debounced, plus a periodic check. Each
// load parses and validates every file first; only a valid set replaces
// the config in use, and an unchanged set (same names and bytes) is skipped.
// A bad file keeps the last good config, logged and counted.
type Watcher struct {
	dir    string
	target ConfigSetter
	log    *slog.Logger
	m      *Metrics
	// Debounce waits for a burst of events to settle. Default 100ms.
	Debounce time.Duration
	// Poll re-reads the directory this often even without events. Default
	// 10s; negative disables.
	Poll time.Duration

	last   [32]byte
	loaded bool
	watch  dirwatch.Dir
	// watching, if set, is called once Run has added its watches (tests).
	watching func()
}

// NewWatcher returns a watcher of dir feeding target.
func NewWatcher(dir string, target ConfigSetter, log *slog.Logger, m *Metrics) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{dir: dir, target: target, log: log, m: m, Debounce: 100 * time.Millisecond, Poll: 10 * time.Second,
		watch: dirwatch.Dir{Path: dir}}
}

// Load reads the directory once and applies it if it is valid and new. Not
// safe for concurrent use with Run.
func (w *Watcher) Load() error {
	c, err := rlsconfig.LoadDir(w.dir)
	if err != nil {
		w.m.ConfigLoaded(err)
		if w.loaded {
			w.log.Error("rate-limit config not reloaded: keeping the last good one", "dir", w.dir, "err", err)
		}
		return fmt.Errorf("rls: %w", err)
	}
	if w.loaded && c.Hash == w.last {
		return nil
	}
	w.last, w.loaded = c.Hash, true
	w.target.SetConfig(c)
	w.m.ConfigLoaded(nil)
	w.log.Info("rate-limit config loaded", "dir", w.dir, "files", len(c.Files), "domains", c.Domains())
	return nil
}

// Run watches until ctx ends. Call Load first for the initial config.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("rls: watch %s: %w", w.dir, err)
	}
	defer fw.Close()
	w.rewatch(fw)
	if err := fw.Add(filepath.Dir(filepath.Clean(w.dir))); err != nil {
		w.log.Warn("rate-limit config: cannot watch the parent directory", "err", err)
	}
	if w.watching != nil {
		w.watching()
	}
	var poll <-chan time.Time
	if w.Poll > 0 {
		t := time.NewTicker(w.Poll)
		defer t.Stop()
		poll = t.C
	}
	var settle *time.Timer
	var settled <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if settle == nil {
				settle = time.NewTimer(w.Debounce)
			} else {
				settle.Reset(w.Debounce)
			}
			settled = settle.C
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("rate-limit config watch error", "err", err)
		case <-settled:
			settled = nil
			w.rewatch(fw)
			_ = w.Load()
		case <-poll:
			w.rewatch(fw)
			_ = w.Load()
		}
	}
}

// rewatch watches the directory anew (see dirwatch.Dir.Rewatch); a
// directory that is missing for now is found by the parent's events or
// the poll.
func (w *Watcher) rewatch(fw *fsnotify.Watcher) {
	if err := w.watch.Rewatch(fw); err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.log.Warn("rate-limit config: cannot watch", "err", err)
	}
}
