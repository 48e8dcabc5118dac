package extproc

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/claude-guardian/claude-guardian/anthropic"
	"github.com/claude-guardian/claude-guardian/internal/breaker"
	"github.com/claude-guardian/claude-guardian/keypool"
)

// Upstream is the processor Envoy runs as an upstream filter of the
// anthropic cluster: once per attempt, retries included, with request
// headers SEND, response headers SEND and no bodies. It puts a pool key on
// the attempt and learns from Anthropic's answer.
//
// Envoy hands every attempt the same request header map, so a retry sees
// the previous attempt's mutations: the processor strips every internal
// header except x-guardian-request-id (an opaque id that reaches Anthropic),
// which each attempt needs to find the request's reservation.
type Upstream struct {
	pool    *keypool.Pool
	tickets keypool.Tickets // nil: no reservations, keys by Pick
	log     *slog.Logger
}

// NewUpstream builds the upstream processor.
func NewUpstream(pool *keypool.Pool, log *slog.Logger) *Upstream {
	return &Upstream{pool: pool, log: log}
}

// WithTickets makes each attempt use the account the front reserved on
// (tickets written by the front's admission), and move the reservation to
// another account when Anthropic refuses the attempt.
func (u *Upstream) WithTickets(t keypool.Tickets) *Upstream {
	u.tickets = t
	return u
}

// NewStream implements [StreamFactory].
func (u *Upstream) NewStream(context.Context) StreamProcessor {
	return &upstreamStream{u: u}
}

type upstreamStream struct {
	u         *Upstream
	key       *keypool.Key
	requestID string
	ticket    keypool.Ticket
	res       *keypool.Reservation // the reservation this attempt uses
	sent      time.Time            // when the attempt got its key
}

// ProcessRequestHeaders implements [RequestHeadersProcessor].
func (s *upstreamStream) ProcessRequestHeaders(ctx context.Context, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	remove := []string{"authorization"}
	retry := false
	for _, hv := range h.GetHeaders().GetHeaders() {
		if hv.Key == "x-envoy-attempt-count" {
			retry = headerValue(hv) != "1"
		}
		if k := hv.Key; strings.HasPrefix(k, InternalPrefix) {
			if k == HeaderRequestID {
				s.requestID = headerValue(hv)
				continue // kept for the next attempts
			}
			remove = appendOnce(remove, k)
		}
	}
	if s.u.tickets != nil && s.requestID != "" {
		if t, ok, err := s.u.tickets.Get(ctx, s.requestID); err != nil {
			s.u.log.Log(ctx, breaker.LogLevel(err), "reservation not readable: picking a key", "request_id", s.requestID, "err", err)
		} else if ok {
			s.ticket, s.res = t, s.u.pool.Resume(t)
		}
	}
	if s.res != nil {
		s.key = s.res.KeyFor()
	}
	if s.key == nil {
		s.key = s.u.pool.Pick()
	}
	s.sent = s.u.pool.Now()
	mut := &extprocv3.HeaderMutation{RemoveHeaders: remove}
	if s.key != nil && retry {
		s.u.pool.Metrics().Retried(s.key.Account.Name)
	}
	if s.key != nil {
		mut.SetHeaders = []*corev3.HeaderValueOption{setHeader("x-api-key", s.key.Secret())}
	} else {
		// Upstream filters cannot answer locally (Envoy ignores an
		// immediate response there); Anthropic will answer 401.
		mut.RemoveHeaders = append(mut.RemoveHeaders, "x-api-key")
		s.u.log.Error("no usable pool key for an upstream attempt", "request_id", s.requestID)
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: mut}},
	}}, nil
}

// ProcessResponseHeaders implements [ResponseHeadersProcessor]: the status
// and anthropic-ratelimit-* headers update the account; the account's name
// goes back to the front processor in an internal header. When Anthropic
// refuses the attempt (429, 529, 5xx) and another account can take the
// request, the reservation moves there and retry-after is removed, so that
// Envoy retries at once (with its short back-off) instead of waiting for
// this account's reset.
func (s *upstreamStream) ProcessResponseHeaders(ctx context.Context, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	if s.key == nil {
		return continueResponseHeaders, nil
	}
	var reading anthropic.RateLimitReading
	status := 0
	for _, hv := range h.GetHeaders().GetHeaders() {
		if hv.Key == ":status" {
			status, _ = strconv.Atoi(headerValue(hv))
			continue
		}
		reading.Observe(hv.Key, headerValue(hv))
	}
	class := keypool.Sonnet
	if s.res != nil {
		class = s.res.Class
	}
	s.u.pool.ObserveSent(s.key, class, status, &reading, s.sent)
	mut := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
		setHeader(HeaderAccount, s.key.Account.Name),
	}}
	if refused(status) && s.res != nil {
		if s.moveReservation(ctx) {
			mut.RemoveHeaders = []string{"retry-after", "retry-after-ms"}
		}
	}
	if status == http.StatusUnauthorized && s.key.Disabled() != "" && s.retryElsewhere(ctx) {
		// The key was revoked (ObserveSent took it out of service) and the
		// caller never sent it: retry with another.
		mut.SetHeaders = append(mut.SetHeaders, setHeader(HeaderRetry, "key"))
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
		ResponseHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: mut}},
	}}, nil
}

// retryElsewhere reports whether a retry has a key and a reservation to
// go with: another key of the reservation's account, or the reservation
// moved to another account (a request without one takes any key).
func (s *upstreamStream) retryElsewhere(ctx context.Context) bool {
	if s.res == nil {
		return s.u.pool.Usable()
	}
	return s.res.Account.InService() || s.moveReservation(ctx)
}

// refused reports a status Envoy's retry policy retries and that consumed
// nothing at Anthropic.
func refused(status int) bool {
	return status == http.StatusTooManyRequests || status == 529 || status >= 500
}

// moveReservation takes the request's reservation to another account with
// headroom, for the retry; it reports whether it did.
func (s *upstreamStream) moveReservation(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	// The ticket names the new account before the old reservation is
	// refunded: a failed write leaves the request where it was.
	moved, _, err := s.u.pool.Move(ctx, s.res, s.ticket.Model, func(moved *keypool.Reservation) error {
		return s.u.tickets.Put(ctx, s.requestID, keypool.TicketOf(moved, s.ticket.Model))
	})
	if err != nil {
		s.u.log.Log(ctx, breaker.LogLevel(err), "reservation not moved: the retry keeps its account", "request_id", s.requestID, "err", err)
	}
	return err == nil && moved != nil
}

// Close implements [StreamProcessor].
func (s *upstreamStream) Close(StreamEnd) {}
