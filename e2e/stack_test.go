package e2e

import (
	"bufio"
	"cmp"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/envoy/emulator"
	runstack "github.com/claude-guardian/claude-guardian/internal/stack"
	"github.com/claude-guardian/claude-guardian/testsupport/fakeanthropic"
	"github.com/claude-guardian/claude-guardian/testsupport/fakeollama"
)

// Obviously fake keys.
const (
	gatewayKey = "gw-test-e2e-shop"
	poolKeyA   = "sk-ant-test-e2e-a1"
	poolKeyB   = "sk-ant-test-e2e-b1"
)

const guardianYAML = `listen: {extproc: "127.0.0.1:0", ratelimit: "", admin: "127.0.0.1:0"}
clients: [{name: shop, key: ` + gatewayKey + `}]
accounts:
  - {name: org-a, limits: {rpm: 50, itpm: 30000, otpm: 8000}, keys: [{id: a1, key: ` + poolKeyA + `}]}
  - {name: org-b, limits: {rpm: 50, itpm: 30000, otpm: 8000}, keys: [{id: b1, key: ` + poolKeyB + `}]}
gateway: {shutdown_timeout: 5s, drain_delay: 0s}
log: {level: warn}
`

// stack is everything between an SDK and the fakes.
type stack struct {
	anthropic *fakeanthropic.Server
	ollama    *fakeollama.Server
	baseURL   string // the emulated Envoy listener
	envoy     *emulator.Envoy
	admin     string // guardian's admin listener (/metrics)
}

type stackOpts struct {
	accounts []fakeanthropic.Account
	// rules, when set, runs guardian's RLS with this rules file (domain
	// claude-guardian) instead of leaving Envoy's ratelimit filter to fail
	// open.
	rules string
	// redisURL, when set, keeps the pool's state in this Redis.
	redisURL string
	// log, when set, receives the stack's log (text, level info).
	log io.Writer
	// edit, when set, rewrites guardian.yaml.
	edit func(string) string
	// ollamaDown leaves Envoy's ollama cluster on a closed port.
	ollamaDown bool
}

func startStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	if o.accounts == nil {
		o.accounts = []fakeanthropic.Account{
			{Name: "org-a", Keys: []string{poolKeyA}},
			{Name: "org-b", Keys: []string{poolKeyB}},
		}
	}
	fa, err := fakeanthropic.NewServer(fakeanthropic.Config{Accounts: o.accounts})
	if err != nil {
		t.Fatal(err)
	}
	fo := fakeollama.New(fakeollama.Config{})
	yamlText := guardianYAML
	if o.rules != "" {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(o.rules), 0o600); err != nil {
			t.Fatal(err)
		}
		yamlText = strings.Replace(yamlText, `ratelimit: ""`, `ratelimit: "127.0.0.1:0"`, 1) + "ratelimit: {config_dir: " + dir + "}\n"
	}
	if o.edit != nil {
		yamlText = o.edit(yamlText)
	}
	if o.redisURL != "" {
		yamlText += "redis: {url: \"" + o.redisURL + "\"}\n"
	}
	envoyYAML, err := os.ReadFile("../envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := runstack.Start(context.Background(), runstack.Options{
		Anthropic: fa, Ollama: ollamaHandler(fo, o.ollamaDown), GuardianYAML: []byte(yamlText), EnvoyYAML: envoyYAML,
		Log: slog.New(slog.NewTextHandler(cmp.Or(o.log, io.Discard), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return &stack{anthropic: fa, ollama: fo, baseURL: st.BaseURL, envoy: st.Envoy, admin: st.Guardian.Admin}
}

// metric reads a series, written as in /metrics (`name` or
// `name{label="value"}`), from guardian's admin listener.
func metric(t *testing.T, s *stack, series string) float64 {
	t.Helper()
	v, ok := scrape(t, s)[series]
	if !ok {
		t.Fatalf("%s not in /metrics", series)
	}
	return v
}

// waitMetric waits until the series (0 while not exported yet) sum to
// want, reading /metrics once per try.
func waitMetric(t *testing.T, s *stack, want float64, series ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, v := scrape(t, s), 0.0
		for _, name := range series {
			v += m[name]
		}
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v = %v after 5 s, want %v", series, v, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrape reads every sample of guardian's /metrics, by series.
func scrape(t *testing.T, s *stack) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		f, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		m[line[:i]] = f
	}
	return m
}

// ollamaHandler is the fake Ollama, or nil (a closed port) when it is down.
func ollamaHandler(fo *fakeollama.Server, down bool) http.Handler {
	if down {
		return nil
	}
	return fo
}
