package guardian.route_test

import data.guardian.route

translate := with_request({"last_user_head": "translate into german: the parcel is late", "model": "claude-haiku-4-5", "model_class": "haiku"})

test_simple_task_degrades_on_low_headroom if {
	d := route.decision with input as object.union(translate, {"state": {"classes": {"haiku": low}}})
	d.backend == "ollama"
	d.model == "llama3.1:8b-instruct-q4_K_M"
	d.action == "allow"
	d.reason == "degraded-low-headroom"
	d.cache.store == false
}

test_simple_task_degrades_when_claude_fails if {
	failing := object.union(healthy, {"error_rate": 0.7})
	d := route.decision with input as object.union(translate, {"state": {"classes": {"haiku": failing}}})
	d.backend == "ollama"
	d.reason == "degraded-claude-failing"
}

test_simple_task_degrades_on_429s if {
	limited := object.union(healthy, {"rate_limited_rate": 0.6})
	d := route.decision with input as object.union(translate, {"state": {"classes": {"haiku": limited}}})
	d.backend == "ollama"
}

test_simple_task_degrades_while_cooling_down if {
	cooling := object.union(healthy, {"cooling_down": true, "cooldown_ms": 20000})
	d := route.decision with input as object.union(translate, {"state": {"classes": {"haiku": cooling}}})
	d.backend == "ollama"
	d.reason == "degraded-cooling-down"
}

test_declared_simple_task_degrades if {
	i := with_req(with_classes({"sonnet": low}), {"task": "format", "last_user_len": 5000, "est_input_tokens": 1500})
	d := route.decision with input as i
	d.backend == "ollama"
}

test_healthy_claude_never_degrades if {
	d := route.decision with input as translate
	d.backend == "claude"
}

test_complex_reasoning_queues_instead if {
	i := with_req(with_classes({"sonnet": low}), {"last_user_head": "prove step by step that the algorithm terminates"})
	d := route.decision with input as i
	d.backend == "claude"
	d.model == "claude-sonnet-4-6"
	d.action == "queue"
	d.max_wait_ms == 30000
	d.reason == "queued-low-headroom"
}

test_unhealthy_ollama_means_queue if {
	i := with_state(object.union(translate, {"state": {"classes": {"haiku": low}}}), {"ollama": {"healthy": false}})
	d := route.decision with input as i
	d.backend == "claude"
	d.action == "queue"
}

test_unconfigured_ollama_means_queue if {
	i := with_state(object.union(translate, {"state": {"classes": {"haiku": low}}}), {"ollama": {"configured": false, "model": ""}})
	d := route.decision with input as i
	d.backend == "claude"
	d.action == "queue"
}

test_images_never_degrade if {
	i := with_req(object.union(translate, {"state": {"classes": {"haiku": low}}}), {"images": 1})
	d := route.decision with input as i
	d.backend == "claude"
}

test_big_simple_task_stays_on_claude if {
	i := with_req(with_classes({"sonnet": low}), {"task": "summarize", "est_input_tokens": 20000, "last_user_len": 60000})
	d := route.decision with input as i
	d.backend == "claude"
	d.action == "queue"
}
