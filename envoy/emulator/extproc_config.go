package emulator

import (
	"fmt"
	"time"

	epv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// extProcConfig is one configured ext_proc filter.
type extProcConfig struct {
	pb             *epv3.ExternalProcessor
	cluster        string
	md             metadata.MD
	mode           *epv3.ProcessingMode
	messageTimeout time.Duration
	maxTimeout     time.Duration
	checker        checker
	statusOnError  int
	upstream       bool
}

func newExtProcConfig(ep *epv3.ExternalProcessor, path string, upstream bool) (*extProcConfig, error) {
	gs := ep.GetGrpcService()
	if gs.GetEnvoyGrpc() == nil {
		return nil, fmt.Errorf("emulator: %s.grpc_service: envoy_grpc is required", path)
	}
	c := &extProcConfig{pb: ep, cluster: gs.GetEnvoyGrpc().GetClusterName(), md: metadata.MD{},
		mode: ep.GetProcessingMode(), messageTimeout: dur(ep.GetMessageTimeout(), 200*time.Millisecond),
		maxTimeout: dur(ep.GetMaxMessageTimeout(), 0), checker: checker{ep.GetMutationRules()},
		statusOnError: 500, upstream: upstream}
	if c.mode == nil {
		c.mode = &epv3.ProcessingMode{}
	}
	for _, h := range gs.GetInitialMetadata() {
		c.md.Append(h.GetKey(), h.GetValue())
	}
	if s := ep.GetStatusOnError().GetCode(); s != 0 {
		c.statusOnError = int(s)
	}
	if ep.GetDisableClearRouteCache() && ep.GetRouteCacheAction() != epv3.ExternalProcessor_DEFAULT {
		return nil, fmt.Errorf("emulator: %s: disable_clear_route_cache and route_cache_action cannot both be set", path)
	}
	if err := checkModes(c.mode, path+".processing_mode"); err != nil {
		return nil, err
	}
	for i, m := range ep.GetAllowedOverrideModes() {
		if err := checkModes(m, fmt.Sprintf("%s.allowed_override_modes[%d]", path, i)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkModes refuses the processing modes the emulator does not implement.
func checkModes(m *epv3.ProcessingMode, path string) error {
	if m.GetRequestTrailerMode() == epv3.ProcessingMode_SEND || m.GetResponseTrailerMode() == epv3.ProcessingMode_SEND {
		return fmt.Errorf("emulator: %s: trailer mode SEND is not implemented", path)
	}
	switch m.GetRequestBodyMode() {
	case epv3.ProcessingMode_NONE, epv3.ProcessingMode_BUFFERED:
	default:
		return fmt.Errorf("emulator: %s.request_body_mode: %s is not implemented", path, m.GetRequestBodyMode())
	}
	switch m.GetResponseBodyMode() {
	case epv3.ProcessingMode_NONE, epv3.ProcessingMode_BUFFERED, epv3.ProcessingMode_STREAMED:
	default:
		return fmt.Errorf("emulator: %s.response_body_mode: %s is not implemented", path, m.GetResponseBodyMode())
	}
	return nil
}

// effectiveMode applies a server mode_override: header modes DEFAULT mean
// unchanged, body and trailer modes are taken literally (ext_proc.cc).
func effectiveMode(cur, o *epv3.ProcessingMode) *epv3.ProcessingMode {
	n := proto.Clone(o).(*epv3.ProcessingMode)
	if n.RequestHeaderMode == epv3.ProcessingMode_DEFAULT {
		n.RequestHeaderMode = cur.RequestHeaderMode
	}
	if n.ResponseHeaderMode == epv3.ProcessingMode_DEFAULT {
		n.ResponseHeaderMode = cur.ResponseHeaderMode
	}
	return n
}

// overrideAllowed reports whether o may replace the mode: allowed_override_modes
// empty, or o equal to one entry ignoring request_header_mode.
func (c *extProcConfig) overrideAllowed(o *epv3.ProcessingMode) bool {
	if len(c.pb.GetAllowedOverrideModes()) == 0 {
		return true
	}
	for _, a := range c.pb.GetAllowedOverrideModes() {
		x, y := proto.Clone(a).(*epv3.ProcessingMode), proto.Clone(o).(*epv3.ProcessingMode)
		x.RequestHeaderMode, y.RequestHeaderMode = 0, 0
		if proto.Equal(x, y) {
			return true
		}
	}
	return false
}

func sendHeaders(m epv3.ProcessingMode_HeaderSendMode) bool { return m != epv3.ProcessingMode_SKIP }
