# Package guardian.route decides where a Messages request goes. The Go
# engine evaluates data.guardian.route.decision once per request; the input
# and the decision are described in policy/schema/input.json and
# policy/schema/output.json.
#
# This file assembles the decision; task.rego detects the task, models.rego
# picks the Claude model, degrade.rego decides between Claude, Ollama and
# waiting.
#
# Performance: OPA's cost is per rule body it evaluates, and its rule index
# skips, without evaluating them, bodies whose conditions compare an input
# field with a constant (x == "a", x == true, x in {"a", "b"}). So the rules
# are few, the usual case comes first, and conditions on input are written
# in those forms (a field documented as boolean is compared with true).
# BenchmarkDecide and TestDecideAllocations (policy/bench_test.go) measure
# a decision.
package guardian.route

# Claude is fine for the target class (the usual case): allow. Cache: tool
# calls depend on state outside the request, so they are never served from
# cache; only Claude's answers are stored (a degraded answer must not be
# replayed once Claude is back). Written as lookups by has_tools rather
# than as a rule: each rule a decision enters costs OPA about ten
# allocations.
decision := {
	"backend": "claude",
	"model": target.model,
	"priority": priority,
	"action": "allow",
	"max_wait_ms": {"high": 60000, "normal": 30000, "low": 10000}[priority],
	"cache": {true: {"lookup": false, "store": false}, false: {"lookup": true, "store": true}}[input.request.has_tools],
	"reason": target.reason,
} if {
	trouble == ""
} else := {
	"backend": "ollama",
	"model": input.state.ollama.model,
	"priority": priority,
	"action": "allow",
	"max_wait_ms": {"high": 60000, "normal": 30000, "low": 10000}[priority],
	"cache": {true: {"lookup": false, "store": false}, false: {"lookup": true, "store": false}}[input.request.has_tools],
	"reason": concat("-", ["degraded", trouble]),
} if {
	degrade
} else := {
	# A request that has to wait for Claude is turned away once 1,000 are
	# already waiting (the article alerts there).
	"backend": "claude",
	"model": target.model,
	"priority": priority,
	"action": "reject",
	"status": 429,
	"message": sprintf("claude-guardian: Claude's %s capacity is exhausted and %d requests are already waiting; retry later", [target.class, input.state.queue_depth]),
	"max_wait_ms": 0,
	"cache": {"lookup": false, "store": false},
	"reason": "queue-full",
} if {
	input.state.queue_depth >= 1000
} else := {
	"backend": "claude",
	"model": target.model,
	"priority": priority,
	"action": "queue",
	"max_wait_ms": {"high": 60000, "normal": 30000, "low": 10000}[priority],
	"cache": {true: {"lookup": false, "store": false}, false: {"lookup": true, "store": true}}[input.request.has_tools],
	"reason": concat("-", ["queued", trouble]),
}

# The tenant's priority class (guardian.yaml clients[].priority).
priority := input.tenant.priority if {
	input.tenant.priority in {"high", "normal", "low"}
} else := "normal"
