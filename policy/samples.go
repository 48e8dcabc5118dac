package policy

import "time"

// Sample is a named input every policy version must decide on.
type Sample struct {
	Name  string
	Input Input
}

var sampleTime = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func healthyState() State {
	s := State{Ollama: Ollama{Configured: true, Healthy: true, Model: "llama3.1:8b-instruct-q4_K_M"}}
	for i := range s.Classes {
		s.Classes[i] = ClassState{Headroom: 0.9}
	}
	return s
}

// Samples returns the inputs a new policy version is test-evaluated on
// before it is swapped in: each must give a well-formed decision. They
// cover the corners of the input space: every model class, both
// endpoints, tools, thinking, images, a long context, a declared task,
// Claude in trouble with and without Ollama, a full queue, and tenants
// with and without model rewriting.
func Samples() []Sample {
	rewrite := NewTenant("sample-rewrite", PriorityHigh, true)
	plain := NewTenant("sample-plain", PriorityLow, false)
	short := Request{Endpoint: "messages", Model: "claude-sonnet-4-6", MaxTokens: 256, EstInputTokens: 40,
		LastUserLen: 30, LastUserHead: "translate into french: good morning", Messages: 1}
	long := Request{Endpoint: "messages", Model: "claude-opus-4-7", MaxTokens: 4096, Stream: true, EstInputTokens: 90000,
		SystemLen: 4000, LastUserLen: 250000, LastUserHead: "here is the whole repository. find the bug", Messages: 9}
	tools := Request{Endpoint: "messages", Model: "claude-haiku-4-5", MaxTokens: 1024, EstInputTokens: 900,
		LastUserLen: 200, LastUserHead: "what's the weather in paris?", Messages: 3, HasTools: true}
	thinking := Request{Endpoint: "messages", Model: "claude-sonnet-4-6", MaxTokens: 8000, EstInputTokens: 300,
		LastUserLen: 500, LastUserHead: "prove that the sum of two odd numbers is even", Messages: 1, Thinking: true, Images: 2}
	unknown := Request{Endpoint: "messages", Model: "not-a-claude-model", MaxTokens: 10, EstInputTokens: 10, Messages: 1}
	count := Request{Endpoint: "count_tokens", Model: "claude-sonnet-4-6", EstInputTokens: 10, Messages: 1, LastUserHead: "hi"}
	declared := short
	declared.Task = "summarize"

	trouble := healthyState()
	trouble.Classes[0] = ClassState{Headroom: 0.01, CoolingDown: true, CooldownMS: 30000, ErrorRate: 0.9, RateLimitedRate: 0.9}
	trouble.Classes[1] = ClassState{Headroom: 0.01, ErrorRate: 0.9}
	trouble.Classes[2] = ClassState{Headroom: 0.01, RateLimitedRate: 0.9}
	noOllama := trouble
	noOllama.Ollama = Ollama{}
	sick := trouble
	sick.Ollama.Healthy = false
	full := trouble
	full.QueueDepth = 100000

	var out []Sample
	for _, t := range []*Tenant{rewrite, plain} {
		for _, st := range []struct {
			name string
			s    State
		}{{"healthy", healthyState()}, {"trouble", trouble}, {"no-ollama", noOllama}, {"ollama-down", sick}, {"queue-full", full}} {
			for _, r := range []struct {
				name string
				r    Request
			}{{"short", short}, {"long", long}, {"tools", tools}, {"thinking", thinking}, {"unknown-model", unknown}, {"count-tokens", count}, {"declared", declared}} {
				out = append(out, Sample{
					Name:  t.Name + "/" + st.name + "/" + r.name,
					Input: Input{Request: r.r, Tenant: t, State: st.s, Now: sampleTime},
				})
			}
		}
	}
	return out
}
