package guardian.route

# Tasks that a small local model does well: they may degrade to Ollama.
simple_tasks := {"translate", "format", "extract", "summarize", "classify"}

# The caller's x-guardian-task header wins when it names a known task:
# simple ones, multi-step work (reason, code, analyze, plan, agent: the
# sonnet class, never degraded), explicitly complex or long-context work
# (the opus class, never degraded) and general requests. Otherwise the task
# is detected from cheap features of the request: thinking, tools, an input
# of 50,000 estimated tokens or more (long context), then keywords.
task := input.request.task if {
	input.request.task in {
		"translate", "format", "extract", "summarize", "classify",
		"reason", "code", "analyze", "plan", "agent",
		"complex", "long_context", "general",
	}
} else := "reason" if {
	input.request.thinking == true
} else := "agent" if {
	input.request.has_tools == true
} else := "general" if {
	# No keyword and a short input: the usual case, one body instead of two.
	input.request.keyword_task == ""
	input.request.est_input_tokens < 50000
} else := "long_context" if {
	input.request.est_input_tokens >= 50000
} else := "general" if {
	input.request.keyword_task == ""
} else := input.request.keyword_task if {
	input.request.keyword_task
} else := keyword_task

# Keywords in the last user turn (input.request.last_user_head, the first
# 1 KiB, lower-cased by the gateway): the task of the first entry with a
# word that occurs in it. Edit freely: the gateway reads this table from
# the policy when it loads it, matches it against every request in one
# pass and passes the result as input.request.keyword_task ("" when no
# word occurs). The rule below is the same match in Rego, used when the
# input has no keyword_task (a hand-written input, the Rego tests).
keywords := [
	{"task": "reason", "words": [
		"step by step", "prove", "derive", "trade-off", "tradeoff", "root cause",
		"analyze", "analyse", "推理", "分析",
	]},
	{"task": "code", "words": ["```", "refactor", "debug", "stack trace", "implement", "compile"]},
	{"task": "translate", "words": [
		"translat", "翻译", "into english", "into french", "into german",
		"into spanish", "into chinese", "into japanese",
	]},
	{"task": "format", "words": [
		"format", "as json", "to json", "as a table", "to markdown", "to yaml",
		"to csv", "格式化",
	]},
	{"task": "extract", "words": ["extract", "pull out", "list all", "find all", "提取"]},
	{"task": "summarize", "words": ["summar", "tl;dr", "tldr", "摘要", "总结"]},
	{"task": "classify", "words": ["classify", "categoriz", "categoris", "sentiment", "分类"]},
]

keyword_task := hits[0] if {
	hits := [k.task |
		some k in keywords
		some word in k.words
		contains(input.request.last_user_head, word)
	]
} else := "general"
