package fakeanthropic

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxBodyBytes is the request size limit of Messages and count_tokens.
const MaxBodyBytes = 32 << 20

const (
	pathMessages    = "/v1/messages"
	pathCountTokens = "/v1/messages/count_tokens"
)

// exchange is the state of one request being served.
type exchange struct {
	s    *Server
	w    http.ResponseWriter
	r    *http.Request
	rec  RecordedRequest
	acct *accountState
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	x := &exchange{s: s, w: w, r: r}
	x.rec = RecordedRequest{
		Time: s.now(), Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), RequestID: newID("req"),
	}
	w.Header().Set("request-id", x.rec.RequestID)
	defer func() { s.recorder.add(x.rec) }()
	x.serve()
}

func (x *exchange) serve() {
	var countTokens bool
	switch x.r.URL.Path {
	case pathMessages:
	case pathCountTokens:
		countTokens = true
	default:
		x.fail(errf(http.StatusNotFound, ErrNotFound, "Not Found"))
		return
	}
	if x.r.Method != http.MethodPost {
		x.w.Header().Set("Allow", http.MethodPost)
		x.fail(errf(http.StatusMethodNotAllowed, ErrInvalidRequest, "Method Not Allowed"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(x.r.Body, MaxBodyBytes+1))
	if err != nil {
		x.fail(invalid("could not read the request body"))
		return
	}
	if len(body) > MaxBodyBytes {
		x.fail(errf(http.StatusRequestEntityTooLarge, ErrRequestTooLarge, "Request exceeds the maximum allowed number of bytes."))
		return
	}
	x.rec.Body = body

	if e := x.authenticate(); e != nil {
		x.fail(e)
		return
	}
	x.w.Header().Set("anthropic-organization-id", x.acct.orgID)
	x.count(func(c *Counters) {
		if countTokens {
			c.CountTokens++
		} else {
			c.Requests++
		}
	})
	if x.forbidden() {
		x.fail(errf(http.StatusForbidden, ErrPermission, "Your API key does not have permission to use the specified resource."))
		return
	}
	version := x.r.Header.Get("anthropic-version")
	switch version {
	case Version2023, Version2026:
	case "":
		x.fail(invalid("anthropic-version: header is required"))
		return
	default:
		x.fail(invalid(fmt.Sprintf("anthropic-version: %q is not a valid version", version)))
		return
	}
	req, e := parseRequest(body, version, countTokens)
	if e != nil {
		x.fail(e)
		return
	}
	x.rec.Parsed = req
	segs := segments(req)
	if countTokens {
		n := totalTokens(segs)
		x.rec.InputTokens = n
		x.writeJSON(http.StatusOK, CountTokensResponse{InputTokens: n})
		return
	}
	target, e := outputTarget(x.r, &x.s.cfg, totalTokens(segs))
	if e != nil {
		x.fail(e)
		return
	}

	f, faulted := x.s.faults.take(x.acct.name, req.Stream)
	if faulted {
		x.rec.Fault = f.Kind
		x.count(func(c *Counters) { c.Faults++ })
		switch f.Kind {
		case FaultOverloaded:
			x.fail(errf(529, ErrOverloaded, "Overloaded"))
			return
		case FaultAPIError:
			x.fail(errf(http.StatusInternalServerError, ErrAPI, "Internal server error"))
			return
		case FaultSpendCap:
			x.fail(spendCapError())
			return
		case FaultRateLimited:
			secs := max(int64(1), int64(math.Ceil(f.RetryAfter.Seconds())))
			x.w.Header().Set("retry-after", strconv.FormatInt(secs, 10))
			x.fail(errf(http.StatusTooManyRequests, ErrRateLimit,
				"This request would exceed your organization's rate limit. Please try again later."))
			return
		case FaultDropBeforeHeaders:
			x.drop()
			return
		case FaultDelayHeaders:
			if !sleepCtx(x.r.Context(), f.Delay) {
				x.rec.ErrorType = "client_gone"
				return
			}
		}
	}
	x.messages(req, segs, target, f)
}

func spendCapError() *apiError {
	e := errf(http.StatusTooManyRequests, ErrRateLimit,
		"You have reached your API usage limits. You will regain access when your usage limits reset or you raise them.")
	e.details = &ErrorDetails{ErrorCode: "enforced_spend_limit_reached"}
	return e
}

// authenticate resolves the caller's account.
func (x *exchange) authenticate() *apiError {
	key, from := x.r.Header.Get("x-api-key"), "x-api-key"
	if key == "" {
		if a := x.r.Header.Get("Authorization"); a != "" {
			from = "authorization"
			if k, ok := strings.CutPrefix(a, "Bearer "); ok {
				key = strings.TrimSpace(k)
			}
		}
	}
	if key == "" && from == "x-api-key" {
		return errf(http.StatusUnauthorized, ErrAuthentication, "x-api-key header is required")
	}
	x.rec.Credential, x.rec.CredentialHeader = key, from
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	a, ok := x.s.keys[key]
	if !ok || x.s.revoked[key] {
		return errf(http.StatusUnauthorized, ErrAuthentication, "invalid x-api-key")
	}
	x.acct = a
	x.rec.Account = a.name
	return nil
}

func (x *exchange) forbidden() bool {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	return x.acct.forbidden
}

func (x *exchange) count(f func(*Counters)) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	f(&x.acct.usage)
}

// setHeadersLocked sets the rate-limit headers; caller holds s.mu.
func (x *exchange) setHeadersLocked(now time.Time) {
	if x.acct != nil {
		setRateLimitHeaders(x.w.Header(), x.acct, now)
	}
}

// fail writes an error answer, with rate-limit headers once authenticated.
func (x *exchange) fail(e *apiError) {
	if x.acct != nil {
		x.s.mu.Lock()
		x.setHeadersLocked(x.s.now())
		if e.status != http.StatusTooManyRequests && e.status < 500 && e.status >= 400 {
			x.acct.usage.ClientErrors++
		}
		x.s.mu.Unlock()
	}
	x.rec.Status, x.rec.ErrorType = e.status, e.typ
	writeError(x.w, e)
}

func (x *exchange) writeJSON(status int, v any) {
	x.s.mu.Lock()
	x.setHeadersLocked(x.s.now())
	x.s.mu.Unlock()
	x.rec.Status = status
	x.rec.Completed = true
	writeJSON(x.w, status, v)
}

// drop closes the connection without a (complete) answer.
func (x *exchange) drop() {
	conn, _, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		// HTTP/2 or a recorder: aborting the handler is the only way net/http
		// offers to reset the response.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// axis names a rate-limit dimension in 429 messages.
type axis struct {
	b      *bucket
	need   float64
	limit  int64
	phrase string
}

// admit charges the request's needs or answers 429. On success the plan's
// cache writes are committed. Caller must not hold s.mu.
func (x *exchange) admit(req *MessagesRequest, plan *cachePlan, segs []segment) bool {
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	a := x.acct
	if a.spendCapped {
		a.usage.SpendCapped++
		x.setHeadersLocked(now)
		x.rec.Status, x.rec.ErrorType = http.StatusTooManyRequests, ErrRateLimit
		writeError(x.w, spendCapError())
		return false
	}
	*plan = planCache(a, req.Model, segs, now, s.cfg.MinCacheableTokens)
	outNeed := 1.0
	if s.cfg.OTPMAtStart {
		outNeed = float64(req.MaxTokens)
	}
	axes := []axis{
		{&a.rpm, 1, a.limits.RPM, "requests per minute"},
		{&a.itpm, float64(plan.input + plan.creation()), a.limits.ITPM, "input tokens per minute"},
		{&a.otpm, outNeed, a.limits.OTPM, "output tokens per minute"},
	}
	var first *axis
	var wait time.Duration
	for i := range axes {
		d, ok := axes[i].b.wait(axes[i].need, now)
		if d > 0 || !ok {
			if first == nil {
				first = &axes[i]
			}
			wait = max(wait, d)
		}
	}
	if first != nil {
		a.usage.RateLimited++
		x.setHeadersLocked(now)
		secs := max(int64(1), int64(math.Ceil(wait.Seconds())))
		x.w.Header().Set("retry-after", strconv.FormatInt(secs, 10))
		x.rec.Status, x.rec.ErrorType, x.rec.LimitHit = http.StatusTooManyRequests, ErrRateLimit, first.phrase
		writeError(x.w, errf(http.StatusTooManyRequests, ErrRateLimit, rateLimitMessage(first, a.orgID, req.Model)))
		return false
	}
	a.rpm.take(1, now)
	a.itpm.take(axes[1].need, now)
	if s.cfg.OTPMAtStart {
		a.otpm.take(outNeed, now)
	}
	commitCache(a, *plan, now)
	a.usage.InputTokens += int64(plan.input)
	a.usage.CacheCreationInput += int64(plan.creation())
	a.usage.CacheReadInput += int64(plan.read)
	return true
}

func rateLimitMessage(ax *axis, org, model string) string {
	return fmt.Sprintf("This request would exceed your organization's rate limit of %s %s (org: %s, model: %s). "+
		"For details, refer to: https://docs.claude.com/en/api/rate-limits. "+
		"You can see the response headers for current usage. "+
		"Please reduce the prompt length or the maximum tokens requested, or try again later. "+
		"You may also contact sales at https://claude.com/contact-sales to discuss your options for a rate limit increase.",
		thousands(ax.limit), ax.phrase, org, model)
}

// thousands formats n with comma separators: 30000 → "30,000".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// chargeOutput counts produced output tokens and, unless they were reserved
// at admission (OTPMAtStart), takes them from the OTPM bucket.
func (x *exchange) chargeOutput(produced int) {
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfg.OTPMAtStart {
		x.acct.otpm.take(float64(produced), s.now())
	}
	x.acct.usage.OutputTokens += int64(produced)
}

// settleReservation refunds the unused part of a max_tokens reservation.
func (x *exchange) settleReservation(req *MessagesRequest, produced int) {
	s := x.s
	if !s.cfg.OTPMAtStart {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x.acct.otpm.give(float64(req.MaxTokens)-float64(produced), s.now())
}

// messages admits a valid Messages request and answers it.
func (x *exchange) messages(req *MessagesRequest, segs []segment, target int, f Fault) {
	var plan cachePlan
	if !x.admit(req, &plan, segs) {
		return
	}
	seed := append(append(append([]byte(nil), req.Raw["model"]...), req.Raw["system"]...), req.Raw["messages"]...)
	p := makeReply(req, target, x.r.Header.Get(ToolUseHeader), seed)
	msgID, toolID := newID("msg"), newID("toolu")
	x.count(func(c *Counters) { c.Succeeded++ })
	if req.Stream {
		x.stream(req, p, plan, msgID, toolID, f)
		return
	}
	out := p.outputTokens()
	x.chargeOutput(out)
	x.settleReservation(req, out)
	m := message(msgID, req.Model, p, toolID, plan, false)
	x.rec.InputTokens, x.rec.OutputTokens = plan.input, out
	x.rec.CacheCreationInputTokens, x.rec.CacheReadInputTokens = plan.creation(), plan.read
	x.writeJSON(http.StatusOK, m)
}
