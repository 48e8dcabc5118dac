package poolsim

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/claude-guardian/claude-guardian/internal/stack"
	"github.com/claude-guardian/claude-guardian/testsupport/fakeanthropic"
)

// Strategies are the key-pool strategies Run knows.
var Strategies = []string{"guardian", "random-failover", "round-robin-cooldown"}

// Config is one benchmark run.
type Config struct {
	Accounts int
	Limits   fakeanthropic.Limits
	Duration time.Duration // how long load is offered
	Load     float64       // offered demand ÷ pool capacity
	Seed     uint64
	// EnvoyYAML is envoy/envoy.yaml, for the guardian strategy.
	EnvoyYAML []byte
	Log       *slog.Logger
	// OutputReservation is guardian's pool.output_reservation ("" keeps
	// the default, max_tokens).
	OutputReservation string
	// OutputAtStart makes the fake count output tokens at the start from
	// max_tokens (Anthropic's mid-2025 rule) and sets guardian's
	// pool.output_counting to match; by default both count them as
	// produced (the current rule).
	OutputAtStart bool
}

// Result is one strategy's figures.
type Result struct {
	Strategy    string `json:"strategy"`
	Offered     int    `json:"offered"`
	Succeeded   int    `json:"succeeded"`
	Caller429   int    `json:"caller_429"`
	CallerOther int    `json:"caller_other_errors"`
	Upstream429 int    `json:"upstream_429"`
	// Upstream429By counts upstream 429s by the limit they were for.
	Upstream429By    map[string]int `json:"upstream_429_by,omitempty"`
	InputEfficiency  float64        `json:"input_efficiency"`
	OutputEfficiency float64        `json:"output_efficiency"`
	Efficiency       float64        `json:"efficiency"`
	QueueWaitP50ms   float64        `json:"queue_wait_p50_ms"`
	QueueWaitP99ms   float64        `json:"queue_wait_p99_ms"`
	ReservationError float64        `json:"reservation_error"`
}

func keyOf(i int) string { return fmt.Sprintf("sk-ant-bench-%02d", i) }

// Run offers w to one strategy on a fresh fake and measures it.
func Run(ctx context.Context, strategy string, cfg Config, w Workload) (Result, error) {
	var accts []fakeanthropic.Account
	var keys []string
	for i := range cfg.Accounts {
		accts = append(accts, fakeanthropic.Account{Name: fmt.Sprintf("org-%02d", i), Keys: []string{keyOf(i)}, Limits: cfg.Limits})
		keys = append(keys, keyOf(i))
	}
	fake, err := fakeanthropic.NewServer(fakeanthropic.Config{Accounts: accts, PingEvery: -1, OTPMAtStart: cfg.OutputAtStart})
	if err != nil {
		return Result{}, err
	}
	var base, gatewayKey string
	var metricsURL string
	switch strategy {
	case "guardian":
		stop, b, admin, err := startGuardian(ctx, cfg, fake, keys)
		if err != nil {
			return Result{}, err
		}
		defer stop()
		base, gatewayKey, metricsURL = b, "gw-bench", "http://"+admin+"/metrics"
	case "random-failover", "round-robin-cooldown":
		up := httptest.NewServer(fake)
		defer up.Close()
		pick, report := randomFailover(keys)
		if strategy == "round-robin-cooldown" {
			pick, report = roundRobinCooldown(keys)
		}
		px := httptest.NewServer(&proxy{upstream: up.URL, client: up.Client(), pick: pick, report: report, keys: keys})
		defer px.Close()
		base, gatewayKey = px.URL, "unused"
	default:
		return Result{}, fmt.Errorf("poolsim: unknown strategy %q", strategy)
	}
	c := &caller{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}, url: base, key: gatewayKey, maxRetries: 2}
	outcomes := offer(ctx, c, w)
	res := measure(strategy, cfg, fake, outcomes)
	if metricsURL != "" {
		res.ReservationError = reservationError(metricsURL)
	}
	return res, nil
}

// offer sends every request at its time and waits for all to finish.
func offer(ctx context.Context, c *caller, w Workload) []Outcome {
	out := make([]Outcome, len(w.Requests))
	var wg sync.WaitGroup
	start := time.Now()
	for i, r := range w.Requests {
		if d := time.Until(start.Add(r.At)); d > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return out[:i]
			case <-time.After(d):
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = c.do(ctx, r)
		}()
	}
	wg.Wait()
	return out
}

func measure(strategy string, cfg Config, fake *fakeanthropic.Server, outcomes []Outcome) Result {
	res := Result{Strategy: strategy, Offered: len(outcomes)}
	var waits []float64
	for _, o := range outcomes {
		switch {
		case o.Status >= 200 && o.Status < 300:
			res.Succeeded++
			waits = append(waits, float64(o.QueueWait)/float64(time.Millisecond))
		case o.Status == 429:
			res.Caller429++
		default:
			res.CallerOther++
		}
	}
	// Served tokens: requests that reached the fake within the window.
	var first time.Time
	var in, outTok int64
	for _, r := range fake.Requests() {
		if first.IsZero() || r.Time.Before(first) {
			first = r.Time
		}
	}
	for _, r := range fake.Requests() {
		if r.Status == 429 {
			res.Upstream429++
			if res.Upstream429By == nil {
				res.Upstream429By = map[string]int{}
			}
			res.Upstream429By[cmp.Or(r.LimitHit, r.ErrorType)]++
		}
		if r.Status == 200 && r.Completed && r.Time.Sub(first) < cfg.Duration {
			in += int64(r.InputTokens + r.CacheCreationInputTokens)
			outTok += int64(r.OutputTokens)
		}
	}
	// A bucket starts full and refills continuously: over d an account can
	// serve limit × (1 + d/1 min).
	minutes := 1 + cfg.Duration.Minutes()
	n := float64(cfg.Accounts)
	res.InputEfficiency = float64(in) / (n * float64(cfg.Limits.ITPM) * minutes)
	res.OutputEfficiency = float64(outTok) / (n * float64(cfg.Limits.OTPM) * minutes)
	res.Efficiency = max(res.InputEfficiency, res.OutputEfficiency)
	res.QueueWaitP50ms, res.QueueWaitP99ms = percentile(waits, 0.5), percentile(waits, 0.99)
	return res
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// reservationError reads guardian's reserved and actual token counters:
// |reserved − actual| ÷ actual over input and output.
func reservationError(url string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := func(name string) float64 {
		var t float64
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, name+"{") {
				var v float64
				fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
				t += v
			}
		}
		return t
	}
	reserved, actual := sum("guardian_account_reserved_tokens_total"), sum("guardian_account_actual_tokens_total")
	if actual == 0 {
		return 0
	}
	d := reserved - actual
	if d < 0 {
		d = -d
	}
	return d / actual
}

// startGuardian runs the fake as api.anthropic.com, guardian with the
// pool's accounts, and envoy/envoy.yaml in the emulator (internal/stack).
// The RLS does not run: tenant limits are not what this measures.
func startGuardian(ctx context.Context, cfg Config, fake *fakeanthropic.Server, keys []string) (stop func(), base, admin string, err error) {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: {extproc: \"127.0.0.1:0\", ratelimit: \"\", admin: \"127.0.0.1:0\"}\nclients: [{name: bench, key: gw-bench}]\naccounts:\n")
	for i, k := range keys {
		fmt.Fprintf(&b, "  - {name: org-%02d, limits: {rpm: %d, itpm: %d, otpm: %d}, keys: [{id: k%02d, key: %s}]}\n",
			i, cfg.Limits.RPM, cfg.Limits.ITPM, cfg.Limits.OTPM, i, k)
	}
	b.WriteString("gateway: {shutdown_timeout: 5s, drain_delay: 0s}\nlog: {level: error}\n")
	counting := "as_produced"
	if cfg.OutputAtStart {
		counting = "at_start"
	}
	fmt.Fprintf(&b, "pool: {output_counting: %s", counting)
	if cfg.OutputReservation != "" {
		fmt.Fprintf(&b, ", output_reservation: %q", cfg.OutputReservation)
	}
	b.WriteString("}\n")
	st, err := stack.Start(ctx, stack.Options{Anthropic: fake, GuardianYAML: []byte(b.String()), EnvoyYAML: cfg.EnvoyYAML, Log: cfg.Log})
	if err != nil {
		return nil, "", "", err
	}
	return st.Close, st.BaseURL, st.Guardian.Admin, nil
}
