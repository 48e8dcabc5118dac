package guardian.route

# Tasks that a small local model does well: they may degrade to Ollama.
simple_tasks := {"translate", "format", "extract", "summarize", "classify"}

# Every task the policy knows: simple ones, multi-step work (reason, code,
# analyze, plan, agent: the sonnet class, never degraded), explicitly
# complex or long-context work (the opus class, never degraded) and
# general requests.
known_tasks := {
	"translate", "format", "extract", "summarize", "classify",
	"reason", "code", "analyze", "plan", "agent",
	"complex", "long_context", "general",
}

# The caller's x-guardian-task header wins when it names a known task;
# otherwise the task is detected from cheap features of the request:
# thinking, tools, an input of 50,000 estimated tokens or more (long
# context), then keywords.
task := input.request.task if {
	input.request.task in known_tasks
} else := detected_task

detected_task := "reason" if {
	input.request.thinking
} else := "agent" if {
	input.request.has_tools
} else := "long_context" if {
	input.request.est_input_tokens >= 50000
} else := "reason" if {
	"reason" in keyword_tasks
} else := "code" if {
	"code" in keyword_tasks
} else := "translate" if {
	"translate" in keyword_tasks
} else := "format" if {
	"format" in keyword_tasks
} else := "extract" if {
	"extract" in keyword_tasks
} else := "summarize" if {
	"summarize" in keyword_tasks
} else := "classify" if {
	"classify" in keyword_tasks
} else := "general"

# The tasks whose keywords occur in input.request.last_user_head (the first
# 1 KiB of the last user turn, lower-cased by the gateway). One pass of
# contains over the table: cheaper in OPA than a regular expression or a
# function per task.
keyword_tasks := {task | some word, task in keywords; contains(input.request.last_user_head, word)}

keywords := {
	"step by step": "reason", "prove": "reason", "derive": "reason", "trade-off": "reason",
	"tradeoff": "reason", "root cause": "reason", "analyze": "reason", "analyse": "reason",
	"推理": "reason", "分析": "reason",
	"```": "code", "refactor": "code", "debug": "code", "stack trace": "code",
	"implement": "code", "compile": "code",
	"translat": "translate", "翻译": "translate", "into english": "translate",
	"into french": "translate", "into german": "translate", "into spanish": "translate",
	"into chinese": "translate", "into japanese": "translate",
	"format": "format", "as json": "format", "to json": "format", "as a table": "format",
	"to markdown": "format", "to yaml": "format", "to csv": "format", "格式化": "format",
	"extract": "extract", "pull out": "extract", "list all": "extract", "find all": "extract",
	"提取": "extract",
	"summar": "summarize", "tl;dr": "summarize", "tldr": "summarize", "摘要": "summarize",
	"总结": "summarize",
	"classify": "classify", "categoriz": "classify", "categoris": "classify",
	"sentiment": "classify", "分类": "classify",
}
