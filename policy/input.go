package policy

import (
	"strings"
	"time"
)

// Model classes: the families Anthropic's limits and the routing rules
// distinguish. A model name maps to one with [ClassOf].
const (
	ClassHaiku  = "haiku"
	ClassSonnet = "sonnet"
	ClassOpus   = "opus"
	ClassOther  = "other"
)

// Classes are the Claude model classes, in the order the input lists them.
var Classes = [3]string{ClassHaiku, ClassSonnet, ClassOpus}

// ClassOf returns the model class of a model name: the first of haiku,
// sonnet and opus it contains, else "other".
func ClassOf(model string) string {
	for _, c := range Classes {
		if strings.Contains(model, c) {
			return c
		}
	}
	return ClassOther
}

// Priority classes of tenants and decisions.
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
	PriorityLow    = "low"
)

// ValidPriority reports whether p is a priority class.
func ValidPriority(p string) bool {
	return p == PriorityHigh || p == PriorityNormal || p == PriorityLow
}

// Input is one request's policy input (schema/input.json). The engine turns
// it into a Rego value field by field.
type Input struct {
	Request Request
	// Tenant is built once per configured client with [NewTenant].
	Tenant *Tenant
	// State is the live state; the engine reuses its Rego value while it
	// does not change.
	State State
	Now   time.Time
}

// Request holds the request features the policy sees.
type Request struct {
	Endpoint       string // messages | count_tokens
	Model          string
	MaxTokens      int64
	Stream         bool
	EstInputTokens int64
	SystemLen      int // bytes of system prompt text
	LastUserLen    int // bytes of the last user turn's text
	// LastUserHead is the start of the last user turn's text, lower-cased
	// and cut to HeadBytes, for keyword rules.
	LastUserHead string
	Messages     int
	HasTools     bool
	Thinking     bool
	Images       int
	// Task is the caller's x-guardian-task header, lower-cased; "" if none.
	Task string
}

// HeadBytes is how much of the last user turn the policy sees.
const HeadBytes = 1024

// Head lower-cases the first HeadBytes bytes of text (cut at a rune
// boundary) for Request.LastUserHead.
func Head(text string) string {
	if len(text) > HeadBytes {
		cut := HeadBytes
		for cut > 0 && !isRuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	return strings.ToLower(text)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// ClassState is the live state of one model class on Claude.
type ClassState struct {
	// Headroom is the fraction (0..1) of the pool's capacity for the class
	// still free on its tightest axis; 1 when unknown.
	Headroom float64
	// CoolingDown is true when every account able to serve the class is
	// cooling down after a 429; CooldownMS is how long the soonest one has
	// left.
	CoolingDown bool
	CooldownMS  int64
	// ErrorRate and RateLimitedRate are the recent shares (0..1) of
	// upstream responses that were 5xx/529 and 429.
	ErrorRate       float64
	RateLimitedRate float64
}

// Ollama is the local backend's state.
type Ollama struct {
	Configured bool
	Healthy    bool
	Model      string
}

// State is the live state the policy sees.
type State struct {
	// Classes are indexed like [Classes].
	Classes    [3]ClassState
	QueueDepth int
	Ollama     Ollama
}

// StateSource supplies the live state. Implementations must be safe for
// concurrent use and cheap: the front calls it once per request.
type StateSource interface {
	PolicyState() State
}

// Tenant is a client as the policy sees it. Build it once with NewTenant:
// its Rego value is made once and shared by every request.
type Tenant struct {
	Name              string
	Priority          string
	AllowModelRewrite bool
	value             tenantValue
}

// NewTenant returns a tenant; an empty priority means normal.
func NewTenant(name, priority string, allowModelRewrite bool) *Tenant {
	if priority == "" {
		priority = PriorityNormal
	}
	t := &Tenant{Name: name, Priority: priority, AllowModelRewrite: allowModelRewrite}
	t.value = newTenantValue(t)
	return t
}
