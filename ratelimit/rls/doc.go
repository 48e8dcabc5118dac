// Package rls is claude-guardian's rate-limit service: the gRPC server of
// envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit, deciding on
// rules loaded by package rlsconfig (envoyproxy/ratelimit's YAML plus our
// extensions) with the bucket engine.
//
// # Decisions
//
// Each request descriptor is matched to at most one rule (an unknown domain
// or an unmatched descriptor is OK with no current_limit; a descriptor
// limit override replaces the config, as in the reference). Its hits are the
// descriptor's hits_addend when set (0 only checks), else the request's
// hits_addend, at least 1. Then, by rule kind:
//
//   - token_bucket (and unit day with day_reset_timezone, a calendar quota):
//     all such descriptors of the request whose keys share a hash tag —
//     domain plus the first entry, e.g. the tenant — are taken in ONE engine
//     call, all or nothing (a request that fails its token limit does not
//     consume its request limit). Descriptors with different first entries
//     are taken tag by tag; if a later tag refuses, the earlier ones are
//     refunded. is_negative_hits refunds (bucket Adjust, never above full).
//     A descriptor whose last entry has the key "guardian_adjust" (any
//     value; the entry is ignored for matching) is charged unconditionally
//     (Adjust), never refused: use it for positive apply_on_stream_done
//     corrections, which must count even when the tenant is over its limit.
//   - fixed_window: a counter per window floor(now/unit), INCRBY + EXPIRE,
//     always incremented, over when the count exceeds the limit — the
//     reference's behaviour, bit for bit in the counting.
//   - concurrency: a hit acquires a lease with the rule's lease_ttl; the
//     response carries its id as dynamic metadata "guardian_lease" (Envoy
//     stores it in the namespace envoy.filters.http.ratelimit). A
//     descriptor whose last entry is ("guardian_lease", id) — built in Envoy
//     with a metadata action reading that key — releases the lease when sent
//     with is_negative_hits (e.g. apply_on_stream_done), or renews it when
//     sent with positive hits. A lease never released (the holder died, the
//     stream-done call was lost) is reclaimed when its TTL passes, so
//     lease_ttl must exceed the longest stream. One concurrency descriptor
//     per request carries a lease id back.
//
// shadow_mode rules are decided on their own, always answer OK, and are
// counted; quota_mode rules make the request over only if all of them are
// over; replaces drops the rules named. Unlimited rules answer OK with
// limit_remaining 4294967295. The overall code is OVER_LIMIT when any
// enforced descriptor is over.
//
// # Responses
//
// Every status carries current_limit, limit_remaining and
// duration_until_reset (for a token bucket: until it is full when OK, until
// the hits could pass when over). Optionally (Options.Headers) the
// response adds RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset
// from the descriptor closest to its limit, and (Options.AnthropicErrors)
// an OVER_LIMIT response carries Anthropic's error JSON as raw_body with
// content-type and retry-after, so Envoy's local 429 looks like Anthropic's.
//
// # Failure
//
// A Store error never panics and never becomes an RLS error status, except
// in the FailError fallback mode: see [Failover] for Redis outages.
package rls
