package irvm

import (
	"encoding/json"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// inputGen generates policy inputs (policy/schema/input.json) for
// differential tests: every field, the values the rules branch on and the
// values around their thresholds, and, now and then, a missing field or a
// value of the wrong type. It is deterministic for a seed.
type inputGen struct {
	r *rand.Rand
}

func newInputGen(seed uint64) *inputGen {
	return &inputGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *inputGen) chance(p float64) bool { return g.r.Float64() < p }

func (g *inputGen) pick(xs ...any) any { return xs[g.r.IntN(len(xs))] }

// num is a number as written (json.Number keeps the representation: 1 and
// 1.0 differ in text, not in value).
func num(s string) json.Number { return json.Number(s) }

func (g *inputGen) int(xs ...int) json.Number {
	if g.chance(0.15) {
		return num(strconv.Itoa(g.r.IntN(100000)))
	}
	return num(strconv.Itoa(xs[g.r.IntN(len(xs))]))
}

func (g *inputGen) bool() any {
	if g.chance(0.03) {
		return g.pick("true", 1, nil, "false")
	}
	return g.chance(0.5)
}

// dropSome deletes each key of m with probability p.
func (g *inputGen) dropSome(m map[string]any, p float64) {
	for k := range m {
		if g.chance(p) {
			delete(m, k)
		}
	}
}

var (
	genModels = []string{"claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7", "claude-3-opus",
		"my-finetune", "not-a-claude-model", "", "claude-sonnet-4-6-haiku"}
	genTasks = []string{"translate", "format", "extract", "summarize", "classify", "reason", "code",
		"analyze", "plan", "agent", "complex", "long_context", "general"}
	// genHeads holds last turns with each task's keywords, several, none.
	genHeads = []string{
		"", "hello there, how are you today?", "hi",
		"please translate this sentence", "translate into french: good morning", "翻译成中文",
		"reformat this list as json", "convert to yaml please", "extract the phone numbers", "list all the names",
		"tl;dr of this mail", "summarize the report", "总结一下", "classify the sentiment", "categorize these tickets",
		"explain step by step why the cache misses", "prove that the sum of two odd numbers is even",
		"what is the root cause", "分析这个问题", "refactor this go function", "here is a stack trace", "```go\nfunc main() {}\n```",
		"translate and then summarize", "summarize, then translate into german", "debug and classify",
		"here is the whole repository. find the bug", "what's the weather in paris?",
		"please go through the following paragraph and tell me what you think of it.",
	}
)

// input returns a random input, or half the time the base input of
// policy/rego/helpers_test.rego with a few fields replaced by random ones,
// as the Rego tests vary it.
func (g *inputGen) input() ast.Value {
	in := map[string]any{
		"request": g.request(),
		"tenant":  g.tenant(),
		"state":   g.state(),
		"time": map[string]any{
			"unix_ms": num("1795867200000"), "hour_utc": g.int(0, 12, 23), "weekday": g.int(0, 3, 6),
		},
	}
	g.dropSome(in, 0.01)
	if g.chance(0.5) {
		in = g.variant(in)
	}
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		panic(err) // the generator makes JSON values only
	}
	return v
}

// variant returns the helpers' base input with one to four of the random
// input's fields in it.
func (g *inputGen) variant(random map[string]any) map[string]any {
	healthy := func() map[string]any {
		return map[string]any{"headroom": num("0.9"), "cooling_down": false, "cooldown_ms": num("0"),
			"error_rate": num("0"), "rate_limited_rate": num("0")}
	}
	base := map[string]any{
		"request": map[string]any{
			"endpoint": "messages", "model": "claude-sonnet-4-6", "model_class": "sonnet",
			"max_tokens": num("512"), "stream": false, "est_input_tokens": num("120"), "system_len": num("0"),
			"last_user_len": num("40"), "last_user_head": "hello there, how are you today?", "messages": num("1"),
			"has_tools": false, "thinking": false, "images": num("0"), "task": "",
		},
		"tenant": map[string]any{"name": "shop", "priority": "normal", "allow_model_rewrite": true},
		"state": map[string]any{
			"classes":     map[string]any{"haiku": healthy(), "sonnet": healthy(), "opus": healthy()},
			"queue_depth": num("0"),
			"ollama":      map[string]any{"configured": true, "healthy": true, "model": "llama3.1:8b-instruct-q4_K_M"},
		},
		"time": random["time"],
	}
	if g.chance(0.25) { // a simple task while Claude may be in trouble: degrade or queue
		req := base["request"].(map[string]any)
		req["last_user_head"] = g.pick("translate into german: the parcel is late", "tl;dr of this mail",
			"extract the phone numbers", "classify the sentiment", "reformat this list as json").(string)
		classes := base["state"].(map[string]any)["classes"].(map[string]any)
		for _, c := range []string{"haiku", "sonnet", "opus"} {
			classes[c] = g.class()
		}
	}
	for range 1 + g.r.IntN(4) {
		section := g.pick("request", "request", "request", "tenant", "state").(string)
		from, ok := random[section].(map[string]any)
		if !ok {
			delete(base, section)
			continue
		}
		to := base[section].(map[string]any)
		if section == "state" && g.chance(0.7) { // one class
			c := g.pick("haiku", "sonnet", "opus").(string)
			if classes, ok := from["classes"].(map[string]any); ok && classes[c] != nil {
				to["classes"].(map[string]any)[c] = classes[c]
			}
			continue
		}
		keys := make([]string, 0, len(from))
		for k := range from {
			keys = append(keys, k)
		}
		if len(keys) == 0 {
			continue
		}
		sort.Strings(keys)
		k := keys[g.r.IntN(len(keys))]
		to[k] = from[k]
		if k == "last_user_head" && to["keyword_task"] == nil && g.chance(0.5) {
			to["keyword_task"] = keywordTask(from[k].(string))
		}
	}
	return base
}

func (g *inputGen) request() map[string]any {
	model := genModels[g.r.IntN(len(genModels))]
	class := "other"
	for _, c := range []string{"haiku", "sonnet", "opus"} {
		if strings.Contains(model, c) {
			class = c
			break
		}
	}
	if g.chance(0.1) {
		class = g.pick("haiku", "sonnet", "opus", "other", "", "HAIKU").(string)
	}
	head := genHeads[g.r.IntN(len(genHeads))]
	task := ""
	switch {
	case g.chance(0.2):
		task = genTasks[g.r.IntN(len(genTasks))]
	case g.chance(0.05):
		task = g.pick("nonsense", "CODE", " code").(string)
	}
	r := map[string]any{
		"endpoint":         g.pick("messages", "messages", "messages", "messages", "count_tokens", "other"),
		"model":            model,
		"model_class":      class,
		"max_tokens":       g.int(0, 256, 1024, 8000),
		"stream":           g.bool(),
		"est_input_tokens": g.int(0, 40, 40, 120, 120, 610, 999, 1000, 1001, 1500, 7999, 8000, 8001, 20000, 49999, 50000, 50001, 90000),
		"system_len":       g.int(0, 64, 4000),
		"last_user_len":    g.int(0, 30, 30, 1020, 1199, 1200, 1201, 5000, 60000),
		"last_user_head":   head,
		"messages":         g.int(0, 1, 1, 2, 2, 3, 9),
		"has_tools":        g.chance(0.15),
		"thinking":         g.chance(0.1),
		"images":           g.int(0, 0, 0, 0, 0, 1, 2),
		"task":             task,
	}
	if g.chance(0.05) {
		r["has_tools"], r["thinking"] = g.bool(), g.bool()
	}
	switch {
	case g.chance(0.35): // a hand-written input: no keyword_task
	case g.chance(0.6):
		r["keyword_task"] = keywordTask(head)
	case g.chance(0.9):
		r["keyword_task"] = g.pick("", "translate", "reason", "code", "summarize", "general", "unknown")
	default:
		r["keyword_task"] = g.pick(true, 5, nil)
	}
	g.dropSome(r, 0.02)
	return r
}

// keywordTask is the gateway's match of the bundled keyword table, done
// naively: the first entry with a word in head.
func keywordTask(head string) string {
	table := [][]string{
		{"reason", "step by step", "prove", "derive", "trade-off", "tradeoff", "root cause", "analyze", "analyse", "推理", "分析"},
		{"code", "```", "refactor", "debug", "stack trace", "implement", "compile"},
		{"translate", "translat", "翻译", "into english", "into french", "into german", "into spanish", "into chinese", "into japanese"},
		{"format", "format", "as json", "to json", "as a table", "to markdown", "to yaml", "to csv", "格式化"},
		{"extract", "extract", "pull out", "list all", "find all", "提取"},
		{"summarize", "summar", "tl;dr", "tldr", "摘要", "总结"},
		{"classify", "classify", "categoriz", "categoris", "sentiment", "分类"},
	}
	for _, e := range table {
		for _, w := range e[1:] {
			if strings.Contains(head, w) {
				return e[0]
			}
		}
	}
	return ""
}

func (g *inputGen) tenant() map[string]any {
	t := map[string]any{
		"name":                g.pick("shop", "bank", ""),
		"priority":            g.pick("high", "normal", "normal", "low", "urgent!!", ""),
		"allow_model_rewrite": g.chance(0.6),
	}
	if g.chance(0.03) {
		t["allow_model_rewrite"] = g.pick("true", 1, nil)
	}
	g.dropSome(t, 0.03)
	return t
}

func (g *inputGen) state() map[string]any {
	classes := map[string]any{}
	for _, c := range []string{"haiku", "sonnet", "opus"} {
		classes[c] = g.class()
	}
	g.dropSome(classes, 0.03)
	if g.chance(0.02) {
		classes["other"] = g.class()
	}
	s := map[string]any{
		"classes":     classes,
		"queue_depth": g.int(0, 0, 0, 0, 0, 0, 5, 999, 1000, 1001, 100000),
		"ollama": map[string]any{
			"configured": g.chance(0.8),
			"healthy":    g.chance(0.8),
			"model":      g.pick("llama3.1:8b-instruct-q4_K_M", "llama3.1:8b-instruct-q4_K_M", "", "mistral"),
		},
	}
	g.dropSome(s["ollama"].(map[string]any), 0.03)
	g.dropSome(s, 0.01)
	return s
}

func (g *inputGen) class() map[string]any {
	healthy := g.chance(0.55)
	rate := func() json.Number {
		if healthy {
			return num(g.pick("0", "0", "0.0", "0.03", "0.1").(string))
		}
		return num(g.pick("0", "0.1", "0.49", "0.5", "0.50", "0.7", "0.9", "1", "1e0").(string))
	}
	headroom := num(g.pick("0.9", "1", "1.0", "0.42", "0.1", "0.10").(string))
	if !healthy {
		headroom = num(g.pick("0", "0.01", "0.02", "0.0999", "0.1", "1e-1", "0.42", "0.9").(string))
	}
	c := map[string]any{
		"headroom":          headroom,
		"cooling_down":      !healthy && g.chance(0.3),
		"cooldown_ms":       g.int(0, 20000, 30000),
		"error_rate":        rate(),
		"rate_limited_rate": rate(),
	}
	if g.chance(0.02) {
		c["cooling_down"] = g.pick("false", "true", 0, nil)
	}
	g.dropSome(c, 0.02)
	return c
}
