package guardian.route_test

# A short, tool-free request from a tenant that allows rewriting, with
# Claude healthy and Ollama up. Tests change what they need with with_*.
base := {
	"request": {
		"endpoint": "messages",
		"model": "claude-sonnet-4-6",
		"model_class": "sonnet",
		"max_tokens": 512,
		"stream": false,
		"est_input_tokens": 120,
		"system_len": 0,
		"last_user_len": 40,
		"last_user_head": "hello there, how are you today?",
		"messages": 1,
		"has_tools": false,
		"thinking": false,
		"images": 0,
		"task": "",
	},
	"tenant": {"name": "shop", "priority": "normal", "allow_model_rewrite": true},
	"state": {
		"classes": {
			"haiku": healthy,
			"sonnet": healthy,
			"opus": healthy,
		},
		"queue_depth": 0,
		"ollama": {"configured": true, "healthy": true, "model": "llama3.1:8b-instruct-q4_K_M"},
	},
	"time": {"unix_ms": 1795867200000, "hour_utc": 12, "weekday": 6},
}

healthy := {"headroom": 0.9, "cooling_down": false, "cooldown_ms": 0, "error_rate": 0, "rate_limited_rate": 0}

low := object.union(healthy, {"headroom": 0.02})

# with_request returns base with request fields replaced.
with_request(fields) := object.union(base, {"request": fields})

with_tenant(fields) := object.union(base, {"tenant": fields})

# with_classes replaces the state of the named classes.
with_classes(classes) := object.union(base, {"state": {"classes": classes}})

with_state(i, fields) := object.union(i, {"state": fields})

with_req(i, fields) := object.union(i, {"request": fields})
