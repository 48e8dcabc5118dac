package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/claude-guardian/claude-guardian/admission"
	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/extproc"
	"github.com/claude-guardian/claude-guardian/keypool"
	"github.com/claude-guardian/claude-guardian/policy"
)

// attachPolicy loads the routing policy (policy.dir, or the bundled one),
// starts its watcher and the Ollama health checker, and connects them to
// the front processor; the policy sees the pool's headroom and the
// admission queue's depth. A policy directory that does not load at start
// is an error: there is no last good version to keep. The returned func
// stops the background work.
func attachPolicy(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, pool *keypool.Pool, queue *admission.Queue, front *extproc.Front) (func(), error) {
	plog := log.With("component", "policy")
	engine := policy.NewEngine(nil, policy.Options{Log: plog, Metrics: policy.NewMetrics(reg), LogSampleRate: cfg.Policy.LogSampleRate})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait() }
	if cfg.Policy.Dir == "" {
		v, err := policy.Compile(ctx, policy.Bundled(), "bundled")
		if err != nil {
			cancel()
			return nil, fmt.Errorf("policy: bundled policies: %w", err)
		}
		engine.Swap(v)
		plog.Info("policy loaded", "source", "bundled", "revision", v.Revision, "rego_tests", v.Tests,
			"evaluator", v.Evaluator, "evaluator_note", v.EvaluatorNote)
	} else {
		w := policy.NewWatcher(cfg.Policy.Dir, engine, plog, 0)
		if err := w.Load(ctx); err != nil {
			cancel()
			return nil, fmt.Errorf("policy.dir: %w", err)
		}
		wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				plog.Error("policy watch stopped: changes are no longer loaded", "err", err)
			}
		})
	}
	live := &policy.LiveState{Headroom: extproc.PoolHeadroom{Pool: pool}, Rates: &policy.UpstreamRates{}, QueueDepth: queue.Depth}
	fp := extproc.FrontPolicy{Engine: engine, State: live, Rates: live.Rates}
	if o := cfg.Backends.Ollama; o != nil {
		health := policy.NewOllamaHealth(o.URL, 0, plog)
		live.Ollama, live.OllamaModel, fp.Ollama = health, o.Model, health
		if o.URL != "" {
			wg.Go(func() { health.Run(ctx) })
		}
	}
	front.WithPolicy(fp)
	return stop, nil
}

const policyUsage = `Usage: guardian policy test DIR
       guardian policy eval DIR --input FILE

test  compiles the .rego files of DIR, runs their Rego tests (rules named
      test_*) with OPA's tester, then evaluates the built-in sample inputs,
      exactly as a reload does. Prints each test and "ok" or what failed.
eval  loads DIR the same way and prints the decision for the input
      document in FILE (JSON, see policy/schema/input.json).

DIR "bundled" means the policies built into guardian.
`

func policyCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	if len(args) < 2 || (args[0] != "test" && args[0] != "eval") {
		return usageError{"policy: want 'policy test DIR' or 'policy eval DIR --input FILE' (see guardian policy --help)"}
	}
	fsys, source := policy.Bundled(), "bundled"
	if args[1] != "bundled" {
		fsys, source = os.DirFS(args[1]), args[1]
	}
	if args[0] == "test" {
		if len(args) > 2 {
			return usageError{fmt.Sprintf("policy test: unexpected argument %q", args[2])}
		}
		return policyTest(ctx, fsys, source, stdout, stderr)
	}
	fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	input := fs.String("input", "", "JSON input document")
	if err := fs.Parse(args[2:]); err != nil || *input == "" || fs.NArg() > 0 {
		return usageError{"policy eval: want 'policy eval DIR --input FILE'"}
	}
	raw, err := os.ReadFile(*input)
	if err != nil {
		return fmt.Errorf("policy eval: %w", err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("policy eval: %s: %w", *input, err)
	}
	v, err := policy.Compile(ctx, fsys, source)
	if err != nil {
		return err
	}
	d, err := v.EvalInput(ctx, doc)
	if err != nil {
		return err
	}
	out := map[string]any{"backend": d.Backend, "model": d.Model, "priority": d.Priority, "action": d.Action,
		"max_wait_ms": d.MaxWaitMS, "cache": map[string]bool{"lookup": d.Cache.Lookup, "store": d.Cache.Store},
		"reason": d.Reason, "revision": d.Revision}
	if d.Action == policy.ActionReject {
		out["status"], out["message"] = d.Status, d.Message
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func policyTest(ctx context.Context, fsys iofs.FS, source string, stdout, stderr io.Writer) error {
	results, err := policy.RunTests(ctx, fsys)
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if r.Passed {
			fmt.Fprintf(stdout, "PASS %s\n", r.Name)
			continue
		}
		failed++
		fmt.Fprintf(stderr, "FAIL %s: %s\n", r.Name, r.Err)
	}
	if failed > 0 {
		return fmt.Errorf("policy test: %d of %d Rego tests failed", failed, len(results))
	}
	v, err := policy.Compile(ctx, fsys, source)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (revision %s, %d Rego tests, %d sample inputs)\n", source, v.Revision, len(results), len(policy.Samples()))
	return nil
}
