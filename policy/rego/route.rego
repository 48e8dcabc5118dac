# Package guardian.route decides where a Messages request goes. The Go
# engine evaluates data.guardian.route.decision once per request; the input
# and the decision are described in policy/schema/input.json and
# policy/schema/output.json.
#
# This file assembles the decision; task.rego detects the task, models.rego
# picks the Claude model, degrade.rego decides between Claude, Ollama and
# waiting. The rules are few and wide on purpose: OPA spends most of a
# decision's time entering rules, so a decision touches about ten.
package guardian.route

decision := {
	"backend": outcome.backend,
	"model": outcome.model,
	"priority": priority,
	"action": outcome.action,
	"max_wait_ms": {"high": 60000, "normal": 30000, "low": 10000}[priority],
	"cache": cache,
	"reason": outcome.reason,
} if outcome.action != "reject"

decision := {
	"backend": outcome.backend,
	"model": outcome.model,
	"priority": priority,
	"action": "reject",
	"status": 429,
	"message": sprintf("claude-guardian: Claude's %s capacity is exhausted and %d requests are already waiting; retry later", [target.class, input.state.queue_depth]),
	"max_wait_ms": 0,
	"cache": {"lookup": false, "store": false},
	"reason": outcome.reason,
} if outcome.action == "reject"

# The tenant's priority class (guardian.yaml clients[].priority).
priority := input.tenant.priority if {
	input.tenant.priority in {"high", "normal", "low"}
} else := "normal"

# Where the request goes and why. A request that has to wait for Claude is
# turned away once 1,000 are already waiting (the article alerts there).
outcome := {"backend": "ollama", "model": input.state.ollama.model, "action": "allow", "reason": concat("-", ["degraded", trouble])} if {
	degrade
} else := {"backend": "claude", "model": target.model, "action": "reject", "reason": "queue-full"} if {
	trouble
	input.state.queue_depth >= 1000
} else := {"backend": "claude", "model": target.model, "action": "queue", "reason": concat("-", ["queued", trouble])} if {
	trouble
} else := {"backend": "claude", "model": target.model, "action": "allow", "reason": target.reason}

# Tool calls depend on state outside the request: never served from cache.
# Only Claude's answers are stored: a degraded answer must not be replayed
# once Claude is back.
cache := {"lookup": false, "store": false} if {
	input.request.has_tools
} else := {"lookup": true, "store": false} if {
	degrade
} else := {"lookup": true, "store": true}
