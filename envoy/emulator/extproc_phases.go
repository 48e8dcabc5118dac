package emulator

import (
	"context"
	"strconv"

	epv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
)

// closeIfDone half-closes the stream after the last response this filter
// will ever need (closeGrpcStreamIfLastRespReceived).
func (f *extProcFilter) closeIfDone(dir int, endStream bool) {
	if !endStream {
		return
	}
	if dir == dirEncode || (!sendHeaders(f.mode.GetResponseHeaderMode()) && f.mode.GetResponseBodyMode() == epv3.ProcessingMode_NONE) {
		f.closeStream()
	}
}

// replaced returns the replacement body of a CONTINUE_AND_REPLACE response.
func replaced(cr *extprocv3.CommonResponse) ([]byte, bool) {
	if cr.GetStatus() != extprocv3.CommonResponse_CONTINUE_AND_REPLACE || cr.GetBodyMutation() == nil {
		return nil, false
	}
	return cr.GetBodyMutation().GetBody(), true
}

// headers runs the request or response headers phase. It returns a local
// reply, or a replacement body (CONTINUE_AND_REPLACE).
func (f *extProcFilter) headers(ctx context.Context, h *headerMap, dir int, endStream bool) (*localReply, []byte, bool) {
	hm := f.mode.GetRequestHeaderMode()
	if dir == dirEncode {
		hm = f.mode.GetResponseHeaderMode()
	}
	if f.complete || !sendHeaders(hm) {
		return nil, nil, false
	}
	hh := &extprocv3.HttpHeaders{Headers: h.proto(), EndOfStream: endStream}
	req := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: hh}}
	want := func(r *extprocv3.ProcessingResponse) bool { return r.GetRequestHeaders() != nil }
	if dir == dirEncode {
		req.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: hh}
		want = func(r *extprocv3.ProcessingResponse) bool { return r.GetResponseHeaders() != nil }
	}
	r, lr := f.exchange(ctx, req, dir, true, want)
	if r == nil {
		return lr, nil, false
	}
	cr := r.GetRequestHeaders().GetResponse()
	if dir == dirEncode {
		cr = r.GetResponseHeaders().GetResponse()
	}
	bm := f.bodyMode(dir)
	if lr := f.applyCommon(cr, h, dir, bm == epv3.ProcessingMode_STREAMED); lr != nil {
		return lr, nil, false
	}
	body, ok := replaced(cr)
	if ok {
		// The server replaced the whole message: no more body or trailers.
		h.remove("content-length")
		f.setBodyMode(dir, epv3.ProcessingMode_NONE)
	} else if f.bodyMode(dir) == epv3.ProcessingMode_STREAMED {
		h.remove("content-length")
	}
	f.closeIfDone(dir, endStream || ok || f.bodyMode(dir) == epv3.ProcessingMode_NONE)
	return nil, body, ok
}

func (f *extProcFilter) bodyMode(dir int) epv3.ProcessingMode_BodySendMode {
	if f.complete {
		return epv3.ProcessingMode_NONE
	}
	if dir == dirEncode {
		return f.mode.GetResponseBodyMode()
	}
	return f.mode.GetRequestBodyMode()
}

func (f *extProcFilter) setBodyMode(dir int, m epv3.ProcessingMode_BodySendMode) {
	n := proto.Clone(f.mode).(*epv3.ProcessingMode)
	if dir == dirEncode {
		n.ResponseBodyMode = m
	} else {
		n.RequestBodyMode = m
	}
	f.mode = n
}

// body sends one body message (a whole BUFFERED body, or a STREAMED chunk)
// and applies the answer. heldHeaders is non-nil while the headers have not
// been forwarded yet (BUFFERED): only then does header_mutation apply.
func (f *extProcFilter) body(ctx context.Context, chunk []byte, endStream bool, dir int, heldHeaders *headerMap) ([]byte, *localReply) {
	hb := &extprocv3.HttpBody{Body: chunk, EndOfStream: endStream}
	req := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: hb}}
	want := func(r *extprocv3.ProcessingResponse) bool { return r.GetRequestBody() != nil }
	if dir == dirEncode {
		req.Request = &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: hb}
		want = func(r *extprocv3.ProcessingResponse) bool { return r.GetResponseBody() != nil }
	}
	r, lr := f.exchange(ctx, req, dir, false, want)
	if r == nil {
		return chunk, lr
	}
	cr := r.GetRequestBody().GetResponse()
	if dir == dirEncode {
		cr = r.GetResponseBody().GetResponse()
	}
	out, mutated := chunk, false
	switch {
	case cr.GetBodyMutation().GetClearBody():
		out, mutated = nil, true
	case cr.GetBodyMutation().GetBody() != nil:
		out, mutated = cr.GetBodyMutation().GetBody(), true
	}
	if heldHeaders != nil {
		if err := applyMutation(cr.GetHeaderMutation(), heldHeaders, f.cfg.checker, false, f.rejected); err != nil {
			f.complete = true
			f.closeStream()
			return chunk, &localReply{status: f.cfg.statusOnError, details: err.Error()}
		}
		if mutated {
			if lr := f.fixContentLength(cr, heldHeaders, len(out)); lr != nil {
				return chunk, lr
			}
		}
		if dir == dirDecode {
			f.maybeClearRoute(cr)
		}
	} else if cr.GetHeaderMutation() != nil {
		f.env.log.Debug("ext_proc: body response header_mutation ignored: headers already forwarded")
	}
	f.closeIfDone(dir, endStream)
	return out, nil
}

// fixContentLength: a content-length the server set must match the mutated
// body (MismatchedContentLengthAndBodyLength); otherwise it is recomputed.
func (f *extProcFilter) fixContentLength(cr *extprocv3.CommonResponse, h *headerMap, n int) *localReply {
	setByServer := false
	for _, s := range cr.GetHeaderMutation().GetSetHeaders() {
		if s.GetHeader().GetKey() == "content-length" {
			setByServer = true
		}
	}
	cl, ok := h.get("content-length")
	switch {
	case setByServer && cl != strconv.Itoa(n):
		f.complete = true
		f.closeStream()
		return &localReply{status: f.cfg.statusOnError, details: "mismatch_between_content_length_and_the_length_of_the_mutated_body"}
	case ok:
		h.set("content-length", strconv.Itoa(n))
	}
	return nil
}
