// Command poolbench offers a workload above a key pool's capacity to the
// fake Anthropic API through guardian and through two baseline strategies,
// and prints what each achieved (see internal/poolsim). `make bench-pool`
// runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/claude-guardian/claude-guardian/internal/poolsim"
	"github.com/claude-guardian/claude-guardian/testsupport/fakeanthropic"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "poolbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("poolbench", flag.ContinueOnError)
	accounts := fs.Int("accounts", 8, "Anthropic accounts in the pool")
	rpm := fs.Int64("rpm", fakeanthropic.DefaultRPM, "each account's requests per minute")
	itpm := fs.Int64("itpm", fakeanthropic.DefaultITPM, "each account's input tokens per minute")
	otpm := fs.Int64("otpm", fakeanthropic.DefaultOTPM, "each account's output tokens per minute")
	duration := fs.Duration("duration", 60*time.Second, "how long load is offered")
	load := fs.Float64("load", 1.5, "offered demand ÷ pool capacity on its tightest axis")
	seed := fs.Uint64("seed", 1, "workload seed")
	strategies := fs.String("strategies", strings.Join(poolsim.Strategies, ","), "strategies to run, in order")
	envoyYAML := fs.String("envoy", "envoy/envoy.yaml", "Envoy bootstrap for the guardian strategy")
	outRes := fs.String("output-reservation", "", "guardian's pool.output_reservation (default max_tokens)")
	atStart := fs.Bool("output-at-start", false, "the fake counts output tokens from max_tokens at the start (Anthropic's mid-2025 rule) and guardian's pool.output_counting is at_start; default: both count them as produced")
	if err := fs.Parse(args); err != nil {
		return err
	}
	yaml, err := os.ReadFile(*envoyYAML)
	if err != nil {
		return err
	}
	cfg := poolsim.Config{
		Accounts: *accounts, Limits: fakeanthropic.Limits{RPM: *rpm, ITPM: *itpm, OTPM: *otpm},
		Duration: *duration, Load: *load, Seed: *seed, EnvoyYAML: yaml,
		Log:               slog.New(slog.NewTextHandler(io.Discard, nil)),
		OutputReservation: *outRes,
		OutputAtStart:     *atStart,
	}
	c := poolsim.PoolCapacity(cfg.Accounts, cfg.Limits)
	w := poolsim.NewWorkload(c, cfg.Load, cfg.Duration, cfg.Seed)
	fmt.Fprintf(out, "pool: %d accounts × %d RPM / %d ITPM / %d OTPM; offered %.0f req/min (%.1f× capacity) for %v: %d requests\n",
		cfg.Accounts, *rpm, *itpm, *otpm, w.RatePerMinute, cfg.Load, cfg.Duration, len(w.Requests))
	var results []poolsim.Result
	for _, s := range strings.Split(*strategies, ",") {
		fmt.Fprintf(out, "running %s…\n", s)
		r, err := poolsim.Run(ctx, s, cfg, w)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	fmt.Fprintf(out, "\n| strategy | offered | ok | caller 429 | other errors | upstream 429 | efficiency (in / out) | queue wait p50 / p99 ms | reservation error |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(out, "| %s | %d | %d | %d | %d | %d | %.3f (%.3f / %.3f) | %.0f / %.0f | %.3f |\n",
			r.Strategy, r.Offered, r.Succeeded, r.Caller429, r.CallerOther, r.Upstream429,
			r.Efficiency, r.InputEfficiency, r.OutputEfficiency, r.QueueWaitP50ms, r.QueueWaitP99ms, r.ReservationError)
	}
	fmt.Fprintln(out)
	enc := json.NewEncoder(out)
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}
