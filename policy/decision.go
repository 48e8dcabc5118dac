package policy

import (
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Backends a decision may choose.
const (
	BackendClaude = "claude"
	BackendOllama = "ollama"
)

// Actions a decision may take.
const (
	ActionAllow  = "allow"
	ActionQueue  = "queue"
	ActionReject = "reject"
)

// Decision is the policy's answer for one request (schema/output.json).
type Decision struct {
	Backend  string // claude | ollama
	Model    string // the model to send upstream
	Priority string // high | normal | low
	Action   string // allow | queue | reject
	// Status and Message are set for reject: the HTTP status (400-599) and
	// the message of the Anthropic error sent to the caller.
	Status  int
	Message string
	// MaxWaitMS bounds how long the admission queue may hold the request.
	MaxWaitMS int64
	Cache     CacheRule
	// Reason is a short, stable code (a metric label), e.g. short-simple.
	Reason string
	// Revision is the policy version that decided ("" for SafeDefault).
	Revision string
}

// CacheRule says whether the cache may answer the request and whether its
// response may be stored.
type CacheRule struct {
	Lookup bool
	Store  bool
}

// ReasonPolicyError is the reason of SafeDefault.
const ReasonPolicyError = "policy-error"

// SafeDefault is the documented decision used when the policy fails or its
// answer is undefined or malformed: the request goes to Claude unchanged,
// at the tenant's priority, allowed, without queueing or caching.
func SafeDefault(in *Input) Decision {
	p := PriorityNormal
	if in.Tenant != nil {
		p = in.Tenant.Priority
	}
	return Decision{Backend: BackendClaude, Model: in.Request.Model, Priority: p, Action: ActionAllow, Reason: ReasonPolicyError}
}

// Errors of a decision, by stable code (the reason label of
// guardian_policy_errors_total).
var (
	ErrUndefined = errors.New("policy: decision undefined")
	ErrMalformed = errors.New("policy: decision malformed")
	ErrEval      = errors.New("policy: evaluation failed")
	ErrNoPolicy  = errors.New("policy: no policy loaded")
)

// errorCode maps an error of Decide to its metric label.
func errorCode(err error) string {
	switch {
	case errors.Is(err, ErrUndefined):
		return "undefined"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrNoPolicy):
		return "no_policy"
	}
	return "eval"
}

// maxReasonLen bounds the reason: it is a metric label and a header value.
const maxReasonLen = 64

// parseDecision reads the decision object. Every field is required except
// status and message (reject only) and cache (default: no lookup, no
// store).
func parseDecision(t *ast.Term) (Decision, error) {
	var d Decision
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return d, fmt.Errorf("%w: decision is %s, want an object", ErrMalformed, ast.ValueName(t.Value))
	}
	var err error
	if d.Backend, err = getString(obj, kBackend, "backend"); err != nil {
		return d, err
	}
	if d.Backend != BackendClaude && d.Backend != BackendOllama {
		return d, fmt.Errorf("%w: backend %q is not claude or ollama", ErrMalformed, d.Backend)
	}
	if d.Model, err = getString(obj, kModel, "model"); err != nil {
		return d, err
	}
	if d.Model == "" || len(d.Model) > 128 {
		return d, fmt.Errorf("%w: model must be 1-128 bytes", ErrMalformed)
	}
	if d.Priority, err = getString(obj, kPriority, "priority"); err != nil {
		return d, err
	}
	if !ValidPriority(d.Priority) {
		return d, fmt.Errorf("%w: priority %q is not high, normal or low", ErrMalformed, d.Priority)
	}
	if d.Action, err = getString(obj, kAction, "action"); err != nil {
		return d, err
	}
	switch d.Action {
	case ActionAllow, ActionQueue:
	case ActionReject:
		st, err := getInt(obj, kStatus, "status")
		if err != nil {
			return d, err
		}
		if st < 400 || st > 599 {
			return d, fmt.Errorf("%w: reject status %d is not 400-599", ErrMalformed, st)
		}
		d.Status = int(st)
		if d.Message, err = getString(obj, kMessage, "message"); err != nil {
			return d, err
		}
	default:
		return d, fmt.Errorf("%w: action %q is not allow, queue or reject", ErrMalformed, d.Action)
	}
	if d.MaxWaitMS, err = getInt(obj, kMaxWaitMS, "max_wait_ms"); err != nil {
		return d, err
	}
	if d.MaxWaitMS < 0 {
		return d, fmt.Errorf("%w: max_wait_ms is negative", ErrMalformed)
	}
	if c := obj.Get(kCache); c != nil {
		co, ok := c.Value.(ast.Object)
		if !ok {
			return d, fmt.Errorf("%w: cache is %s, want an object", ErrMalformed, ast.ValueName(c.Value))
		}
		if d.Cache.Lookup, err = getBool(co, kLookup, "cache.lookup"); err != nil {
			return d, err
		}
		if d.Cache.Store, err = getBool(co, kStore, "cache.store"); err != nil {
			return d, err
		}
	}
	if d.Reason, err = getString(obj, kReason, "reason"); err != nil {
		return d, err
	}
	if d.Reason == "" || len(d.Reason) > maxReasonLen || !reasonChars(d.Reason) {
		return d, fmt.Errorf("%w: reason %q must be 1-%d of a-z 0-9 . _ -", ErrMalformed, d.Reason, maxReasonLen)
	}
	return d, nil
}

func reasonChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func getString(o ast.Object, k *ast.Term, name string) (string, error) {
	v := o.Get(k)
	if v == nil {
		return "", fmt.Errorf("%w: %s missing", ErrMalformed, name)
	}
	s, ok := v.Value.(ast.String)
	if !ok {
		return "", fmt.Errorf("%w: %s is %s, want a string", ErrMalformed, name, ast.ValueName(v.Value))
	}
	return string(s), nil
}

func getInt(o ast.Object, k *ast.Term, name string) (int64, error) {
	v := o.Get(k)
	if v == nil {
		return 0, fmt.Errorf("%w: %s missing", ErrMalformed, name)
	}
	n, ok := v.Value.(ast.Number)
	if !ok {
		return 0, fmt.Errorf("%w: %s is %s, want a number", ErrMalformed, name, ast.ValueName(v.Value))
	}
	i, ok := n.Int64()
	if !ok {
		return 0, fmt.Errorf("%w: %s is %s, want an integer", ErrMalformed, name, n)
	}
	return i, nil
}

func getBool(o ast.Object, k *ast.Term, name string) (bool, error) {
	v := o.Get(k)
	if v == nil {
		return false, fmt.Errorf("%w: %s missing", ErrMalformed, name)
	}
	b, ok := v.Value.(ast.Boolean)
	if !ok {
		return false, fmt.Errorf("%w: %s is %s, want a boolean", ErrMalformed, name, ast.ValueName(v.Value))
	}
	return bool(b), nil
}
