package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	epv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
)

var (
	errRouteTimeout = errors.New("upstream request timeout")
	errIdleTimeout  = errors.New("stream timeout")
)

// upstreamResponse is the final attempt's response, handed to the encoders.
type upstreamResponse struct {
	h       *headerMap
	body    io.ReadCloser
	touch   func() // resets the idle timer on activity
	release func()
}

// runRouter runs the router filter: cluster choice, host rewrite, attempts with
// per-attempt upstream filters, retries and back-off.
func (s *stream) runRouter() (*upstreamResponse, *localReply) {
	re := s.currentRoute()
	if re == nil {
		s.e.stats.inc(s.hcmStat("no_route"))
		return nil, &localReply{status: 404, details: "route_not_found"}
	}
	ra := re.r.GetRoute()
	c, ok := s.e.cfg.clusters[ra.GetCluster()]
	if !ok {
		code := 503
		if ra.GetClusterNotFoundResponseCode() != 0 {
			code = 404
			if ra.GetClusterNotFoundResponseCode().String() == "INTERNAL_SERVER_ERROR" {
				code = 500
			}
		}
		return nil, &localReply{status: code, details: "cluster_not_found"}
	}
	cs := "cluster." + c.name + "."
	h := s.reqH
	if l := ra.GetHostRewriteLiteral(); l != "" {
		h.set(":authority", l)
	}
	ctx, cancelCtx := context.WithCancelCause(s.ctx)
	var stopTimeout func() bool = func() bool { return false }
	if d := dur(ra.GetTimeout(), 15*time.Second); d > 0 {
		h.set("x-envoy-expected-rq-timeout-ms", strconv.FormatInt(d.Milliseconds(), 10))
		t := time.AfterFunc(d, func() { cancelCtx(errRouteTimeout) })
		stopTimeout = t.Stop
	}
	idle := dur(ra.GetIdleTimeout(), 0)
	var idleTimer *time.Timer
	if idle > 0 {
		idleTimer = time.AfterFunc(idle, func() { cancelCtx(errIdleTimeout) })
	}
	touch := func() {
		if idleTimer != nil {
			idleTimer.Reset(idle)
		}
	}
	release := func() {
		stopTimeout()
		if idleTimer != nil {
			idleTimer.Stop()
		}
		cancelCtx(context.Canceled)
	}
	fail := func(lr *localReply) (*upstreamResponse, *localReply) {
		release()
		return nil, lr
	}
	rs := newRetryState(ra.GetRetryPolicy())
	defer rs.releaseRetry(c)
	body := s.upstreamBody(rs != nil)
	retried := false
	for attempt := 1; ; attempt++ {
		if re.vh.GetIncludeRequestAttemptCount() {
			h.set("x-envoy-attempt-count", strconv.Itoa(attempt))
		}
		ufs, lr := s.upstreamDecode(ctx, c, body)
		if lr != nil {
			finishAll(ufs)
			return fail(lr)
		}
		s.e.stats.inc(cs + "upstream_rq_total")
		rd, length := body.attempt()
		res := s.e.send(ctx, c, h, rd, length)
		if res.err != nil {
			rs.releaseRetry(c) // RetryStateImpl::resetRetry, in shouldRetryReset
			finishAll(ufs)
			if cause := context.Cause(ctx); ctx.Err() != nil {
				return fail(timeoutReply(cause))
			}
			if res.connectFailure {
				s.e.stats.inc(cs + "upstream_cx_connect_fail")
			}
			if rs != nil && rs.wouldRetryReset(res.connectFailure) && body.replayable() {
				if d, ok := s.retry(rs, c, cs, nil); ok {
					retried = true
					if err := sleepCtx(ctx, d); err != nil {
						return fail(timeoutReply(err))
					}
					continue
				}
			}
			reason := "connection termination"
			if res.connectFailure {
				reason = "connection failure"
			}
			prefix := ""
			if retried {
				prefix = "retried and the latest "
			}
			return fail(&localReply{status: 503,
				body:    []byte("upstream connect error or disconnect/reset before headers. " + prefix + "reset reason: " + reason),
				details: "upstream_reset_before_response_started{" + reason + "}"})
		}
		touch()
		rh := &headerMap{}
		rh.add(":status", strconv.Itoa(res.resp.StatusCode))
		fromHTTP(rh, res.resp.Header)
		end := res.resp.ContentLength == 0
		for i := len(ufs) - 1; i >= 0; i-- {
			if lr, _, _ := ufs[i].headers(ctx, rh, dirEncode, end); lr != nil {
				_ = res.resp.Body.Close()
				finishAll(ufs)
				return fail(lr)
			}
		}
		// RetryStateImpl::resetRetry, in shouldRetryHeaders: once the
		// upstream filters have had the headers.
		rs.releaseRetry(c)
		status, _ := strconv.Atoi(rh.value(":status"))
		if rs != nil && rs.wouldRetryHeaders(status, rh) && body.replayable() {
			if d, ok := s.retry(rs, c, cs, rh); ok {
				retried = true
				_ = res.resp.Body.Close()
				finishAll(ufs)
				if err := sleepCtx(ctx, d); err != nil {
					return fail(timeoutReply(err))
				}
				continue
			}
		} else if retried {
			s.e.stats.inc(cs + "upstream_rq_retry_success")
		}
		s.e.stats.inc(fmt.Sprintf("%supstream_rq_%d", cs, status))
		rh.set("x-envoy-upstream-service-time", strconv.FormatInt(time.Since(s.start).Milliseconds(), 10))
		var respBody io.ReadCloser = res.resp.Body
		if end {
			respBody = nil // end_stream with the headers
		}
		return &upstreamResponse{h: rh, body: respBody, touch: touch, release: func() {
			_ = res.resp.Body.Close()
			finishAll(ufs)
			release()
		}}, nil
	}
}

// retry is RetryStateImpl::shouldRetry for an attempt Envoy would retry:
// within num_retries and the cluster's max_retries (the retry is counted
// from here until the retried attempt's outcome, see releaseRetry), and
// its back-off.
func (s *stream) retry(rs *retryState, c *cluster, cs string, rh *headerMap) (time.Duration, bool) {
	if rs.remaining == 0 {
		s.e.stats.inc(cs + "upstream_rq_retry_limit_exceeded")
		return 0, false
	}
	rs.remaining--
	if c.retries.Load() >= c.maxRetries {
		s.e.stats.inc(cs + "upstream_rq_retry_overflow")
		return 0, false
	}
	c.retries.Add(1)
	rs.held = true
	s.e.stats.inc(cs + "upstream_rq_retry")
	if rh != nil {
		if d, ok := rs.resetInterval(rh, time.Now()); ok && d > time.Millisecond {
			s.e.stats.inc(cs + "upstream_rq_retry_backoff_ratelimited")
			return lowerBound(d), true
		}
	}
	s.e.stats.inc(cs + "upstream_rq_retry_backoff_exponential")
	return rs.backoff(), true
}

func timeoutReply(cause error) *localReply {
	if errors.Is(cause, errIdleTimeout) {
		return &localReply{status: 504, body: []byte("stream timeout"), details: "stream_idle_timeout"}
	}
	return &localReply{status: 504, body: []byte("upstream request timeout"), details: "upstream_response_timeout"}
}

// upstreamDecode runs the cluster's upstream filters on the request headers
// (and a BUFFERED body) for one attempt. They mutate the router's shared
// header map, as Envoy's UpstreamRequest decodes parent_.downstreamHeaders().
func (s *stream) upstreamDecode(ctx context.Context, c *cluster, body *routerBody) ([]*extProcFilter, *localReply) {
	var ufs []*extProcFilter
	for _, uc := range c.upstreamFilter {
		f := newExtProcFilter(s.e, uc, "cluster."+c.name+".ext_proc.", s.dm, func() {})
		ufs = append(ufs, f)
		end := body.empty()
		lr, repl, ok := f.headers(ctx, s.reqH, dirDecode, end)
		if lr != nil {
			return ufs, lr
		}
		if ok {
			body.override(repl)
			continue
		}
		if !end && f.bodyMode(dirDecode) == epv3.ProcessingMode_BUFFERED {
			b, ok := body.bytes()
			if !ok {
				continue
			}
			out, lr := f.body(ctx, b, true, dirDecode, s.reqH)
			if lr != nil {
				return ufs, lr
			}
			body.override(out)
		}
	}
	return ufs, nil
}

func finishAll(fs []*extProcFilter) {
	for _, f := range fs {
		f.finish()
	}
}

// routerBody is the request body as the router sends it on each attempt.
type routerBody struct {
	buffered []byte // whole body known (ext_proc BUFFERED or empty)
	known    bool
	replay   *replayBody
	src      io.Reader
	attemptB []byte // per-attempt override by an upstream filter
	over     bool
}

func (s *stream) upstreamBody(retries bool) *routerBody {
	if s.bodyKnown {
		return &routerBody{buffered: s.body, known: true}
	}
	if retries {
		return &routerBody{replay: &replayBody{src: s.bodySrc, limit: s.e.cfg.bufferLimit}}
	}
	return &routerBody{src: s.bodySrc}
}

func (b *routerBody) empty() bool { return b.known && len(b.buffered) == 0 }

func (b *routerBody) bytes() ([]byte, bool) {
	if b.over {
		return b.attemptB, true
	}
	return b.buffered, b.known
}

func (b *routerBody) override(p []byte) { b.attemptB, b.over = p, true }

func (b *routerBody) replayable() bool {
	switch {
	case b.known:
		return true
	case b.replay != nil:
		return b.replay.replayable()
	}
	return false
}

// attempt returns this attempt's body reader and length (-1 if unknown).
func (b *routerBody) attempt() (io.Reader, int64) {
	defer func() { b.attemptB, b.over = nil, false }()
	switch {
	case b.over:
		return bytesReader(b.attemptB), int64(len(b.attemptB))
	case b.known:
		return bytesReader(b.buffered), int64(len(b.buffered))
	case b.replay != nil:
		return b.replay.reader(), -1
	}
	return b.src, -1
}

func bytesReader(p []byte) io.Reader {
	if len(p) == 0 {
		return http.NoBody
	}
	return &sliceReader{p: p}
}

type sliceReader struct{ p []byte }

func (r *sliceReader) Read(b []byte) (int, error) {
	if len(r.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.p)
	r.p = r.p[n:]
	return n, nil
}
