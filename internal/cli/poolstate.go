package cli

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/internal/breaker"
	"github.com/claude-guardian/claude-guardian/keypool"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// poolState is where the key pool keeps its buckets and tickets: in memory
// (one replica), or in Redis when redis.url is set, so that every replica
// shares one view of every account. A Redis call is bounded by
// redis.timeout and not retried, and while Redis is unavailable a breaker
// fails the calls at once: every caller of the state already degrades on
// an error (a request goes without a reservation, the upstream processor
// picks a key), which must not cost each request a timeout per call.
type poolState struct {
	engine interface {
		bucket.Engine
		bucket.Leases
	}
	tickets keypool.Tickets
	close   func()
}

func newPoolState(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*poolState, error) {
	if cfg.Redis.URL == "" {
		return &poolState{engine: bucket.NewMemory(nil), tickets: keypool.NewMemoryTickets(keypool.TicketTTL, nil), close: func() {}}, nil
	}
	opts, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	timeout := time.Duration(cfg.Redis.Timeout)
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = timeout*4, timeout, timeout, timeout
	opts.MaxRetries = -1   // a command is not retried ...
	opts.DialerRetries = 1 // ... nor a connect (go-redis tries 5 times by default)
	client := redis.NewClient(opts)
	brk := breaker.New(client, breaker.Options{Name: "pool state", Logger: log,
		Metrics: breaker.NewMetrics(reg, "pool_state", "key pool's state")})
	eng, err := bucket.NewRedis(client, bucket.RedisOptions{Prefix: "guardian:pool"})
	if err != nil {
		brk.Close()
		client.Close()
		return nil, fmt.Errorf("pool state: %w", err)
	}
	return &poolState{
		engine:  eng,
		tickets: keypool.NewRedisTickets(client, "guardian:pool", keypool.TicketTTL),
		close: func() {
			eng.Close()
			brk.Close()
			client.Close()
		},
	}, nil
}
