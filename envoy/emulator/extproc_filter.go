package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	epv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// localReply is a response generated inside Envoy (sendLocalReply).
type localReply struct {
	status  int
	body    []byte
	details string
	mutate  func(*headerMap) // applied after the default headers
}

const errorPrefix = "ext_proc_error"

// extProcFilter is one ext_proc filter instance (one HTTP stream, or one
// upstream attempt when the filter is an upstream filter).
type extProcFilter struct {
	cfg         *extProcConfig
	env         *Envoy
	stat        string // "http.<prefix>.ext_proc." or "cluster.<name>.ext_proc."
	mode        *epv3.ProcessingMode
	dm          *dynMeta
	clearRoute  func()
	ctx         context.Context
	cancel      context.CancelFunc
	stream      extprocv3.ExternalProcessor_ProcessClient
	recv        chan recvMsg
	done        chan struct{} // closed when the receive loop ends
	complete    bool          // processing_complete_
	sentFirst   bool
	halfClosed  bool
	overrideSet [2]bool
	closeOnce   sync.Once
}

type recvMsg struct {
	resp *extprocv3.ProcessingResponse
	err  error
}

const (
	dirDecode = 0
	dirEncode = 1
)

func newExtProcFilter(env *Envoy, cfg *extProcConfig, stat string, dm *dynMeta, clearRoute func()) *extProcFilter {
	return &extProcFilter{cfg: cfg, env: env, stat: stat, mode: cfg.mode, dm: dm, clearRoute: clearRoute}
}

func (f *extProcFilter) inc(name string) { f.env.stats.inc(f.stat + name) }

// open starts the gRPC stream lazily, on the first message to send.
func (f *extProcFilter) open(parent context.Context) error {
	if f.stream != nil {
		return nil
	}
	conn, err := f.env.grpcConn(f.cfg.cluster)
	if err != nil {
		return err
	}
	f.ctx, f.cancel = context.WithCancel(metadata.NewOutgoingContext(context.WithoutCancel(parent), f.cfg.md.Copy()))
	st, err := extprocv3.NewExternalProcessorClient(conn).Process(f.ctx)
	if err != nil {
		f.cancel()
		return err
	}
	f.inc("streams_started")
	f.stream, f.recv, f.done = st, make(chan recvMsg, 16), make(chan struct{})
	f.env.wg.Add(1)
	go func() {
		defer f.env.wg.Done()
		defer close(f.done)
		for {
			r, err := st.Recv()
			select {
			case f.recv <- recvMsg{r, err}:
			case <-f.ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return nil
}

// closeStream half-closes the stream (Envoy's closeStream after the last
// expected response, or on completion).
func (f *extProcFilter) closeStream() {
	if f.stream != nil && !f.halfClosed {
		f.halfClosed = true
		_ = f.stream.CloseSend()
	}
}

// finish ends the filter at stream end. A half-closed stream is given time to
// finish gracefully (server trailers); otherwise it is reset.
func (f *extProcFilter) finish() {
	f.closeOnce.Do(func() {
		if f.stream == nil {
			return
		}
		if !f.halfClosed {
			f.cancel()
			<-f.done
			return
		}
		f.env.wg.Add(1)
		go func() {
			defer f.env.wg.Done()
			t := time.NewTimer(5 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-f.done:
					f.cancel()
					return
				case <-f.recv:
				case <-t.C:
					f.cancel()
					<-f.done
					return
				case <-f.env.closing:
					f.cancel()
					<-f.done
					return
				}
			}
		}()
	})
}

// exchange sends req and waits for the response want accepts. A nil response
// with a nil reply means "continue unmodified" (processing complete).
func (f *extProcFilter) exchange(parent context.Context, req *extprocv3.ProcessingRequest, dir int, headersPhase bool,
	want func(*extprocv3.ProcessingResponse) bool) (*extprocv3.ProcessingResponse, *localReply) {
	if err := f.open(parent); err != nil {
		return nil, f.grpcError(err)
	}
	if !f.sentFirst {
		f.sentFirst = true
		req.ProtocolConfig = &extprocv3.ProtocolConfiguration{
			RequestBodyMode:  f.mode.GetRequestBodyMode(),
			ResponseBodyMode: f.mode.GetResponseBodyMode(),
		}
	}
	if err := f.stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
		return nil, f.grpcError(err)
	}
	f.inc("stream_msgs_sent")
	timer := time.NewTimer(f.cfg.messageTimeout)
	defer timer.Stop()
	for {
		select {
		case <-parent.Done():
			f.complete = true
			return nil, nil
		case <-timer.C:
			f.inc("message_timeouts")
			f.complete = true
			f.closeStream()
			if f.cfg.pb.GetFailureModeAllow() {
				f.inc("failure_mode_allowed")
				return nil, nil
			}
			return nil, &localReply{status: 504, details: errorPrefix + "_per-message_timeout_exceeded"}
		case m := <-f.recv:
			if m.err != nil {
				return nil, f.grpcError(m.err)
			}
			r := m.resp
			if d := r.GetOverrideMessageTimeout(); d != nil {
				nd := d.AsDuration()
				if f.cfg.maxTimeout >= time.Millisecond && !f.overrideSet[dir] && nd >= time.Millisecond && nd <= f.cfg.maxTimeout {
					f.overrideSet[dir] = true
					f.inc("override_message_timeout_received")
					timer.Reset(nd)
				} else {
					f.inc("override_message_timeout_ignored")
				}
				continue
			}
			if headersPhase && r.GetModeOverride() != nil && f.cfg.pb.GetAllowModeOverride() && f.cfg.overrideAllowed(r.GetModeOverride()) {
				if checkModes(r.GetModeOverride(), "mode_override") == nil {
					f.mode = effectiveMode(f.mode, r.GetModeOverride())
				}
			}
			if imm := r.GetImmediateResponse(); imm != nil && !f.cfg.pb.GetDisableImmediateResponse() {
				f.inc("stream_msgs_received")
				f.setDynamicMetadata(r)
				f.complete = true
				f.closeStream()
				if f.cfg.upstream {
					f.inc("send_immediate_resp_upstream_ignored")
					return nil, nil
				}
				return nil, f.immediateReply(imm)
			}
			if !want(r) {
				f.inc("spurious_msgs_received")
				f.complete = true
				f.closeStream()
				if f.cfg.pb.GetFailureModeAllow() {
					return nil, nil
				}
				return nil, &localReply{status: f.cfg.statusOnError, details: errorPrefix + "_spurious_message"}
			}
			f.inc("stream_msgs_received")
			f.setDynamicMetadata(r)
			return r, nil
		}
	}
}

// grpcError handles the stream ending: OK (server closed) → continue
// unmodified; an error → status_on_error or failure_mode_allow.
func (f *extProcFilter) grpcError(err error) *localReply {
	f.complete = true
	if errors.Is(err, io.EOF) {
		f.inc("streams_closed")
		f.closeStream()
		return nil
	}
	f.inc("streams_failed")
	f.closeStream()
	if f.cfg.pb.GetFailureModeAllow() {
		f.inc("failure_mode_allowed")
		return nil
	}
	return &localReply{status: f.cfg.statusOnError, details: fmt.Sprintf("%s_gRPC_error_%d", errorPrefix, status.Code(err))}
}

func (f *extProcFilter) setDynamicMetadata(r *extprocv3.ProcessingResponse) {
	if r.GetDynamicMetadata() == nil {
		return
	}
	allowed := f.cfg.pb.GetMetadataOptions().GetReceivingNamespaces().GetUntyped()
	for ns, v := range r.GetDynamicMetadata().GetFields() {
		if contains(allowed, ns) && v.GetStructValue() != nil {
			f.dm.merge(ns, v.GetStructValue())
		}
	}
}

func (f *extProcFilter) immediateReply(imm *extprocv3.ImmediateResponse) *localReply {
	code := int(imm.GetStatus().GetCode())
	if code < 200 {
		code = 200
	}
	return &localReply{status: code, body: []byte(imm.GetBody()),
		details: strings.Join(strings.Fields(imm.GetDetails()), "_"),
		mutate: func(h *headerMap) {
			if err := applyMutation(imm.GetHeaders(), h, f.cfg.checker, false, func() { f.inc("rejected_header_mutations") }); err != nil {
				f.env.log.Debug("immediate response mutations failed", "err", err)
			}
		}}
}

func (f *extProcFilter) rejected() { f.inc("rejected_header_mutations") }

// applyCommon applies a CommonResponse to headers h (and body when held).
func (f *extProcFilter) applyCommon(cr *extprocv3.CommonResponse, h *headerMap, dir int, skipCL bool) *localReply {
	if cr == nil {
		return nil
	}
	if err := applyMutation(cr.GetHeaderMutation(), h, f.cfg.checker, skipCL, f.rejected); err != nil {
		f.complete = true
		f.closeStream()
		return &localReply{status: f.cfg.statusOnError, details: err.Error()}
	}
	if dir == dirDecode {
		f.maybeClearRoute(cr)
	}
	return nil
}

// maybeClearRoute follows DecodingProcessorState::clearRouteCache.
func (f *extProcFilter) maybeClearRoute(cr *extprocv3.CommonResponse) {
	switch {
	case f.cfg.upstream:
		if cr.GetClearRouteCache() {
			f.inc("clear_route_cache_upstream_ignored")
		}
		return
	case cr.GetHeaderMutation() == nil:
		if cr.GetClearRouteCache() {
			f.inc("clear_route_cache_ignored")
		}
		return
	}
	switch f.cfg.pb.GetRouteCacheAction() {
	case epv3.ExternalProcessor_CLEAR:
		f.clearRoute()
	case epv3.ExternalProcessor_RETAIN:
		if cr.GetClearRouteCache() {
			f.inc("clear_route_cache_disabled")
		}
	default:
		if !cr.GetClearRouteCache() {
			return
		}
		if f.cfg.pb.GetDisableClearRouteCache() {
			f.inc("clear_route_cache_disabled")
			return
		}
		f.clearRoute()
	}
}
