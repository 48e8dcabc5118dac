package extproc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// RoleMetadataKey is the gRPC request metadata that tells the processors
// apart. Envoy sends it from the ext_proc filter's
// grpc_service.initial_metadata; the upstream filter of the anthropic
// cluster sets it to "upstream", the downstream filter sets "front" or
// nothing.
const RoleMetadataKey = "x-guardian-role"

// Role is which processor a stream is for.
type Role string

const (
	RoleFront    Role = "front"
	RoleUpstream Role = "upstream"
)

// Server implements extprocv3.ExternalProcessorServer. It owns the stream
// loop and nothing else: the processors own the per-request logic.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	front    StreamFactory
	upstream StreamFactory
	log      *slog.Logger
	metrics  *Metrics
}

// NewServer returns a server dispatching streams to front or upstream.
func NewServer(front, upstream StreamFactory, log *slog.Logger, m *Metrics) *Server {
	return &Server{front: front, upstream: upstream, log: log, metrics: m}
}

func roleOf(ctx context.Context) (Role, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(RoleMetadataKey)
	if len(v) == 0 || v[0] == "" || v[0] == string(RoleFront) {
		return RoleFront, true
	}
	if v[0] == string(RoleUpstream) {
		return RoleUpstream, true
	}
	return Role(v[0]), false
}

// Process implements [extprocv3.ExternalProcessorServer.Process].
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	role, ok := roleOf(ctx)
	if !ok {
		return status.Errorf(codes.InvalidArgument, "extproc: unknown %s %q: want front or upstream", RoleMetadataKey, role)
	}
	factory := s.front
	if role == RoleUpstream {
		factory = s.upstream
	}
	p := factory.NewStream(ctx)
	end := EndError
	defer func() {
		p.Close(end)
		s.metrics.streams.WithLabelValues(string(role), string(end)).Inc()
	}()
	phases := s.metrics.phaseSeconds[role]
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			end = EndComplete
			return nil
		}
		if err != nil {
			if ctx.Err() != nil || status.Code(err) == codes.Canceled {
				end = EndCancelled
				return nil
			}
			return err
		}
		start := time.Now()
		resp, ph, err := dispatch(ctx, p, req)
		if err != nil {
			s.log.Warn("ext_proc message rejected", "role", role, "phase", ph, "err", err)
			return status.Error(codes.FailedPrecondition, err.Error())
		}
		phases[ph].Observe(time.Since(start).Seconds())
		if err := stream.Send(resp); err != nil {
			if ctx.Err() != nil {
				end = EndCancelled
				return nil
			}
			return err
		}
	}
}

// phase indexes the per-phase metrics.
type phase uint8

const (
	phaseRequestHeaders phase = iota
	phaseRequestBody
	phaseRequestTrailers
	phaseResponseHeaders
	phaseResponseBody
	phaseResponseTrailers
	numPhases
)

var phaseNames = [numPhases]string{"request_headers", "request_body", "request_trailers", "response_headers", "response_body", "response_trailers"}

func (p phase) String() string { return phaseNames[p] }

// errUnknownMessage is returned for a ProcessingRequest with no phase set.
var errUnknownMessage = errors.New("extproc: processing request carries no known message")

func dispatch(ctx context.Context, p StreamProcessor, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, phase, error) {
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		if h, ok := p.(RequestHeadersProcessor); ok {
			resp, err := h.ProcessRequestHeaders(ctx, r.RequestHeaders)
			return resp, phaseRequestHeaders, err
		}
		return continueRequestHeaders, phaseRequestHeaders, nil
	case *extprocv3.ProcessingRequest_RequestBody:
		if h, ok := p.(RequestBodyProcessor); ok {
			resp, err := h.ProcessRequestBody(ctx, r.RequestBody)
			return resp, phaseRequestBody, err
		}
		return continueRequestBody, phaseRequestBody, nil
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return continueRequestTrailers, phaseRequestTrailers, nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		if h, ok := p.(ResponseHeadersProcessor); ok {
			resp, err := h.ProcessResponseHeaders(ctx, r.ResponseHeaders)
			return resp, phaseResponseHeaders, err
		}
		return continueResponseHeaders, phaseResponseHeaders, nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		if h, ok := p.(ResponseBodyProcessor); ok {
			resp, err := h.ProcessResponseBody(ctx, r.ResponseBody)
			return resp, phaseResponseBody, err
		}
		return continueResponseBody, phaseResponseBody, nil
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return continueResponseTrailers, phaseResponseTrailers, nil
	}
	return nil, phaseRequestHeaders, errUnknownMessage
}

// Shared CONTINUE answers. They are never modified after init, so every
// stream may send them (marshalling only reads).
var (
	continueRequestHeaders = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{}}}
	continueRequestBody = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
		RequestBody: &extprocv3.BodyResponse{}}}
	continueRequestTrailers = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{
		RequestTrailers: &extprocv3.TrailersResponse{}}}
	continueResponseHeaders = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
		ResponseHeaders: &extprocv3.HeadersResponse{}}}
	continueResponseBody = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
		ResponseBody: &extprocv3.BodyResponse{}}}
	continueResponseTrailers = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
		ResponseTrailers: &extprocv3.TrailersResponse{}}}
)
