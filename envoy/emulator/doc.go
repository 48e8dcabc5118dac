// Package emulator runs an Envoy bootstrap (the subset claude-guardian ships
// in envoy/envoy.yaml) in Go, so tests can prove the config works without an
// Envoy binary.
//
// Load parses the YAML with go-control-plane v1.40 protos (unknown fields and
// unregistered Any types rejected), then refuses every field or extension the
// emulator does not implement: nothing in the config is silently ignored.
// Start serves one HTTP/1.1 listener whose connection manager runs the
// configured filter chain (ext_proc, ratelimit, router) the way Envoy does:
// ext_proc message order, processing modes, header mutation rules, immediate
// responses, timeouts and failure modes; rate-limit descriptors, hits_addend,
// apply_on_stream_done and failure modes; routing on headers, host rewrite,
// retries with jittered and rate-limited back-off, and per-attempt upstream
// HTTP filters. Counters are kept under Envoy's stat names (Stats).
package emulator
