package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"time"

	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/deploy/local"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
	"github.com/claude-guardian/claude-guardian/ratelimit/rls"
	"github.com/claude-guardian/claude-guardian/ratelimit/rlsconfig"
)

// rlsRuntime is a running rate-limit service: its gRPC server, health and
// the goroutines and connections to stop after the drain.
type rlsRuntime struct {
	lis     net.Listener
	grpc    *grpc.Server
	health  *health.Server
	cleanup []func()
}

func (r *rlsRuntime) close() {
	for i := len(r.cleanup) - 1; i >= 0; i-- {
		r.cleanup[i]()
	}
}

// startRLS builds the RLS for cfg: store (memory, or Redis with the
// configured fallback), rules (watched config_dir) and listener.
func startRLS(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*rlsRuntime, error) {
	log = log.With("component", "rls")
	rt := &rlsRuntime{}
	m := rls.NewMetrics(reg)
	rc := cfg.Ratelimit
	var store rls.Store
	if cfg.UseRedis() {
		opts, err := redis.ParseURL(cfg.Redis.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		timeout := time.Duration(rc.RedisTimeout)
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = timeout*4, timeout, timeout, timeout
		// The fallback answers instead of retrying past the deadline: no
		// command is retried, nor a connect (go-redis tries 5 by default).
		opts.MaxRetries, opts.DialerRetries = -1, 1
		client := redis.NewClient(opts)
		rt.cleanup = append(rt.cleanup, func() { _ = client.Close() })
		shared, closeEngine, err := rls.NewRedisStore(client, bucket.RedisOptions{Prefix: "guardian:rl:"})
		if err != nil {
			rt.close()
			return nil, err
		}
		rt.cleanup = append(rt.cleanup, func() { _ = closeEngine() })
		mode, _ := rls.ParseFallbackMode(rc.Fallback) // validated by config
		f := rls.NewFailover(shared, rls.FailoverOptions{
			Mode: mode, Replicas: rc.Replicas, Timeout: timeout, Logger: log, Metrics: m,
			Probe: func(ctx context.Context) error { return client.Ping(ctx).Err() },
		})
		rt.cleanup = append(rt.cleanup, f.Close)
		store = f
		log.Info("rate-limit state in Redis", "fallback", mode.String(), "replicas", rc.Replicas)
	} else {
		store = rls.NewMemoryStore(nil)
	}
	srv := rls.New(rls.Options{
		Store: store, Logger: log, Metrics: m,
		Headers: rc.Headers, AnthropicErrors: rc.AnthropicErrorBodies(),
	})
	if err := loadRules(ctx, rt, srv, rc.ConfigDir, log, m); err != nil {
		rt.close()
		return nil, err
	}

	lis, err := net.Listen("tcp", cfg.Listen.RateLimit)
	if err != nil {
		rt.close()
		return nil, fmt.Errorf("listen.ratelimit: %w", err)
	}
	rt.lis = lis
	rt.grpc = grpc.NewServer(append(rls.GRPCServerOptions(),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}))...)
	rlspb.RegisterRateLimitServiceServer(rt.grpc, srv)
	rt.health = health.NewServer()
	healthpb.RegisterHealthServer(rt.grpc, rt.health)
	rt.health.SetServingStatus(rlspb.RateLimitService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	return rt, nil
}

// loadRules loads config_dir and watches it; the embedded example rules
// stand in for the default "ratelimit" directory when it is absent.
func loadRules(ctx context.Context, rt *rlsRuntime, srv *rls.Server, dir string, log *slog.Logger, m *rls.Metrics) error {
	if dir == "" {
		log.Warn("ratelimit.config_dir is not set: no rules, every call is answered OK")
		return nil
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) && dir == local.RatelimitDir {
		files, err := rlsconfig.ReadFS(local.Ratelimit(), ".")
		if err == nil {
			var c *rlsconfig.Config
			if c, err = rlsconfig.Parse(files); err == nil {
				srv.SetConfig(c)
				m.ConfigLoaded(nil)
				log.Info("rate-limit rules: using the embedded deploy/local/ratelimit (not reloaded)", "domains", c.Domains())
				return nil
			}
		}
		return fmt.Errorf("embedded rate-limit rules: %w", err)
	}
	w := rls.NewWatcher(dir, srv, log, m)
	if err := w.Load(); err != nil {
		return fmt.Errorf("ratelimit.config_dir: %w", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(wctx); err != nil {
			log.Error("rate-limit config watch stopped", "err", err)
		}
	}()
	rt.cleanup = append(rt.cleanup, func() { cancel(); <-done })
	return nil
}
