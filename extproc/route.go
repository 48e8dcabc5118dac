package extproc

import (
	"context"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/policy"
)

// Headers of the routing policy.
const (
	// HeaderTask is the caller's declared task (translate, format, reason,
	// …). The front reads it for the policy and removes it, like every
	// x-guardian-* request header.
	HeaderTask = "x-guardian-task"
	// HeaderRoute tells the caller where its request went and why:
	// "claude; model=claude-haiku-4-5; reason=short-simple".
	HeaderRoute = "x-guardian-route"
	// HeaderOriginalModel is the model the caller asked for, on responses
	// whose model the policy changed.
	HeaderOriginalModel = "x-guardian-original-model"
)

// OutcomeRejected: the policy rejected the request.
const OutcomeRejected = "policy_rejected"

// FrontPolicy connects the front processor to the routing policy.
type FrontPolicy struct {
	Engine *policy.Engine
	State  policy.StateSource
	// Rates records Claude's response statuses per model class (nil: not
	// recorded).
	Rates *policy.UpstreamRates
	// Ollama hears about failed Ollama responses (nil: not reported).
	Ollama interface{ ReportFailure() }
	Now    func() time.Time
}

// WithPolicy makes the front evaluate the routing policy for every
// Messages request and apply its decision. Without it the front sends
// every request to Claude unchanged.
func (f *Front) WithPolicy(p FrontPolicy) *Front {
	if p.Now == nil {
		p.Now = time.Now
	}
	f.policy = &p
	return f
}

// route is how a request leaves the front.
type route struct {
	backend, model string
	body           *extprocv3.BodyMutation
	headers        []*corev3.HeaderValueOption
	reject         *extprocv3.ProcessingResponse
}

// route evaluates the policy (Messages requests only) and turns its
// decision into the request's mutations. Without a policy: Claude, model
// unchanged.
func (s *frontStream) route(ctx context.Context, body []byte) route {
	rt := route{backend: BackendClaude, model: s.req.Model}
	p := s.f.policy
	if p == nil || s.endpoint != anthropic.Messages {
		return rt
	}
	r := s.req
	in := policy.Input{
		Request: policy.Request{
			Endpoint: "messages", Model: r.Model, MaxTokens: r.MaxTokens, Stream: r.Stream,
			EstInputTokens: r.EstimatedInputTokens, SystemLen: r.SystemBytes, LastUserLen: len(r.LastUserText),
			LastUserHead: policy.Head(r.LastUserText), Messages: r.Messages, HasTools: r.HasTools,
			Thinking: r.Thinking, Images: r.Images, Task: s.task,
		},
		Tenant: s.tenant.Policy,
		State:  p.State.PolicyState(),
		Now:    p.Now(),
	}
	d, _ := p.Engine.Decide(ctx, &in, s.requestID) // failures are logged, counted and replaced by the safe default
	if d.Model != r.Model && d.Action != policy.ActionReject {
		nb, err := replaceModel(body, d.Model)
		if err != nil {
			s.f.log.Warn("model rewrite failed: sending the request to Claude unchanged", "request_id", s.requestID, "err", err)
			d = policy.SafeDefault(&in)
		} else {
			rt.body = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: nb}}
			// BUFFERED body with request headers SEND: Envoy keeps
			// content-length and answers 500 if it does not match the
			// mutated body, so it is set to the new length.
			rt.headers = append(rt.headers, setHeader("content-length", strconv.Itoa(len(nb))))
			s.originalModel = r.Model
		}
	}
	s.decision = d
	s.routeHeader = d.Backend + "; model=" + d.Model + "; reason=" + d.Reason
	if d.Action == policy.ActionReject {
		rt.reject = s.rejectWith(OutcomeRejected, d.Status, anthropic.ErrorTypeFor(d.Status), d.Message,
			setHeader(HeaderRoute, s.routeHeader))
		return rt
	}
	rt.backend, rt.model = d.Backend, d.Model
	if d.Backend == policy.BackendOllama {
		rt.backend = BackendOllama
		s.account = "ollama"
	}
	return rt
}

// servedModel is the model the request was sent with.
func (s *frontStream) servedModel() string {
	if s.decision.Model != "" {
		return s.decision.Model
	}
	return s.req.Model
}

// observeUpstream tells the policy's state how the backend answered. The
// ratelimit filter's own 429 (a tenant over its budget) is not the
// backend's answer: counted, one tenant's overspending would look like
// Claude refusing everyone and degrade every tenant to Ollama.
func (s *frontStream) observeUpstream() {
	p := s.f.policy
	if p == nil || s.decision.Backend == "" || s.rateLimited {
		return
	}
	switch {
	case s.decision.Backend == policy.BackendOllama:
		if s.status >= 500 && p.Ollama != nil {
			p.Ollama.ReportFailure()
		}
	case p.Rates != nil:
		p.Rates.Observe(s.decision.Model, s.status, p.Now())
	}
}

// routeHeaders are the response headers telling the caller how its request
// was routed.
func (s *frontStream) routeHeaders(set []*corev3.HeaderValueOption) []*corev3.HeaderValueOption {
	if s.routeHeader != "" {
		set = append(set, setHeader(HeaderRoute, s.routeHeader))
	}
	if s.originalModel != "" {
		set = append(set, setHeader(HeaderOriginalModel, s.originalModel))
	}
	return set
}

// declaredTask reads x-guardian-task: lower-cased, at most 64 bytes of
// a-z, 0-9, '_' and '-'; anything else counts as not declared.
func declaredTask(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if len(v) > 64 {
		return ""
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return ""
		}
	}
	return v
}
