// Package e2e runs claude-guardian end to end the way users do: the shipped
// envoy/envoy.yaml in the Envoy emulator, guardian's servers, faithful fakes
// of Anthropic (over TLS, as api.anthropic.com) and Ollama, and the official
// Anthropic SDKs for Go and TypeScript with only their base URL changed.
package e2e
