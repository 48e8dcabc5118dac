// Package bucket is the rate-limit engine behind the RLS and the key pool:
// exact token buckets (GCRA), calendar-day quotas and concurrency leases, with
// an in-memory backend for one replica and a Redis / Redis Cluster backend
// shared by many.
//
// # Buckets
//
// A [Request] names one bucket (Key), its [Limit] and an amount N. The
// [Engine] methods take a slice of requests and act on all of them at once:
//
//   - [Engine.Take] is all or nothing: N tokens are taken from every bucket or
//     from none (a request that fails its tokens-per-minute does not consume its
//     requests-per-minute). N may differ per bucket; N = 0 only checks.
//   - [Engine.Adjust] applies a signed N to every bucket unconditionally: a
//     positive N charges more, a negative N refunds. A bucket never goes below
//     empty nor above full.
//   - [Engine.Peek] reports what Take would decide without taking.
//
// Two kinds of limit can be mixed in one call:
//
//   - [TokenBucket]: continuous refill of Capacity tokens per Per, holding at
//     most Burst tokens (Burst 0 means Capacity). Implemented as GCRA with the
//     theoretical arrival time kept as an exact rational number of
//     microseconds (integer microseconds plus a remainder in 1/Capacity µs), so
//     no refill is ever lost to rounding, whatever the rate.
//   - [Daily]: Capacity tokens per calendar day of Location, reset exactly at
//     local midnight (23 h and 25 h DST days included).
//
// Every [Result] carries what an RLS and a 429 need: Allowed, Remaining,
// Limit, RetryAfter (when this request could pass) and ResetAfter (when the
// bucket is full again).
//
// # Keys and Redis Cluster
//
// In one call with several requests every key must carry the same hash tag,
// e.g. "{acct-7}:rpm", "{acct-7}:itpm", "{acct-7}:rpd", so that the Redis
// backend runs the whole decision as one Lua script on one cluster slot. Both
// backends enforce the rule so code that works in memory works on a cluster.
// A key must not appear twice in one call.
//
// # Leases
//
// [Leases] bound concurrency: [Leases.Acquire] grants a lease id if fewer
// than limit leases are held; leases end by [Leases.Release] or when their TTL
// runs out without [Leases.Renew], so a dead holder frees its slots.
//
// # Backends
//
// [NewMemory] keeps state in process; its clock is injectable. [NewRedis]
// keeps state in Redis with Redis TIME as the clock, so replicas agree; scripts
// run by EVALSHA (falling back to EVAL after NOSCRIPT) and concurrent calls are
// coalesced into pipelines without adding latency when idle. On a standalone
// Redis the decisions of one pipeline go as one script call: Redis runs one
// script, one MGET and one TIME for all of them and writes each changed key
// once, which more than halves its CPU per decision under load (a script
// call costs several µs before it does anything; `go test -bench RedisTake`
// shows the effect). A cluster gets one call per decision, since the keys
// of different decisions may live on different nodes.
package bucket
