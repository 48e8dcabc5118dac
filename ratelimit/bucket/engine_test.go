package bucket

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-guardian/claude-guardian/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestMemory(t *testing.T) {
	runSuite(t, func(t *testing.T, clock func() time.Time) store { return NewMemory(clock) })
}

func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	runSuite(t, redisStore(srv.Client))
}

func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	runSuite(t, redisStore(c.Client))
}

var prefixSeq atomic.Int64

// uniquePrefix keeps the keys of every engine in a test binary apart.
func uniquePrefix() string {
	return "t" + strconv.FormatInt(prefixSeq.Add(1), 10) + ":"
}

func newTestRedis(t testing.TB, c redis.UniversalClient, opts RedisOptions) *Redis {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = uniquePrefix()
	}
	r, err := NewRedis(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func redisStore(c redis.UniversalClient) newStore {
	return func(t *testing.T, clock func() time.Time) store {
		return newTestRedis(t, c, RedisOptions{Clock: clock})
	}
}
