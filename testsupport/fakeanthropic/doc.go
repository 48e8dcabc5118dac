// Package fakeanthropic is an in-process fake of the Anthropic Messages API
// (POST /v1/messages and POST /v1/messages/count_tokens) for tests, the load
// simulator and benchmarks of claude-guardian. It is written independently of
// the gateway so that it can catch the gateway's bugs.
//
// The behaviour follows /work/shared/reference/anthropic-and-ollama-api.md:
// §1 (rate limits: token buckets, cache-aware ITPM, the two OTPM variants,
// the anthropic-ratelimit-* headers, 429 bodies) and §2 (request headers,
// API versions 2023-06-01 and 2026-10-21, request/response bodies, SSE
// streaming, errors).
//
// # Request pipeline
//
// A request goes through these steps, in this order; the first failure wins:
//
//  1. Routing: only POST /v1/messages and POST /v1/messages/count_tokens
//     exist (query strings are ignored). Unknown paths get 404
//     not_found_error; a known path with another method gets 405
//     invalid_request_error "Method Not Allowed" plus an Allow: POST header.
//  2. Body size: a body over 32 MiB gets 413 request_too_large (no rate-limit
//     headers: in production Cloudflare answers before the API does).
//  3. Authentication: x-api-key, else Authorization: Bearer. When both are
//     sent x-api-key wins. Missing → 401 "x-api-key header is required";
//     unknown or revoked → 401 "invalid x-api-key". No rate-limit headers.
//  4. Permission: an account switched off with [Server.SetForbidden] gets 403
//     permission_error. From here on every response carries the
//     anthropic-ratelimit-* headers of the caller's account.
//  5. anthropic-version: required, 2023-06-01 or 2026-10-21.
//  6. Body validation, with pydantic-like messages ("max_tokens: Field
//     required"). Unknown top-level fields are accepted (forward
//     compatibility). On 2026-10-21 temperature, top_p and top_k are
//     rejected with "<field>: Extra inputs are not permitted", document
//     blocks in assistant messages and non-empty citations on user text
//     blocks are rejected too.
//  7. count_tokens answers here: {"input_tokens": N}. It is not limited and
//     not charged against the Messages buckets (the real API gives it its own,
//     separate RPM limit, which this fake does not model). Faults do not apply.
//  8. Injected faults (see [Fault]); only valid Messages requests consume them.
//  9. Spend cap (account switched with [Server.SetSpendCapReached]) → 429
//     with details.error_code enforced_spend_limit_reached and no
//     retry-after.
//  10. Rate limits (see below) → 429 rate_limit_error with retry-after.
//  11. The response, JSON or SSE.
//
// # Rate limits
//
// Each account (not each key) has three continuous token buckets: requests,
// input tokens and output tokens. Capacity is the per-minute limit and the
// refill rate is limit/60 per second, computed from [Config.Now]. A request
// needs 1 request token, input_tokens + cache_creation_input_tokens input
// tokens (cache reads are free), and on the output axis either at least one
// token of headroom (default: output is charged as it is produced, which may
// drive the bucket negative) or max_tokens (Config.OTPMAtStart: reserved at
// the start, the unused part refunded at the end). All three must fit or
// nothing is charged. A 429 names the first axis that does not fit
// (requests, then input, then output) and its retry-after is the ceiling, in
// whole seconds, of the longest wait until every failing bucket holds the
// need. A request needing more than a bucket's whole capacity can never
// succeed: it still gets a 429, with retry-after = the time until that bucket
// is full (at least 1 second).
//
// Header values: -limit is the per-minute limit; -remaining is the bucket
// level floored at 0, exact for requests and rounded to the nearest thousand
// for tokens; -reset is the instant the bucket will be full again, rounded up
// to a whole second, RFC 3339 UTC with a Z. anthropic-ratelimit-tokens-* is
// the input+output combination (sum of limits, rounded sum of levels, later
// reset).
//
// # Tokenizer
//
// The fake's "true" tokenizer ([CountText]) is deterministic and not bytes/4:
// every maximal run of letters and digits costs 1 token per started 8 runes;
// every maximal run of other non-space characters (punctuation, symbols)
// costs 1 token per started 4 runes; whitespace is free. A request costs
// [RequestOverhead] tokens, plus [MessageOverhead] per message, plus for each
// tool [ToolOverhead] + the tokens of its compact JSON, plus the system
// prompt's text, plus every content block: text by its text, image and
// document blocks a flat [ImageTokens] / [DocumentTokens], tool_use by its
// name and input JSON, tool_result by its content, thinking by its text.
//
// # Prompt caching
//
// Tools, system blocks and message blocks form a sequence of segments, in
// that order. A segment carrying cache_control is a breakpoint (a top-level
// cache_control makes the last segment one). The longest prefix ending at or
// before the last breakpoint that is in the account's cache is a cache read;
// the tokens from there to the last breakpoint are a cache write, split into
// ephemeral_5m / ephemeral_1h by the ttl of the breakpoint that covers them;
// the rest is input_tokens. Cache entries are keyed by a chained SHA-256 of
// model and segments and expire after their ttl (5m or 1h) of [Config.Now];
// a hit refreshes the entry. [Config.MinCacheableTokens] (default 0) can
// emulate the real 1,024-token minimum.
//
// # Output
//
// The reply is one text block of lowercase words, each exactly one token, so
// that output_tokens equals the tokenizer's count of the text. Its length is
// min(max_tokens, target). The target is the x-fake-output-tokens request
// header if present, else [Config.DefaultOutputTokens] if set, else
// clamp(total input tokens / 4, 16, 1024). stop_reason is max_tokens when the
// target was cut, else end_turn. Declared tools are ignored unless the
// request header x-fake-tool-use names one of them: then the reply ends with a
// tool_use block (id toolu_…, input {}) and stop_reason tool_use.
package fakeanthropic
