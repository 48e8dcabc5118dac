package bucket_test

import (
	"context"
	"fmt"
	"time"

	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

// An RLS decision over requests per minute, input tokens per minute and
// requests per day of one account, then a refund once usage is known.
func Example() {
	start := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	e := bucket.NewMemory(func() time.Time { return start })
	phoenix, _ := time.LoadLocation("America/Phoenix")
	ctx := context.Background()

	reqs := []bucket.Request{
		{Key: "{acct-7}:rpm", Limit: bucket.Rate(50, time.Minute), N: 1},
		{Key: "{acct-7}:itpm", Limit: bucket.Rate(30_000, time.Minute), N: 25_000}, // estimate
		{Key: "{acct-7}:rpd", Limit: bucket.PerDay(1_000, phoenix), N: 1},
	}
	d, _ := e.Take(ctx, reqs)
	fmt.Println(d.Allowed, d.Buckets[1].Remaining)

	reqs[1].N = 10_000 // 10k more would not fit: nothing is taken
	d, _ = e.Take(ctx, reqs)
	fmt.Println(d.Allowed, d.Buckets[0].Remaining, d.RetryAfter())

	// The response used 20k input tokens, not 25k: refund 5k.
	d, _ = e.Adjust(ctx, []bucket.Request{{Key: "{acct-7}:itpm", Limit: bucket.Rate(30_000, time.Minute), N: -5_000}})
	fmt.Println(d.Buckets[0].Remaining)
	// Output:
	// true 5000
	// false 49 10s
	// 10000
}
