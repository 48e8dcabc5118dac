package cli

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/keypool"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// poolState is where the key pool keeps its buckets and tickets: in memory
// (one replica), or in Redis when redis.url is set, so that every replica
// shares one view of every account.
type poolState struct {
	engine interface {
		bucket.Engine
		bucket.Leases
	}
	tickets keypool.Tickets
	close   func()
}

func newPoolState(cfg *config.Config) (*poolState, error) {
	if cfg.Redis.URL == "" {
		return &poolState{engine: bucket.NewMemory(nil), tickets: keypool.NewMemoryTickets(keypool.TicketTTL, nil), close: func() {}}, nil
	}
	opts, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	client := redis.NewClient(opts)
	eng, err := bucket.NewRedis(client, bucket.RedisOptions{Prefix: "guardian:pool"})
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("pool state: %w", err)
	}
	return &poolState{
		engine:  eng,
		tickets: keypool.NewRedisTickets(client, "guardian:pool", keypool.TicketTTL),
		close: func() {
			eng.Close()
			client.Close()
		},
	}, nil
}
