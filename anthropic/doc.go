// Package anthropic holds what the gateway knows about Anthropic's Messages
// API: request parsing and validation with Anthropic's error messages, the
// error JSON envelope, request ids, the input-token estimator, usage read from
// JSON bodies and SSE streams, and the anthropic-ratelimit-* response headers.
//
// The facts it encodes are in shared/reference/anthropic-and-ollama-api.md.
package anthropic
