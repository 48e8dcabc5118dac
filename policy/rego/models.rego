package guardian.route

# The class the task calls for, and why: explicitly complex or long-context
# work to opus, multi-step work to sonnet, short simple requests to haiku
# (the article: prompts under about 300 tokens). A request is short when
# its last turn is under 1,200 bytes, its whole input at most 1,000
# estimated tokens, it has at most two turns and no tools, thinking or
# images. Undefined for other requests.
route := r if {
	r := {
		"complex": {"class": "opus", "reason": "complex"},
		"long_context": {"class": "opus", "reason": "long-context"},
		"reason": {"class": "sonnet", "reason": "multi-step"},
		"code": {"class": "sonnet", "reason": "multi-step"},
		"analyze": {"class": "sonnet", "reason": "multi-step"},
		"plan": {"class": "sonnet", "reason": "multi-step"},
		"agent": {"class": "sonnet", "reason": "multi-step"},
	}[task]
} else := {"class": "haiku", "reason": "short-simple"} if {
	input.request.messages <= 2
	input.request.last_user_len < 1200
	input.request.est_input_tokens <= 1000
	not input.request.has_tools
	not input.request.thinking
	input.request.images == 0
}

# The model sent to Claude. It is rewritten only for tenants that allow it
# (allow_model_rewrite in guardian.yaml, default off: never surprise a
# caller), only on the Messages endpoint and only between Claude classes;
# class_models says which model each class is rewritten to.
target := {"class": route.class, "model": class_models[route.class], "reason": route.reason} if {
	input.tenant.allow_model_rewrite == true
	input.request.endpoint == "messages"
	input.request.model_class in {"haiku", "sonnet", "opus"}
	route.class != input.request.model_class
} else := {"class": input.request.model_class, "model": input.request.model, "reason": "as-requested"}

class_models := {
	"haiku": "claude-haiku-4-5",
	"sonnet": "claude-sonnet-4-6",
	"opus": "claude-opus-4-7",
}
