package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/claude-guardian/claude-guardian/config"
)

const testConfig = `listen: {extproc: "127.0.0.1:0", ratelimit: "", admin: "127.0.0.1:0"}
clients: [{name: shop, key: gw-test-shop}]
accounts: [{name: org-a, limits: {rpm: 50, itpm: 30000, otpm: 8000}, keys: [{id: a1, key: sk-ant-test-a1}]}]
gateway: {shutdown_timeout: 5s, drain_delay: 0s}
log: {level: debug, format: text}
`

func checkHealth(t *testing.T, addr string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, svc := range []string{"", extprocv3.ExternalProcessor_ServiceDesc.ServiceName} {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("health %q: %v", svc, err)
		}
		if resp.Status != want {
			t.Errorf("health %q = %v, want %v", svc, resp.Status, want)
		}
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// serving is Serve running in the background for a test.
type serving struct {
	Listening
	stop func()       // SIGTERM
	done <-chan error // what Serve returned
}

// startServe runs Serve for cfg, logging to out, until it is listening.
func startServe(t *testing.T, cfg *config.Config, out io.Writer) *serving {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	ready := make(chan Listening, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, slog.New(slog.NewTextHandler(out, nil)), ready) }()
	select {
	case l := <-ready:
		return &serving{Listening: l, stop: stop, done: done}
	case err := <-done:
		t.Fatalf("Serve: %v", err)
		return nil
	}
}

func TestServeAnswersHealthAndDrains(t *testing.T) {
	cfg, err := config.Parse([]byte(testConfig), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, cfg, io.Discard)
	l, stop, done := s.Listening, s.stop, s.done
	checkHealth(t, l.ExtProc, healthpb.HealthCheckResponse_SERVING)
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		if code, body := httpGet(t, "http://"+l.Admin+path); code != 200 || body != want {
			t.Errorf("%s = %d %q", path, code, body)
		}
	}
	if _, body := httpGet(t, "http://"+l.Admin+"/metrics"); !strings.Contains(body, "go_goroutines") || !strings.Contains(body, `guardian_key_disabled{account="org-a",key_id="a1"} 0`) {
		t.Errorf("/metrics lacks expected series:\n%.2000s", body)
	}

	// An open ext_proc stream holds the drain until it ends.
	conn, err := grpc.NewClient(l.ExtProc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	stop() // SIGTERM
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := httpGet(t, "http://"+l.Admin+"/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d while draining", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned while a stream was open: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
}

// servingBinary is a running bin/guardian with the addresses it logged.
type servingBinary struct {
	cmd                       *exec.Cmd
	logs                      *bytes.Buffer
	extproc, admin, ratelimit string
}

// binDir holds the guardian binary that the tests of this package build
// once (buildGuardian) and TestMain removes.
var binDir string

var buildGuardian = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "guardian")
	build := exec.Command("go", "build", "-o", bin, "github.com/claude-guardian/claude-guardian/cmd/guardian")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "guardian-cli-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(binDir)
	os.Exit(code)
}

// startBinary runs cmd/guardian (built once per test binary) with serve and
// cfg (YAML) until the test ends; it returns once the process logs that it
// is serving.
func startBinary(t *testing.T, cfg string) *servingBinary {
	t.Helper()
	bin, err := buildGuardian()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "guardian.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	serving := regexp.MustCompile(`msg=serving extproc=(\S+) admin=(\S+) ratelimit=(\S*)`)
	s := &servingBinary{cmd: cmd, logs: &bytes.Buffer{}}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		s.logs.WriteString(sc.Text() + "\n")
		if m := serving.FindStringSubmatch(sc.Text()); m != nil {
			s.extproc, s.admin, s.ratelimit = m[1], m[2], m[3]
			break
		}
	}
	if s.extproc == "" {
		t.Fatalf("no serving line in:\n%s", s.logs.String())
	}
	go io.Copy(s.logs, stderr)
	return s
}

// TestBinaryExitsZeroOnSIGTERM builds bin/guardian and runs it as users do.
func TestBinaryExitsZeroOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	s := startBinary(t, testConfig)
	checkHealth(t, s.extproc, healthpb.HealthCheckResponse_SERVING)
	if code, _ := httpGet(t, "http://"+s.admin+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("guardian did not exit within 10 s of SIGTERM")
	}
}

func TestMainUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("clients: []\n"), 0o600)
	tests := []struct {
		args       []string
		code       int
		out, errIn string
	}{
		{nil, 2, "", "Usage:"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"--help"}, 0, "guardian serve [--config FILE]", ""},
		{[]string{"help", "serve"}, 0, "x-guardian-role: upstream", ""},
		{[]string{"help", "serve"}, 0, "Rules: the files of ratelimit.config_dir", ""},
		{[]string{"serve", "--help"}, 0, "-config string", ""},
		{[]string{"serve", "--nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"serve", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"serve", "--config", bad}, 1, "", "config: clients: at least one client (gateway key) is required"},
		{[]string{"version"}, 0, "guardian dev", ""},
		{[]string{"validate", "envoy", "../../envoy/envoy.yaml"}, 0, "../../envoy/envoy.yaml: ok", ""},
		{[]string{"validate", "envoy", "../../envoy/envoy.yaml", "../../envoy/validate/testdata/missing_cluster.yaml"}, 1,
			"envoy.yaml: ok", `cluster "ollama-typo" is not defined`},
		{[]string{"validate"}, 2, "", "want 'validate envoy FILE...'"},
		{[]string{"validate", "istio", "../../envoy/istio/guardian.yaml", "../../envoy/istio/anthropic.yaml", "../../envoy/istio/envoyfilter.yaml"}, 0, "3 files: ok", ""},
		{[]string{"validate", "--help"}, 0, "Usage: guardian validate envoy FILE...", ""},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := Main(context.Background(), tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errb.String(), tt.errIn) {
			t.Errorf("Main(%q) = %d\nstdout: %s\nstderr: %s", tt.args, code, out.String(), errb.String())
		}
	}
}

// TestServeKeepsServingDuringDrainDelay: after SIGTERM, while readiness
// says 503 and load balancers take the endpoint out, a new ext_proc stream
// on a new connection is still served; once the delay is over, Serve stops.
func TestServeKeepsServingDuringDrainDelay(t *testing.T) {
	const delay = time.Second
	cfg, err := config.Parse([]byte(strings.Replace(testConfig, "drain_delay: 0s", "drain_delay: 1s", 1)), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, cfg, io.Discard)
	l, done := s.Listening, s.done
	s.stop() // SIGTERM
	start := time.Now()
	for {
		if code, _ := httpGet(t, "http://"+l.Admin+"/readyz"); code == http.StatusServiceUnavailable {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("/readyz never turned 503")
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkHealth(t, l.ExtProc, healthpb.HealthCheckResponse_NOT_SERVING)

	conn, err := grpc.NewClient(l.ExtProc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(sctx)
	if err == nil {
		err = stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}})
	}
	if err == nil {
		_, err = stream.Recv()
	}
	if err != nil {
		if elapsed := time.Since(start); elapsed >= delay {
			t.Skipf("reached the server %v after SIGTERM, past the %v delay: too loaded to tell (%v)", elapsed, delay, err)
		}
		t.Fatalf("a stream opened during the drain delay: %v", err)
	}
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if elapsed := time.Since(start); elapsed < delay {
			t.Errorf("Serve returned after %v, before the %v drain delay", elapsed, delay)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain delay")
	}
}
