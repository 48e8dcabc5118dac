// Package fakeollama is an in-process fake of an Ollama server (≥ 0.14) for
// tests, the load simulator and benchmarks of claude-guardian: the
// Anthropic-compatible POST /v1/messages, the native POST /api/embed,
// GET /api/tags and the GET / health check. It is independent of the
// gateway's code so that it can catch the gateway's bugs.
//
// The behaviour follows /work/shared/reference/anthropic-and-ollama-api.md §4
// (Ollama's anthropic/anthropic.go and middleware/anthropic.go):
//
//   - /v1/messages accepts any key or none and ignores anthropic-version.
//     Validation, in Ollama's order: a body that does not decode → 400 with
//     the decoder's message; "model is required"; "max_tokens is required
//     and must be positive"; "messages is required". Errors use the Anthropic
//     envelope with request_id req_<24 hex>; the status maps to the type as
//     Ollama's NewError does (400 invalid_request_error, 404 not_found_error,
//     503 overloaded_error, …). A model that is not served → 404
//     `model "x" not found, try pulling it first`.
//   - Replies have id msg_<24 hex>, no stop_sequence member, and usage with
//     only input_tokens and output_tokens. Streams are message_start (output
//     0), content_block_start, content_block_delta…, content_block_stop, ONE
//     message_delta with {input_tokens, output_tokens}, message_stop; no ping,
//     no SSE error events (errors are HTTP statuses before the stream).
//   - /api/embed returns deterministic, L2-normalised 384-dimension vectors:
//     a signed feature hash of the lowercased word unigrams (weight 1) and
//     bigrams (weight 0.5). Identical texts have cosine 1, texts sharing most
//     words a high cosine, unrelated texts near 0. Errors use Ollama's native
//     {"error": "..."} shape.
//
// Token counts: input_tokens (prompt_eval_count) counts each maximal run of
// letters/digits and each maximal run of other non-space characters as one
// token, plus 4 per message and 4 for a system prompt (the chat template).
// The reply is lowercase one-token words: min(max_tokens, target) of them,
// target = the x-fake-output-tokens header, else Config.DefaultOutputTokens,
// else 16; stop_reason max_tokens when cut, else end_turn.
//
// Faults: [Server.SetUnhealthy] makes /v1/messages answer 503
// overloaded_error; [Server.SetDelay] delays the headers of /v1/messages and
// /api/embed; [Server.SetStreamDelay] waits before every SSE event. Waits end
// early when the client goes away.
package fakeollama
