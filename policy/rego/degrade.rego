package guardian.route

# Why Claude is in trouble for the target class, "" if it is not: pool
# headroom under 10 %, every account serving the class cooling down after
# a 429, or half of its recent upstream responses errors or 429s. A class
# without state (a model outside haiku, sonnet and opus) is never in
# trouble.
trouble := "" if {
	# The usual case first: one body instead of four.
	c := input.state.classes[target.class]
	c.headroom >= 0.1
	c.cooling_down == false
	c.error_rate < 0.5
	c.rate_limited_rate < 0.5
} else := "low-headroom" if {
	input.state.classes[target.class].headroom < 0.1
} else := "cooling-down" if {
	input.state.classes[target.class].cooling_down
} else := "claude-failing" if {
	input.state.classes[target.class].error_rate >= 0.5
} else := "claude-failing" if {
	input.state.classes[target.class].rate_limited_rate >= 0.5
} else := ""

# Simple tasks go to Ollama while Claude is in trouble and Ollama is healthy;
# complex reasoning never does: it queues for Claude (decision in
# route.rego). Inputs over 8,000 estimated tokens stay on Claude: a small
# local model is slow on long inputs; so do images and thinking.
degrade if {
	task in simple_tasks
	trouble != ""
	input.request.endpoint == "messages"
	input.state.ollama.configured
	input.state.ollama.healthy
	input.state.ollama.model != ""
	input.request.est_input_tokens <= 8000
	input.request.images == 0
	not input.request.thinking
}
