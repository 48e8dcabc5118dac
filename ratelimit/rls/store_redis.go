package rls

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// redisStore is the store shared by replicas through Redis or Redis Cluster.
type redisStore struct {
	*bucket.Redis
	client redis.UniversalClient
	prefix string
}

// NewRedisStore returns a store on c (a *redis.Client or
// *redis.ClusterClient), which stays owned by the caller. Fixed-window
// counters are INCRBY + EXPIRE in one pipeline, as envoyproxy/ratelimit does.
func NewRedisStore(c redis.UniversalClient, opts bucket.RedisOptions) (Store, func() error, error) {
	r, err := bucket.NewRedis(c, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("rls: %w", err)
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "guardian:bucket:"
	}
	return redisStore{Redis: r, client: c, prefix: prefix}, r.Close, nil
}

// IncrBy implements [Store.IncrBy].
func (s redisStore) IncrBy(ctx context.Context, ops []WindowOp) error {
	p := s.client.Pipeline()
	cmds := make([]*redis.IntCmd, len(ops))
	for i := range ops {
		k := s.prefix + ops[i].Key
		cmds[i] = p.IncrBy(ctx, k, ops[i].N)
		p.Expire(ctx, k, ops[i].TTL)
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("rls: redis: %w", err)
	}
	for i, c := range cmds {
		ops[i].After = c.Val()
	}
	return nil
}
