// Package extproc is guardian's Envoy external processor: the gRPC
// envoy.service.ext_proc.v3.ExternalProcessor service, the stream loop, and
// the two processors Envoy talks to through it — the front processor (a
// downstream HTTP filter, once per client request) and the upstream processor
// (an upstream filter of the anthropic cluster, once per attempt).
//
// Protocol facts it relies on are in shared/reference/envoy-protocols.md §1.
package extproc

import (
	"context"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Each phase of an ext_proc stream has its own small interface. A stream
// processor implements the phases its Envoy processing mode sends; a message
// for a phase it does not implement is answered with a plain CONTINUE.

// RequestHeadersProcessor handles the request_headers message.
type RequestHeadersProcessor interface {
	ProcessRequestHeaders(context.Context, *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error)
}

// RequestBodyProcessor handles request_body messages.
type RequestBodyProcessor interface {
	ProcessRequestBody(context.Context, *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error)
}

// ResponseHeadersProcessor handles the response_headers message.
type ResponseHeadersProcessor interface {
	ProcessResponseHeaders(context.Context, *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error)
}

// ResponseBodyProcessor handles response_body messages.
type ResponseBodyProcessor interface {
	ProcessResponseBody(context.Context, *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error)
}

// StreamEnd says how an ext_proc stream ended.
type StreamEnd string

const (
	// EndComplete: Envoy half-closed the stream after the last message.
	EndComplete StreamEnd = "complete"
	// EndCancelled: Envoy reset the stream (client gone, timeout, retry).
	EndCancelled StreamEnd = "cancelled"
	// EndError: the stream failed (protocol error or send failure).
	EndError StreamEnd = "error"
)

// StreamProcessor is the state of one ext_proc stream. Close is called
// exactly once, however the stream ends, and must release everything the
// stream holds.
type StreamProcessor interface {
	Close(StreamEnd)
}

// StreamFactory starts the processor for a new stream.
type StreamFactory interface {
	NewStream(ctx context.Context) StreamProcessor
}
