package policy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/claude-guardian/claude-guardian/internal/dirwatch"
)

// DefaultDebounce is how long a burst of file events must be quiet before
// the directory is reloaded.
const DefaultDebounce = 100 * time.Millisecond

// DefaultPoll is how often the directory is re-read without events.
const DefaultPoll = 10 * time.Second

// Watcher keeps an engine serving the newest good version of a policy
// directory. It reloads on inotify events (fsnotify) on the directory
// itself, which sees both ways files get replaced in practice: editors
// that write a temporary file and rename it over the old one, and
// Kubernetes ConfigMap volumes, which write a new "..<timestamp>"
// directory and atomically swap the "..data" symlink the files point
// through. It also follows a directory that is replaced whole: a symlink
// re-pointed to another directory (git-sync), or a directory removed and
// created again (the parent directory is watched too, and the directory
// watched anew after each event), and re-reads the directory every Poll
// whatever the events. Events are debounced; an unchanged revision is not
// reloaded.
type Watcher struct {
	dir      string
	engine   *Engine
	log      *slog.Logger
	debounce time.Duration
	// Poll re-reads the directory this often even without events
	// (DefaultPoll; negative: never).
	Poll time.Duration

	watch      dirwatch.Dir // Run's
	mu         sync.Mutex   // serialises loads
	failedRev  string       // last revision that failed, not retried until it changes
	loadedRevs []string     // for tests: revisions swapped in, in order
}

// NewWatcher returns a watcher of dir for e. debounce 0 means
// DefaultDebounce.
func NewWatcher(dir string, e *Engine, log *slog.Logger, debounce time.Duration) *Watcher {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{dir: dir, engine: e, log: log, debounce: debounce, Poll: DefaultPoll, watch: dirwatch.Dir{Path: dir}}
}

// Load compiles the directory (parse, Rego tests, sample inputs) and swaps
// it in. On failure the engine keeps its version, the failure is logged
// and counted (guardian_policy_reloads_total{result="failed"}), and the
// error returned. A revision equal to the serving one is not reloaded.
func (w *Watcher) Load(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	fsys := os.DirFS(w.dir)
	srcs, err := readSources(fsys)
	if err != nil {
		return w.failed("", err)
	}
	rev := revision(srcs)
	if cur := w.engine.Current(); cur != nil && cur.Revision == rev {
		return nil
	}
	if rev == w.failedRev {
		return fmt.Errorf("policy: revision %s already rejected", rev)
	}
	v, err := Compile(ctx, fsys, w.dir)
	if err != nil {
		return w.failed(rev, err)
	}
	w.engine.Swap(v)
	w.engine.metrics.Reload(true)
	w.failedRev = ""
	w.loadedRevs = append(w.loadedRevs, v.Revision)
	w.log.Info("policy loaded", "dir", w.dir, "revision", v.Revision, "files", v.Files, "rego_tests", v.Tests,
		"evaluator", v.Evaluator, "evaluator_note", v.EvaluatorNote)
	return nil
}

func (w *Watcher) failed(rev string, err error) error {
	w.failedRev = rev
	w.engine.metrics.Reload(false)
	kept := ""
	if cur := w.engine.Current(); cur != nil {
		kept = cur.Revision
	}
	w.log.Error("policy reload failed: keeping the last good version", "dir", w.dir, "revision", rev, "serving", kept, "err", err)
	return err
}

// Run watches the directory until ctx ends. The first Load should have
// been done (and checked) by the caller; Run loads once more after its
// watch is in place, so a change made between the two is not missed.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("policy: watch: %w", err)
	}
	defer fw.Close()
	if err := w.watch.Rewatch(fw); err != nil {
		// Being replaced right now, perhaps: the parent's events or the
		// poll will find it.
		w.log.Warn("policy watch: directory not watched yet", "err", err)
	}
	if err := fw.Add(filepath.Dir(filepath.Clean(w.dir))); err != nil {
		w.log.Warn("policy watch: cannot watch the parent directory: a directory replaced whole is seen only by the poll", "dir", w.dir, "err", err)
	}
	_ = w.Load(ctx) // an unchanged revision is skipped; failures are logged and counted
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var poll <-chan time.Time
	if w.Poll > 0 {
		t := time.NewTicker(w.Poll)
		defer t.Stop()
		poll = t.C
	}
	reload := func() {
		if err := w.watch.Rewatch(fw); err != nil {
			w.log.Warn("policy watch: directory not watched until it is back", "err", err)
		}
		_ = w.Load(ctx) // logged and counted by Load
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(w.debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("policy watch error", "dir", w.dir, "err", err)
			timer.Reset(w.debounce)
		case <-timer.C:
			reload()
		case <-poll:
			reload()
		}
	}
}
