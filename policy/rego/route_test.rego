package guardian.route_test

import data.guardian.route

test_decision_has_every_field if {
	d := route.decision with input as base
	object.keys(d) == {"backend", "model", "priority", "action", "max_wait_ms", "cache", "reason"}
}

test_priority_follows_tenant if {
	every p, wait in {"high": 60000, "normal": 30000, "low": 10000} {
		d := route.decision with input as with_tenant({"priority": p})
		d.priority == p
		d.max_wait_ms == wait
	}
}

test_bad_priority_is_normal if {
	d := route.decision with input as with_tenant({"priority": "urgent!!"})
	d.priority == "normal"
}

test_full_queue_rejects if {
	i := with_state(with_req(with_classes({"sonnet": low}), {"task": "reason"}), {"queue_depth": 1000})
	d := route.decision with input as i
	d.action == "reject"
	d.status == 429
	contains(d.message, "1000 requests are already waiting")
	d.reason == "queue-full"
}

test_tools_are_not_cached if {
	d := route.decision with input as with_request({"has_tools": true})
	d.cache == {"lookup": false, "store": false}
}

test_plain_requests_are_cached if {
	d := route.decision with input as with_tenant({"allow_model_rewrite": false})
	d.cache == {"lookup": true, "store": true}
}
