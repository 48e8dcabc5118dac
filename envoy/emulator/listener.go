package emulator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	epv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
)

// stream is one downstream HTTP request through the HCM filter chain.
type stream struct {
	e          *Envoy
	ctx        context.Context
	w          http.ResponseWriter
	start      time.Time
	reqH       *headerMap
	body       []byte
	bodyKnown  bool
	bodySrc    io.Reader
	dm         *dynMeta
	cached     *routeEntry
	routeValid bool
	eps        []*extProcFilter // per filter index; nil for other filters
	rls        []*rateLimitFilter
}

func (s *stream) hcmStat(n string) string { return "http." + s.e.cfg.statPrefix + "." + n }

// currentRoute is the cached route, recomputed after clear_route_cache.
func (s *stream) currentRoute() *routeEntry {
	if !s.routeValid {
		s.cached, s.routeValid = matchRoute(s.e.cfg.routes, s.reqH), true
	}
	return s.cached
}

func (s *stream) clearRoute() { s.routeValid = false }

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// serve is the HTTP connection manager for one request.
func (e *Envoy) serve(w http.ResponseWriter, r *http.Request) {
	n := len(e.cfg.filters)
	s := &stream{e: e, ctx: r.Context(), w: w, start: time.Now(), reqH: &headerMap{}, dm: &dynMeta{},
		eps: make([]*extProcFilter, n), rls: make([]*rateLimitFilter, n), bodySrc: r.Body}
	defer s.destroy()
	e.stats.inc(s.hcmStat("downstream_rq_total"))
	h := s.reqH
	h.add(":authority", r.Host)
	h.add(":path", r.URL.RequestURI())
	h.add(":method", r.Method)
	h.add(":scheme", "http")
	fromHTTP(h, r.Header)
	if r.ContentLength > 0 {
		h.set("content-length", strconv.FormatInt(r.ContentLength, 10))
	}
	h.set("x-forwarded-proto", "http")
	if _, ok := h.get("x-request-id"); !ok {
		h.add("x-request-id", requestID())
	}
	endStream := r.Body == http.NoBody || r.ContentLength == 0
	if endStream {
		s.bodyKnown = true
	}
	for i, fc := range e.cfg.filters {
		switch {
		case fc.extProc != nil:
			f := newExtProcFilter(e, fc.extProc, s.hcmStat("ext_proc."), s.dm, s.clearRoute)
			s.eps[i] = f
			if lr := s.decodeExtProc(f, endStream); lr != nil {
				s.sendLocal(i, lr)
				return
			}
		case fc.rateLimit != nil:
			f := &rateLimitFilter{cfg: fc.rateLimit, s: s}
			s.rls[i] = f
			if lr := f.decodeHeaders(); lr != nil {
				s.sendLocal(i, lr)
				return
			}
		case fc.name == routerName:
			resp, lr := s.runRouter()
			if lr != nil {
				s.sendLocal(i, lr)
				return
			}
			defer resp.release()
			var body io.Reader
			if resp.body != nil {
				body = resp.body
			}
			s.encode(i, resp.h, body, resp.touch)
			return
		}
	}
}

// decodeExtProc runs an ext_proc filter's request phases.
func (s *stream) decodeExtProc(f *extProcFilter, endStream bool) *localReply {
	lr, repl, replacedBody := f.headers(s.ctx, s.reqH, dirDecode, endStream)
	if lr != nil {
		return lr
	}
	if replacedBody {
		s.body, s.bodyKnown = repl, true
		return nil
	}
	if endStream || f.bodyMode(dirDecode) != epv3.ProcessingMode_BUFFERED {
		return nil
	}
	if !s.bodyKnown {
		b, err := io.ReadAll(io.LimitReader(s.bodySrc, int64(s.e.cfg.bufferLimit)+1))
		if err != nil {
			return &localReply{status: 400, details: "downstream_remote_disconnect"}
		}
		if len(b) > s.e.cfg.bufferLimit {
			return &localReply{status: 413, body: []byte("Payload Too Large"), details: "request_payload_too_large"}
		}
		s.body, s.bodyKnown = b, true
	}
	out, lr := f.body(s.ctx, s.body, true, dirDecode, s.reqH)
	if lr != nil {
		return lr
	}
	s.body = out
	return nil
}

// destroy ends every filter: ext_proc streams close or reset, ratelimit
// sends its apply_on_stream_done descriptors.
func (s *stream) destroy() {
	for _, f := range s.eps {
		if f != nil {
			f.finish()
		}
	}
	for _, f := range s.rls {
		if f != nil {
			f.onDestroy()
		}
	}
}

// sendLocal sends a local reply from filter idx through the encoders of the
// filters before it (those that already decoded the request).
func (s *stream) sendLocal(idx int, lr *localReply) {
	h := &headerMap{}
	h.add(":status", strconv.Itoa(lr.status))
	if len(lr.body) > 0 {
		h.add("content-length", strconv.Itoa(len(lr.body)))
		h.add("content-type", "text/plain")
	}
	if lr.mutate != nil {
		lr.mutate(h)
	}
	s.e.log.Debug("local reply", "status", lr.status, "details", lr.details)
	var body io.Reader
	if len(lr.body) > 0 {
		body = bytesReader(lr.body)
	}
	s.encode(idx, h, body, func() {})
}

// encode runs the encoder filters in [0, upTo) in reverse order and writes
// the response downstream, streaming the body chunk by chunk.
func (s *stream) encode(upTo int, h *headerMap, body io.Reader, touch func()) {
	var streamed []*extProcFilter
	for i := upTo - 1; i >= 0; i-- {
		if f := s.rls[i]; f != nil {
			f.encodeHeaders(h)
		}
		f := s.eps[i]
		if f == nil {
			continue
		}
		lr, repl, ok := f.headers(s.ctx, h, dirEncode, body == nil)
		if lr != nil {
			s.sendLocal(i, lr)
			return
		}
		switch {
		case ok:
			body = bytesReader(repl)
		case body != nil && f.bodyMode(dirEncode) == epv3.ProcessingMode_BUFFERED:
			b, err := io.ReadAll(io.LimitReader(body, int64(s.e.cfg.bufferLimit)+1))
			if err != nil || len(b) > s.e.cfg.bufferLimit {
				s.sendLocal(i, &localReply{status: 500, details: "response_payload_too_large"})
				return
			}
			out, lr := f.body(s.ctx, b, true, dirEncode, h)
			if lr != nil {
				s.sendLocal(i, lr)
				return
			}
			body = bytesReader(out)
		case body != nil && f.bodyMode(dirEncode) == epv3.ProcessingMode_STREAMED:
			streamed = append(streamed, f)
		}
	}
	s.writeHeaders(h)
	if body == nil {
		return
	}
	rc := http.NewResponseController(s.w)
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		touch()
		eos := errors.Is(err, io.EOF)
		if err != nil && !eos {
			s.abort()
			return
		}
		if n == 0 && !eos {
			continue
		}
		chunk := buf[:n]
		for _, f := range streamed {
			if f.bodyMode(dirEncode) != epv3.ProcessingMode_STREAMED {
				continue
			}
			var lr *localReply
			if chunk, lr = f.body(s.ctx, chunk, eos, dirEncode, nil); lr != nil {
				s.abort() // the response has started: Envoy resets the stream
				return
			}
		}
		if len(chunk) > 0 {
			if _, werr := s.w.Write(chunk); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if eos {
			return
		}
	}
}

func (s *stream) writeHeaders(h *headerMap) {
	h.set("server", "envoy")
	hd := s.w.Header()
	h.toHTTP(hd)
	code, err := strconv.Atoi(h.value(":status"))
	if err != nil || code < 100 {
		code = 502
	}
	s.e.stats.inc(fmt.Sprintf("%s%dxx", s.hcmStat("downstream_rq_"), code/100))
	s.w.WriteHeader(code)
	_ = http.NewResponseController(s.w).Flush()
}

// abort resets the downstream connection mid-response.
func (s *stream) abort() {
	conn, _, err := http.NewResponseController(s.w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}
