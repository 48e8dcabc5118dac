package guardian.route_test

import data.guardian.route

test_declared_task_wins_over_keywords if {
	route.task == "code" with input as with_request({"task": "code", "last_user_head": "translate this"})
}

test_unknown_declared_task_is_ignored if {
	route.task == "translate" with input as with_request({"task": "nonsense", "last_user_head": "translate this"})
}

test_thinking_is_reasoning if {
	route.task == "reason" with input as with_request({"thinking": true})
}

test_tools_are_agentic if {
	route.task == "agent" with input as with_request({"has_tools": true, "last_user_head": "translate this"})
}

test_long_input_is_long_context if {
	route.task == "long_context" with input as with_request({"est_input_tokens": 60000})
}

test_keywords if {
	every head, want in {
		"please translate this sentence": "translate",
		"翻译成中文": "translate",
		"reformat this list as json": "format",
		"extract the phone numbers": "extract",
		"tl;dr of this mail": "summarize",
		"classify the sentiment": "classify",
		"explain step by step why the cache misses": "reason",
		"refactor this go function": "code",
		"hello there": "general",
	} {
		route.task == want with input as with_request({"last_user_head": head})
	}
}
