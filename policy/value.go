package policy

import (
	"encoding/json"
	"strconv"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Keys of the input document, made once. Rego never modifies input terms,
// so every request shares them.
var (
	kRequest, kTenant, kState, kTime                                  = str("request"), str("tenant"), str("state"), str("time")
	kEndpoint, kModel, kModelClass, kMaxTokens, kStream, kEstInput    = str("endpoint"), str("model"), str("model_class"), str("max_tokens"), str("stream"), str("est_input_tokens")
	kSystemLen, kLastUserLen, kLastUserHead, kMessages, kHasTools     = str("system_len"), str("last_user_len"), str("last_user_head"), str("messages"), str("has_tools")
	kThinking, kImages, kTask                                         = str("thinking"), str("images"), str("task")
	kName, kPriority, kAllowRewrite                                   = str("name"), str("priority"), str("allow_model_rewrite")
	kClasses, kQueueDepth, kOllama, kHeadroom, kCoolingDown           = str("classes"), str("queue_depth"), str("ollama"), str("headroom"), str("cooling_down")
	kCooldownMS, kErrorRate, kRateLimitedRate, kConfigured, kHealthy  = str("cooldown_ms"), str("error_rate"), str("rate_limited_rate"), str("configured"), str("healthy")
	kUnixMS, kHourUTC, kWeekday                                       = str("unix_ms"), str("hour_utc"), str("weekday")
	classKeys                                                         = [3]*ast.Term{str(ClassHaiku), str(ClassSonnet), str(ClassOpus)}
	kBackend, kAction, kStatus, kMessage, kMaxWaitMS, kCache, kLookup = str("backend"), str("action"), str("status"), str("message"), str("max_wait_ms"), str("cache"), str("lookup")
	kStore, kReason                                                   = str("store"), str("reason")
	modelClassTerms                                                   = map[string]*ast.Term{ClassHaiku: classKeys[0], ClassSonnet: classKeys[1], ClassOpus: classKeys[2], ClassOther: str(ClassOther)}
	endpointMessages, endpointCountTokens                             = str("messages"), str("count_tokens")
	priorityTerms                                                     = map[string]*ast.Term{PriorityHigh: str(PriorityHigh), PriorityNormal: str(PriorityNormal), PriorityLow: str(PriorityLow)}
	emptyString                                                       = str("")
)

func str(s string) *ast.Term { return ast.StringTerm(s) }

func item(k, v *ast.Term) [2]*ast.Term { return [2]*ast.Term{k, v} }

func boolTerm(b bool) *ast.Term { return ast.InternedTerm(b) }

func intTerm[T int | int64](n T) *ast.Term {
	if n >= -1 && n <= 512 {
		return ast.InternedTerm(int(n))
	}
	return ast.NumberTerm(json.Number(strconv.FormatInt(int64(n), 10)))
}

func floatTerm(f float64) *ast.Term {
	switch f {
	case 0:
		return ast.InternedTerm(0)
	case 1:
		return ast.InternedTerm(1)
	}
	return ast.FloatNumberTerm(f)
}

func strTerm(s string, known map[string]*ast.Term) *ast.Term {
	if s == "" {
		return emptyString
	}
	if t, ok := known[s]; ok {
		return t
	}
	return ast.StringTerm(s)
}

// tenantValue is a tenant's Rego value, made once per tenant.
type tenantValue struct{ term *ast.Term }

func newTenantValue(t *Tenant) tenantValue {
	return tenantValue{ast.ObjectTerm(
		item(kName, ast.StringTerm(t.Name)),
		item(kPriority, strTerm(t.Priority, priorityTerms)),
		item(kAllowRewrite, boolTerm(t.AllowModelRewrite)),
	)}
}

// anonymous is the tenant of an Input without one.
var anonymous = NewTenant("", PriorityNormal, false)

// stateCache keeps the Rego value of the last state seen: live state
// changes far less often than requests arrive.
type stateCache struct {
	last atomic.Pointer[stateEntry]
}

type stateEntry struct {
	state State
	term  *ast.Term
}

func (c *stateCache) term(s State) *ast.Term {
	if e := c.last.Load(); e != nil && e.state == s {
		return e.term
	}
	e := &stateEntry{state: s, term: stateTerm(s)}
	c.last.Store(e)
	return e.term
}

func stateTerm(s State) *ast.Term {
	var classes [3][2]*ast.Term
	for i, c := range s.Classes {
		classes[i] = item(classKeys[i], ast.ObjectTerm(
			item(kHeadroom, floatTerm(c.Headroom)),
			item(kCoolingDown, boolTerm(c.CoolingDown)),
			item(kCooldownMS, intTerm(c.CooldownMS)),
			item(kErrorRate, floatTerm(c.ErrorRate)),
			item(kRateLimitedRate, floatTerm(c.RateLimitedRate)),
		))
	}
	return ast.ObjectTerm(
		item(kClasses, ast.ObjectTerm(classes[:]...)),
		item(kQueueDepth, intTerm(s.QueueDepth)),
		item(kOllama, ast.ObjectTerm(
			item(kConfigured, boolTerm(s.Ollama.Configured)),
			item(kHealthy, boolTerm(s.Ollama.Healthy)),
			item(kModel, ast.StringTerm(s.Ollama.Model)),
		)),
	)
}

// value builds the input document straight from the typed input.
func (c *stateCache) value(in *Input) ast.Value {
	r := &in.Request
	endpoint := endpointMessages
	if r.Endpoint == "count_tokens" {
		endpoint = endpointCountTokens
	}
	req := ast.NewObject(
		item(kEndpoint, endpoint),
		item(kModel, ast.StringTerm(r.Model)),
		item(kModelClass, modelClassTerms[ClassOf(r.Model)]),
		item(kMaxTokens, intTerm(r.MaxTokens)),
		item(kStream, boolTerm(r.Stream)),
		item(kEstInput, intTerm(r.EstInputTokens)),
		item(kSystemLen, intTerm(r.SystemLen)),
		item(kLastUserLen, intTerm(r.LastUserLen)),
		item(kLastUserHead, strTerm(r.LastUserHead, nil)),
		item(kMessages, intTerm(r.Messages)),
		item(kHasTools, boolTerm(r.HasTools)),
		item(kThinking, boolTerm(r.Thinking)),
		item(kImages, intTerm(r.Images)),
		item(kTask, strTerm(r.Task, nil)),
	)
	tenant := in.Tenant
	if tenant == nil {
		tenant = anonymous
	}
	now := in.Now.UTC()
	tm := ast.NewObject(
		item(kUnixMS, intTerm(now.UnixMilli())),
		item(kHourUTC, intTerm(now.Hour())),
		item(kWeekday, intTerm(int(now.Weekday()))),
	)
	return ast.NewObject(
		item(kRequest, ast.NewTerm(req)),
		item(kTenant, tenant.value.term),
		item(kState, c.term(in.State)),
		item(kTime, ast.NewTerm(tm)),
	)
}
