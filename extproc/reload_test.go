package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/claude-guardian/claude-guardian/policy"
)

// configMap writes policy versions the way the kubelet updates a mounted
// ConfigMap: the files go into a fresh "..<n>" directory, a "..data_tmp"
// symlink to it is renamed over "..data", and the top-level names are
// symlinks through "..data".
type configMap struct {
	dir string
	n   int
}

func (c *configMap) write(t *testing.T, files map[string]string) {
	t.Helper()
	c.n++
	ts := fmt.Sprintf("..2026_11_28_12_00_%02d.%d", c.n%60, c.n)
	must(t, os.Mkdir(filepath.Join(c.dir, ts), 0o755))
	for name, text := range files {
		must(t, os.WriteFile(filepath.Join(c.dir, ts, name), []byte(text), 0o644))
	}
	old, _ := os.Readlink(filepath.Join(c.dir, "..data"))
	tmp := filepath.Join(c.dir, "..data_tmp")
	must(t, os.Symlink(ts, tmp))
	must(t, os.Rename(tmp, filepath.Join(c.dir, "..data")))
	for name := range files {
		link := filepath.Join(c.dir, name)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			must(t, os.Symlink(filepath.Join("..data", name), link))
		}
	}
	if old != "" {
		must(t, os.RemoveAll(filepath.Join(c.dir, old)))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// goodVersion decides with reason v<i> and tests that it does.
func goodVersion(i int) map[string]string {
	return map[string]string{
		"route.rego": fmt.Sprintf(`package guardian.route
decision := {"backend": "claude", "model": input.request.model, "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": "v%d"}
`, i),
		"route_test.rego": fmt.Sprintf(`package guardian.route_test
import data.guardian.route
test_reason if route.decision.reason == "v%d" with input as {"request": {"model": "m"}}
`, i),
	}
}

// badVersion is broken one of three ways: a syntax error, a failing Rego
// test, or a decision undefined on the sample inputs.
func badVersion(i int) map[string]string {
	v := goodVersion(i)
	switch i % 3 {
	case 0:
		v["route.rego"] = "package guardian.route\ndecision := {\n"
	case 1:
		v["route_test.rego"] = strings.Replace(v["route_test.rego"], fmt.Sprintf(`"v%d"`, i), `"nope"`, 1)
	default:
		v["route.rego"] = fmt.Sprintf(`package guardian.route
decision := {"backend": "claude", "model": input.request.model, "priority": "normal", "action": "allow", "max_wait_ms": 0, "reason": "v%d"} if input.request.model == "never"
`, i)
		v["route_test.rego"] = "package guardian.route_test\n"
	}
	return v
}

// decideOverGRPC sends one request through the front processor (request
// headers, body, response headers) and returns the reason it reports.
func decideOverGRPC(ctx context.Context, client extprocv3.ExternalProcessorClient) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := client.Process(ctx)
	if err != nil {
		return "", err
	}
	var resp *extprocv3.ProcessingResponse
	for _, m := range []*extprocv3.ProcessingRequest{postMessages("x-api-key", shopKey), reqBody(helloBody, true), respHeaders(true, ":status", "200")} {
		if err := s.Send(m); err != nil {
			return "", err
		}
		if resp, err = s.Recv(); err != nil {
			return "", err
		}
		if resp.GetImmediateResponse() != nil {
			return "", fmt.Errorf("immediate response: %s", resp.GetImmediateResponse().Body)
		}
	}
	s.CloseSend()
	if _, err := s.Recv(); err != io.EOF {
		return "", fmt.Errorf("stream end: %v", err)
	}
	route := readMutation(resp.GetResponseHeaders().GetResponse().GetHeaderMutation()).set[HeaderRoute]
	_, reason, _ := strings.Cut(route, "reason=")
	return reason, nil
}

// TestPolicyReloadUnderLoad replaces the policy 50 times, good and bad
// versions alternating, through ConfigMap-style symlink swaps, while
// requests flow: none fails, each good version serves within 5 s, each bad
// one is rejected and the last good one keeps serving.
func TestPolicyReloadUnderLoad(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cm := &configMap{dir: t.TempDir()}
	cm.write(t, goodVersion(0))
	reg := prometheus.NewRegistry()
	engine := policy.NewEngine(nil, policy.Options{Metrics: policy.NewMetrics(reg)})
	w := policy.NewWatcher(cm.dir, engine, slog.New(slog.NewTextHandler(io.Discard, nil)), 20*time.Millisecond)
	must(t, w.Load(ctx))
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); w.Run(ctx) }()
	defer func() { cancel(); <-watchDone }()
	h := newHarness(t, harnessOpts{policy: func(*harness) *FrontPolicy {
		return &FrontPolicy{Engine: engine, State: &stateStub{s: healthyClaude()}}
	}})

	// Load: 4 clients sending requests back to back.
	var served, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				reason, err := decideOverGRPC(ctx, h.client)
				if ctx.Err() != nil {
					return
				}
				if err == nil && !strings.HasPrefix(reason, "v") {
					err = fmt.Errorf("reason %q: not a good version's", reason)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				served.Add(1)
			}
		})
	}
	reloads := func(result string) float64 {
		return counterValue(t, reg, "guardian_policy_reloads_total", "result", result)
	}

	lastGood := 0
	for i := 1; i <= 50; i++ {
		if i%2 == 1 {
			cm.write(t, goodVersion(i))
			want := fmt.Sprintf("v%d", i)
			start := time.Now()
			for {
				reason, err := decideOverGRPC(ctx, h.client)
				if err == nil && reason == want {
					break
				}
				if time.Since(start) > 5*time.Second {
					t.Fatalf("version %d not serving 5 s after the swap (reason %q, err %v)", i, reason, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			lastGood = i
			continue
		}
		before := reloads("failed")
		cm.write(t, badVersion(i))
		deadline := time.Now().Add(5 * time.Second)
		for reloads("failed") == before {
			if time.Now().After(deadline) {
				t.Fatalf("bad version %d not rejected", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if reason, err := decideOverGRPC(ctx, h.client); err != nil || reason != fmt.Sprintf("v%d", lastGood) {
			t.Fatalf("after bad version %d: reason %q, err %v; want the last good v%d", i, reason, err, lastGood)
		}
	}
	cancel()
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed during reloads, first: %v", n, firstErr.Load())
	}
	if served.Load() == 0 {
		t.Fatal("no requests flowed")
	}
	if ok, bad := reloads("ok"), reloads("failed"); ok != 26 || bad != 25 {
		t.Errorf("reloads ok=%v failed=%v, want 26 (first load included) and 25", ok, bad)
	}
	t.Logf("%d requests served during 50 replacements", served.Load())
}

func counterValue(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
