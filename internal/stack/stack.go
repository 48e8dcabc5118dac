// Package stack runs claude-guardian the way users run it, on one machine:
// an upstream standing in for api.anthropic.com over TLS (SNI and SAN
// checks included), guardian's servers, and a given Envoy bootstrap in the
// Envoy emulator in front of them. The end-to-end tests and the pool
// benchmark use it.
package stack

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/envoy/emulator"
	"github.com/claude-guardian/claude-guardian/internal/cli"
	"github.com/claude-guardian/claude-guardian/internal/testcert"
)

// Options describe a stack.
type Options struct {
	// Anthropic serves api.anthropic.com (over TLS).
	Anthropic http.Handler
	// Ollama serves the ollama cluster; nil leaves it on a closed port.
	Ollama http.Handler
	// GuardianYAML is guardian.yaml; ${NAME} expands from the environment.
	// Its listen addresses should be 127.0.0.1:0 (or "" for the RLS, which
	// leaves Envoy's ratelimit filter to fail open).
	GuardianYAML []byte
	// EnvoyYAML is the bootstrap the emulator runs (envoy/envoy.yaml).
	EnvoyYAML []byte
	Log       *slog.Logger
}

// Stack is a running stack.
type Stack struct {
	// BaseURL is the emulated Envoy listener, where SDKs point.
	BaseURL string
	// Guardian are guardian's bound addresses.
	Guardian cli.Listening
	// Envoy is the emulator serving BaseURL.
	Envoy   *emulator.Envoy
	closers []func()
}

// Start runs a stack until Close.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	s := &Stack{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	cert, roots, err := testcert.Make("api.anthropic.com")
	if err != nil {
		return nil, err
	}
	anthropic := httptest.NewUnstartedServer(o.Anthropic)
	anthropic.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	anthropic.EnableHTTP2 = true
	anthropic.StartTLS()
	s.closers = append(s.closers, anthropic.Close)
	ollama := closedPort()
	if o.Ollama != nil {
		srv := httptest.NewServer(o.Ollama)
		s.closers = append(s.closers, srv.Close)
		ollama = strings.TrimPrefix(srv.URL, "http://")
	}

	cfg, err := config.Parse(o.GuardianYAML, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	gctx, cancel := context.WithCancel(ctx)
	ready := make(chan cli.Listening, 1)
	done := make(chan error, 1)
	go func() { done <- cli.Serve(gctx, cfg, o.Log, ready) }()
	select {
	case s.Guardian = <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("guardian: %w", err)
	}
	s.closers = append(s.closers, func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			o.Log.Error("guardian did not stop within 10 s")
		}
	})

	rls := s.Guardian.RateLimit
	if rls == "" {
		rls = closedPort()
	}
	env, err := emulator.Load(o.EnvoyYAML, emulator.Options{
		Clusters: map[string]string{
			"anthropic":          strings.TrimPrefix(anthropic.URL, "https://"),
			"ollama":             ollama,
			"guardian_extproc":   s.Guardian.ExtProc,
			"guardian_ratelimit": rls,
		},
		RootCAs: roots,
		Logger:  o.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	if err := env.Start(); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	s.closers = append(s.closers, func() { env.Close() })
	s.BaseURL, s.Envoy = "http://"+env.Addr(), env
	return s, nil
}

// Close stops everything, the emulator first.
func (s *Stack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// closedPort returns a loopback address nothing listens on.
func closedPort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:1"
	}
	defer l.Close()
	return l.Addr().String()
}
