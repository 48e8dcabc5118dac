package emulator

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// Options configures the emulator for tests.
type Options struct {
	// Clusters overrides cluster endpoints: name -> "127.0.0.1:port". A
	// cluster with a TLS transport_socket keeps TLS (SNI from the config)
	// and trusts RootCAs when set.
	Clusters map[string]string
	RootCAs  *x509.CertPool
	// Listen is the listener address; default 127.0.0.1:0 (the YAML's
	// listener port is ignored).
	Listen string
	Logger *slog.Logger
}

// Envoy is a running emulated Envoy.
type Envoy struct {
	cfg        *config
	opts       Options
	log        *slog.Logger
	stats      stats
	mu         sync.Mutex
	transports map[string]*http.Transport
	conns      map[string]*grpc.ClientConn
	ln         net.Listener
	srv        *http.Server
	wg         sync.WaitGroup
	closing    chan struct{}
	closeOnce  sync.Once
	// streamDone counts finished apply_on_stream_done calls.
	streamDone struct{ ok, failed atomic.Uint64 }
}

// Load parses and checks a bootstrap YAML. Any field or extension the
// emulator does not implement is an error naming its path.
func Load(yamlBytes []byte, o Options) (*Envoy, error) {
	bs, err := parseBootstrap(yamlBytes)
	if err != nil {
		return nil, err
	}
	cfg, err := buildConfig(bs)
	if err != nil {
		return nil, err
	}
	for name := range o.Clusters {
		if _, ok := cfg.clusters[name]; !ok {
			return nil, fmt.Errorf("emulator: Options.Clusters: unknown cluster %q", name)
		}
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Envoy{cfg: cfg, opts: o, log: log, transports: map[string]*http.Transport{},
		conns: map[string]*grpc.ClientConn{}, closing: make(chan struct{})}, nil
}

// Start opens the listener and serves in the background.
func (e *Envoy) Start() error {
	ln, err := net.Listen("tcp", e.opts.Listen)
	if err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	e.ln = ln
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serve), ReadHeaderTimeout: 10 * time.Second}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("emulator: serve", "err", err)
		}
	}()
	return nil
}

// Addr is the listener's address (host:port).
func (e *Envoy) Addr() string { return e.ln.Addr().String() }

// Close stops the listener, cancels streams and waits for every goroutine.
func (e *Envoy) Close() error {
	var err error
	e.closeOnce.Do(func() {
		close(e.closing)
		if e.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if serr := e.srv.Shutdown(ctx); serr != nil {
				err = errors.Join(err, e.srv.Close())
			}
		}
		e.wg.Wait()
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, t := range e.transports {
			t.CloseIdleConnections()
		}
		for _, c := range e.conns {
			err = errors.Join(err, c.Close())
		}
	})
	return err
}

// Stats returns Envoy-named counters, e.g.
// "http.claude_gateway.ext_proc.streams_started",
// "cluster.guardian_ratelimit.ratelimit.over_limit",
// "cluster.anthropic.upstream_rq_retry".
func (e *Envoy) Stats() map[string]uint64 { return e.stats.snapshot() }

// StreamDoneCalls counts the ratelimit filter's apply_on_stream_done calls
// that have finished, answered or failed. Envoy sends them fire and forget
// after the stream ends and keeps no stat of them: this is the emulator's
// own count, for tests that must wait for a correction to land.
func (e *Envoy) StreamDoneCalls() (answered, failed uint64) {
	return e.streamDone.ok.Load(), e.streamDone.failed.Load()
}
