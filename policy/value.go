package policy

import (
	"encoding/json"
	"maps"
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
	kThinking, kImages, kTask, kKeywordTask                           = str("thinking"), str("images"), str("task"), str("keyword_task")
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

// intTerm returns n as a term. OPA interns -1..512; numbers up to
// intCacheSize (token counts, lengths, max_tokens) are made once, on first
// use, and shared: terms are immutable.
func intTerm[T int | int64](n T) *ast.Term {
	if n >= -1 && n <= 512 {
		return ast.InternedTerm(int(n))
	}
	if n < 0 || n >= intCacheSize {
		return ast.NumberTerm(json.Number(strconv.FormatInt(int64(n), 10)))
	}
	if t := intCache[n].Load(); t != nil {
		return t
	}
	t := ast.NumberTerm(json.Number(strconv.FormatInt(int64(n), 10)))
	intCache[n].Store(t)
	return t
}

const intCacheSize = 1 << 14

var intCache [intCacheSize]atomic.Pointer[ast.Term]

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

// modelTerms holds the terms of model names seen, shared by every request
// (copy on write, at most maxModelTerms: callers choose model names).
var modelTerms atomic.Pointer[map[string]*ast.Term]

const maxModelTerms = 64

func modelTerm(model string) *ast.Term {
	if model == "" {
		return emptyString
	}
	p := modelTerms.Load()
	var known map[string]*ast.Term
	if p != nil {
		known = *p
		if t, ok := known[model]; ok {
			return t
		}
	}
	t := ast.StringTerm(model)
	if len(known) < maxModelTerms {
		next := maps.Clone(known)
		if next == nil {
			next = map[string]*ast.Term{}
		}
		next[model] = t
		modelTerms.CompareAndSwap(p, &next) // lost a race: the next request adds it
	}
	return t
}

// inputTerms are the terms made for one input document, allocated at once.
type inputTerms struct {
	request, time, head, unixMS ast.Term
}

// number returns n as a term, t if n is not a shared one.
func (*inputTerms) number(t *ast.Term, n int64) *ast.Term {
	if n >= -1 && n < intCacheSize {
		return intTerm(n)
	}
	t.Value = ast.Number(strconv.FormatInt(n, 10))
	return t
}

// value builds the input document straight from the typed input. kw
// (nil: none) matches the policy's keyword table for
// request.keyword_task; without it the field is left out.
func (c *stateCache) value(in *Input, kw *keywordMatcher) ast.Value {
	r := &in.Request
	terms := new(inputTerms)
	endpoint := endpointMessages
	if r.Endpoint == "count_tokens" {
		endpoint = endpointCountTokens
	}
	head := emptyString
	if r.LastUserHead != "" {
		terms.head.Value = ast.String(r.LastUserHead)
		head = &terms.head
	}
	items := [15][2]*ast.Term{
		item(kEndpoint, endpoint),
		item(kModel, modelTerm(r.Model)),
		item(kModelClass, modelClassTerms[ClassOf(r.Model)]),
		item(kMaxTokens, intTerm(r.MaxTokens)),
		item(kStream, boolTerm(r.Stream)),
		item(kEstInput, intTerm(r.EstInputTokens)),
		item(kSystemLen, intTerm(r.SystemLen)),
		item(kLastUserLen, intTerm(r.LastUserLen)),
		item(kLastUserHead, head),
		item(kMessages, intTerm(r.Messages)),
		item(kHasTools, boolTerm(r.HasTools)),
		item(kThinking, boolTerm(r.Thinking)),
		item(kImages, intTerm(r.Images)),
		item(kTask, strTerm(r.Task, nil)),
	}
	n := 14
	if kw != nil {
		items[n] = item(kKeywordTask, kw.term(r.LastUserHead))
		n++
	}
	terms.request.Value = ast.NewObject(items[:n]...)
	tenant := in.Tenant
	if tenant == nil {
		tenant = anonymous
	}
	now := in.Now.UTC()
	terms.time.Value = ast.NewObject(
		item(kUnixMS, terms.number(&terms.unixMS, now.UnixMilli())),
		item(kHourUTC, intTerm(now.Hour())),
		item(kWeekday, intTerm(int(now.Weekday()))),
	)
	return ast.NewObject(
		item(kRequest, &terms.request),
		item(kTenant, tenant.value.term),
		item(kState, c.term(in.State)),
		item(kTime, &terms.time),
	)
}
