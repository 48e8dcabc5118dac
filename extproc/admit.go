package extproc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/claude-guardian/claude-guardian/admission"
	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/internal/breaker"
	"github.com/claude-guardian/claude-guardian/keypool"
)

// HeaderQueueWait tells the caller how long its request waited for pool
// capacity, in milliseconds.
const HeaderQueueWait = "x-guardian-queue-wait-ms"

// Outcomes of admission.
const (
	OutcomeQueueTimeout    = "queue_timeout"
	OutcomeTooLargeForPool = "too_large_for_pool"
)

// FrontAdmission connects the front processor to the key pool: every
// Messages request to Claude reserves capacity before it goes upstream,
// waiting in the admission queue when no account has it.
type FrontAdmission struct {
	Queue   *admission.Queue
	Pool    *keypool.Pool
	Tickets keypool.Tickets
	// MaxWait is the default deadline in the queue (the policy's max wait
	// lowers it per request).
	MaxWait time.Duration
	// OutputTokens maps max_tokens to the output reservation.
	OutputTokens func(maxTokens int64) int64
	// Affinity keeps conversations on one account.
	Affinity bool
}

// WithAdmission makes the front reserve before sending. Without it the
// front sends without reservations (the upstream processor picks keys).
func (f *Front) WithAdmission(a FrontAdmission) *Front {
	if a.OutputTokens == nil {
		a.OutputTokens = func(n int64) int64 { return n }
	}
	f.admit = &a
	return f
}

// priorities maps priority classes to queue priorities.
var priorities = map[string]int{"high": 2, "normal": 1, "low": 0}

// admit reserves pool capacity for the request to model, waiting in the
// queue. It returns the response to send instead when the request cannot
// be admitted.
func (s *frontStream) admit(ctx context.Context, model string) *extprocv3.ProcessingResponse {
	a, req := s.f.admit, s.req
	need := keypool.Need{Model: model, Input: req.EstimatedInputTokens, Output: a.OutputTokens(req.MaxTokens),
		Tenant: s.tenant.Name, TenantConcurrency: s.tenant.Concurrency}
	if a.Affinity {
		need.Affinity = req.Conversation
	}
	prio := s.tenant.Priority
	if s.decision.Priority != "" {
		prio = s.decision.Priority
	}
	p, ok := priorities[prio]
	if !ok {
		p = priorities["normal"]
	}
	wait := a.MaxWait
	if ms := s.decision.MaxWaitMS; ms > 0 && time.Duration(ms)*time.Millisecond < wait {
		wait = time.Duration(ms) * time.Millisecond
	}
	start := time.Now()
	r, err := a.Queue.Admit(ctx, admission.Ticket{Tenant: s.tenant.Name, Priority: p, Need: need, Deadline: start.Add(wait)})
	s.queueWait = time.Since(start)
	var rej *admission.Rejection
	switch {
	case err == nil:
		s.reservation, s.reservedModel = r, model
		if err := a.Tickets.Put(ctx, s.requestID, keypool.TicketOf(r, model)); err != nil {
			s.f.log.Log(ctx, breaker.LogLevel(err), "reservation not written down: the upstream processor will pick a key on its own", "request_id", s.requestID, "err", err)
		}
		return nil
	case errors.As(err, &rej) && rej.Reason == "deadline":
		secs := max(1, int64(math.Ceil(rej.RetryAfter.Seconds())))
		return s.rejectWith(OutcomeQueueTimeout, http.StatusTooManyRequests, anthropic.RateLimitError,
			fmt.Sprintf("claude-guardian: no Anthropic account had capacity for this request within %v; retry after %d s", wait.Round(time.Millisecond), secs),
			setHeader("retry-after", strconv.FormatInt(secs, 10)), s.queueWaitHeader())
	case errors.As(err, &rej) && rej.Reason == "too_large":
		return s.rejectWith(OutcomeTooLargeForPool, http.StatusTooManyRequests, anthropic.RateLimitError,
			fmt.Sprintf("claude-guardian: this request (%d input tokens estimated, %d output reserved) is larger than any account's per-minute limits for %s; reduce the prompt or max_tokens",
				need.Input, need.Output, model),
			setHeader("x-should-retry", "false"))
	case errors.As(err, &rej) && rej.Reason == "no_key":
		return s.rejectNoKey()
	case errors.As(err, &rej) && rej.Reason == "cancelled":
		s.outcome = OutcomeAbandoned
		return errorResponse(499, anthropic.APIError, "the client went away while the request waited", s.requestID)
	}
	// The pool's state is unreachable (Redis down): let the request go
	// without a reservation rather than fail it; Anthropic's own limits and
	// the retry policy still apply.
	s.f.log.Log(ctx, breaker.LogLevel(err), "admission failed: sending without a reservation", "request_id", s.requestID, "err", err)
	return nil
}

func (s *frontStream) queueWaitHeader() *corev3.HeaderValueOption {
	return setHeader(HeaderQueueWait, strconv.FormatInt(s.queueWait.Milliseconds(), 10))
}

// settleReservation ends the request's reservation with its real usage,
// on the account that finally served it (a retry may have moved it).
func (s *frontStream) settleReservation(u anthropic.Usage, reached bool) {
	a := s.f.admit
	if a == nil || s.reservation == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := s.reservation
	r.StopRenewing() // whoever settles releases the leases
	if t, ok, err := a.Tickets.Get(ctx, s.requestID); err == nil && ok {
		if moved := a.Pool.Resume(t); moved != nil {
			r = moved
		}
	}
	if err := a.Pool.Settle(ctx, r, u, reached); err != nil {
		s.f.log.Log(ctx, breaker.LogLevel(err), "reservation not settled", "request_id", s.requestID, "err", err)
	}
	a.Pool.Release(s.reservation) // counted in flight here until now, wherever it was settled
	if err := a.Tickets.Delete(ctx, s.requestID); err != nil {
		s.f.log.Log(ctx, breaker.LogLevel(err), "ticket not deleted (it expires)", "request_id", s.requestID, "err", err)
	}
	s.reservation = nil
}
