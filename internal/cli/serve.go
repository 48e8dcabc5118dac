package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/claude-guardian/claude-guardian/admission"
	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/deploy/local"
	"github.com/claude-guardian/claude-guardian/extproc"
	"github.com/claude-guardian/claude-guardian/keypool"
)

const serveUsage = `Usage: guardian serve [--config FILE]

Runs, in one process:
  ext_proc gRPC server   listen.extproc   (default 127.0.0.1:9002)
      envoy.service.ext_proc.v3.ExternalProcessor for Envoy's ext_proc
      filters. The downstream filter is the front processor; the upstream
      filter of the anthropic cluster sends gRPC initial metadata
      "x-guardian-role: upstream" and gets the upstream processor.
  rate-limit gRPC server listen.ratelimit (empty: not opened)
      envoy.service.ratelimit.v3.RateLimitService for Envoy's ratelimit
      filter. Rules: the files of ratelimit.config_dir in envoyproxy/
      ratelimit's YAML format (token buckets by default), reloaded on
      change; a bad file keeps the last good rules. State in memory, or in
      Redis when redis.url is set, with ratelimit.fallback (default
      local_share) while Redis is unreachable.
  admin HTTP server      listen.admin     (default 127.0.0.1:8080)
      /metrics (Prometheus), /healthz (process up), /readyz (serving).
Both gRPC servers also serve grpc.health.v1.Health.

SIGTERM or Ctrl-C drains: readiness and gRPC health turn NOT_SERVING, new
streams are still served for gateway.drain_delay (default 5s), open streams
finish (up to gateway.shutdown_timeout), then guardian exits 0.

Flags:
`

// serveCommand parses the serve flags, loads the config and serves until ctx
// ends.
func serveCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by Main
	configPath := fs.String("config", "", "guardian.yaml to load (default: the embedded deploy/local/guardian.yaml)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, serveUsage)
			fs.PrintDefaults()
			return err
		}
		return usageError{"serve: " + err.Error() + " (see guardian serve --help)"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve: unexpected argument %q", fs.Arg(0))}
	}
	var cfg *config.Config
	var err error
	if *configPath == "" {
		cfg, err = config.Parse(local.Config, os.LookupEnv)
	} else {
		cfg, err = config.Load(*configPath)
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	source := *configPath
	if source == "" {
		source = "embedded deploy/local/guardian.yaml"
	}
	log.Info("config loaded", "source", source, "clients", len(cfg.Clients), "accounts", len(cfg.Accounts))
	setGC(log)
	return Serve(ctx, cfg, log, nil)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// Listening reports the addresses a serving process actually bound (useful
// when the config asks for port 0).
type Listening struct {
	ExtProc, Admin string
	// RateLimit is empty when listen.ratelimit is.
	RateLimit string
}

// Serve runs the servers for cfg until ctx ends, then drains and returns
// nil. ready, when not nil, receives the bound addresses once serving.
func Serve(ctx context.Context, cfg *config.Config, log *slog.Logger, ready chan<- Listening) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	state, err := newPoolState(cfg, log, reg)
	if err != nil {
		return err
	}
	defer state.close()
	pool := keypool.New(cfg.Accounts, keypool.Options{Logger: log, Metrics: keypool.NewMetrics(reg),
		Engine: state.engine, Leases: state.engine, LeaseTTL: time.Duration(cfg.Pool.LeaseTTL),
		OutputAtStart: cfg.Pool.OutputCounting == config.OutputAtStart})
	if !pool.Usable() {
		log.Warn("no pool key is usable: requests will get 503 until a key is configured")
	}
	m := extproc.NewMetrics(reg)
	front := extproc.NewFront(extproc.FrontConfig{
		MaxRequestBytes:      cfg.Gateway.MaxRequestBytes,
		MaxResponseScanBytes: cfg.Gateway.MaxResponseScanBytes,
	}, extproc.NewTenants(cfg.Clients), pool, log, m)
	queue := admission.New(pool, admission.NewMetrics(reg))
	front.WithAdmission(extproc.FrontAdmission{
		Queue:        queue,
		Pool:         pool,
		Tickets:      state.tickets,
		MaxWait:      time.Duration(cfg.Pool.MaxWait),
		OutputTokens: cfg.Pool.OutputTokens,
		Affinity:     cfg.Pool.AffinityOn(),
	})
	stopPolicy, err := attachPolicy(ctx, cfg, log, reg, pool, queue, front)
	if err != nil {
		return err
	}
	defer stopPolicy()
	epServer := extproc.NewServer(front, extproc.NewUpstream(pool, log).WithTickets(state.tickets), log, m)

	epLis, err := net.Listen("tcp", cfg.Listen.ExtProc)
	if err != nil {
		return fmt.Errorf("listen.extproc: %w", err)
	}
	adminLis, err := net.Listen("tcp", cfg.Listen.Admin)
	if err != nil {
		epLis.Close()
		return fmt.Errorf("listen.admin: %w", err)
	}
	var rl *rlsRuntime
	if cfg.Listen.RateLimit != "" {
		if rl, err = startRLS(ctx, cfg, log, reg); err != nil {
			epLis.Close()
			adminLis.Close()
			return err
		}
		defer rl.close()
	}

	grpcServer := grpc.NewServer(
		// A BUFFERED request body arrives in one message: allow the
		// configured body cap plus room for headers.
		grpc.MaxRecvMsgSize(int(cfg.Gateway.MaxRequestBytes)+1<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	extprocv3.RegisterExternalProcessorServer(grpcServer, epServer)
	healthServer := health.NewServer()
	healthpb.RegisterHealthServer(grpcServer, healthServer)
	healthServer.SetServingStatus(extprocv3.ExternalProcessor_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	var draining atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 3)
	go func() { errc <- grpcServer.Serve(epLis) }()
	listening := Listening{ExtProc: epLis.Addr().String(), Admin: adminLis.Addr().String()}
	if rl != nil {
		go func() { errc <- rl.grpc.Serve(rl.lis) }()
		listening.RateLimit = rl.lis.Addr().String()
	}
	go func() {
		if err := admin.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	log.Info("serving", "extproc", listening.ExtProc, "admin", listening.Admin, "ratelimit", listening.RateLimit)
	if ready != nil {
		ready <- listening
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		log.Error("server failed", "err", serveErr)
	}

	// Drain: say so first, keep serving new streams while load balancers
	// notice (closing the listeners at once would fail every request sent
	// meanwhile: the ext_proc filters do not fail open), then let open
	// streams finish.
	draining.Store(true)
	healthServer.Shutdown()
	servers := []*grpc.Server{grpcServer}
	if rl != nil {
		rl.health.Shutdown()
		servers = append(servers, rl.grpc)
	}
	if d := cfg.Gateway.Drain(); d > 0 {
		log.Info("draining: not ready, still serving while load balancers notice", "drain_delay", d.String())
		time.Sleep(d)
	}
	timeout := time.Duration(cfg.Gateway.ShutdownTimeout)
	log.Info("draining", "timeout", timeout.String())
	stopped := make(chan struct{})
	go func() {
		for _, g := range servers {
			g.GracefulStop()
		}
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(timeout):
		log.Warn("drain timed out: closing open streams")
		for _, g := range servers {
			g.Stop()
		}
		<-stopped
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = admin.Shutdown(shutCtx)
	log.Info("stopped")
	if serveErr != nil {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}
