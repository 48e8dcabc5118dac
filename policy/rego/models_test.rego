package guardian.route_test

import data.guardian.route

test_short_simple_goes_to_haiku if {
	d := route.decision with input as with_request({"last_user_head": "translate into french: good morning"})
	d.backend == "claude"
	d.model == "claude-haiku-4-5"
	d.reason == "short-simple"
	d.action == "allow"
}

test_multi_step_goes_to_sonnet if {
	d := route.decision with input as with_request({"model": "claude-haiku-4-5", "model_class": "haiku", "last_user_head": "explain step by step"})
	d.model == "claude-sonnet-4-6"
	d.reason == "multi-step"
}

test_declared_complex_goes_to_opus if {
	d := route.decision with input as with_request({"task": "complex"})
	d.model == "claude-opus-4-7"
	d.reason == "complex"
}

test_long_context_goes_to_opus if {
	d := route.decision with input as with_request({"est_input_tokens": 80000, "last_user_len": 300000})
	d.model == "claude-opus-4-7"
	d.reason == "long-context"
}

test_no_rewrite_without_tenant_consent if {
	d := route.decision with input as with_tenant({"allow_model_rewrite": false})
	d.model == "claude-sonnet-4-6"
	d.reason == "as-requested"
}

test_no_rewrite_when_already_right if {
	d := route.decision with input as with_request({"model": "claude-haiku-4-5", "model_class": "haiku"})
	d.model == "claude-haiku-4-5"
	d.reason == "as-requested"
}

test_unknown_model_class_is_kept if {
	d := route.decision with input as with_request({"model": "my-finetune", "model_class": "other"})
	d.model == "my-finetune"
	d.backend == "claude"
}

test_count_tokens_is_never_rewritten if {
	d := route.decision with input as with_request({"endpoint": "count_tokens"})
	d.model == "claude-sonnet-4-6"
}

test_long_general_request_keeps_its_model if {
	d := route.decision with input as with_request({"last_user_len": 5000, "est_input_tokens": 1500})
	d.model == "claude-sonnet-4-6"
	d.reason == "as-requested"
}
