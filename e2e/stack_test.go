package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/envoy/emulator"
	"github.com/claude-guardian/claude-guardian/internal/cli"
	"github.com/claude-guardian/claude-guardian/internal/testcert"
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
gateway: {shutdown_timeout: 5s}
log: {level: warn}
`

// stack is everything between an SDK and the fakes.
type stack struct {
	anthropic *fakeanthropic.Server
	ollama    *fakeollama.Server
	baseURL   string // the emulated Envoy listener
}

type stackOpts struct {
	accounts []fakeanthropic.Account
	// rules, when set, runs guardian's RLS with this rules file (domain
	// claude-guardian) instead of leaving Envoy's ratelimit filter to fail
	// open.
	rules string
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
	cert, roots := testcert.New(t, "api.anthropic.com")
	anthropicSrv := httptest.NewUnstartedServer(fa)
	anthropicSrv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	anthropicSrv.EnableHTTP2 = true
	anthropicSrv.StartTLS()
	t.Cleanup(anthropicSrv.Close)

	fo := fakeollama.New(fakeollama.Config{})
	ollamaSrv := httptest.NewServer(fo)
	t.Cleanup(ollamaSrv.Close)

	yamlText := guardianYAML
	if o.rules != "" {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(o.rules), 0o600); err != nil {
			t.Fatal(err)
		}
		yamlText = strings.Replace(yamlText, `ratelimit: ""`, `ratelimit: "127.0.0.1:0"`, 1) + "ratelimit: {config_dir: " + dir + "}\n"
	}
	cfg, err := config.Parse([]byte(yamlText), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan cli.Listening, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- cli.Serve(ctx, cfg, log, ready) }()
	var l cli.Listening
	select {
	case l = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("guardian: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("guardian did not stop")
		}
	})

	yaml, err := os.ReadFile("../envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env, err := emulator.Load(yaml, emulator.Options{
		Clusters: map[string]string{
			"anthropic":          hostPort(anthropicSrv.URL),
			"ollama":             hostPort(ollamaSrv.URL),
			"guardian_extproc":   l.ExtProc,
			"guardian_ratelimit": rlsAddr(t, l),
		},
		RootCAs: roots,
		Logger:  log,
	})
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	if err := env.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	return &stack{anthropic: fa, ollama: fo, baseURL: "http://" + env.Addr()}
}

func hostPort(url string) string {
	u, _ := http.NewRequest("GET", url, nil)
	return u.URL.Host
}

// rlsAddr is guardian's RLS, or a closed port when it does not run (Envoy's
// ratelimit filter then fails open).
func rlsAddr(t *testing.T, l cli.Listening) string {
	if l.RateLimit != "" {
		return l.RateLimit
	}
	return closedPort(t)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
