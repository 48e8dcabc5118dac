package emulator

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	rlfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/claude-guardian/claude-guardian/envoy/validate"
)

// Extension names the emulator implements.
const (
	hcmName           = "envoy.filters.network.http_connection_manager"
	extProcName       = "envoy.filters.http.ext_proc"
	rateLimitName     = "envoy.filters.http.ratelimit"
	routerName        = "envoy.filters.http.router"
	upstreamCodecName = "envoy.filters.http.upstream_codec"
	tlsSocketName     = "envoy.transport_sockets.tls"
	httpOptionsKey    = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	defaultBufferSize = 1 << 20 // Envoy's per_connection_buffer_limit_bytes default
)

// config is the parsed bootstrap, reduced to what the emulator runs.
type config struct {
	statPrefix  string
	bufferLimit int
	routes      *routev3.RouteConfiguration
	filters     []*httpFilter // downstream chain, router last
	clusters    map[string]*cluster
}

// httpFilter is one configured HTTP filter.
type httpFilter struct {
	name      string
	extProc   *extProcConfig
	rateLimit *rlfilterv3.RateLimit
}

// cluster is a configured upstream cluster.
type cluster struct {
	name           string
	address        string // host:port from load_assignment
	tls            *tlsv3.UpstreamTlsContext
	connectTimeout time.Duration
	http2          bool // explicit_http_config http2 (gRPC clusters)
	upstreamFilter []*extProcConfig
	// maxRetries is circuit_breakers' DEFAULT-priority max_retries (Envoy's
	// default 3): retries outstanding at once; retries counts them.
	maxRetries int64
	retries    atomic.Int64
}

// parseBootstrap turns YAML into a validated Bootstrap proto: parsed as
// `guardian validate envoy` parses it (unknown fields and unregistered types
// are errors), validated, then checked against what the emulator runs.
func parseBootstrap(yamlBytes []byte) (*bootstrapv3.Bootstrap, error) {
	bs, err := validate.ParseBootstrap(yamlBytes)
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	if err := bs.ValidateAll(); err != nil {
		return nil, fmt.Errorf("emulator: bootstrap validation: %w", err)
	}
	if err := checkSupported(bs); err != nil {
		return nil, err
	}
	return bs, nil
}

// unpack resolves an Any to its message, validating it (Bootstrap.ValidateAll
// does not descend into Any).
func unpack(a *anypb.Any, path string) (proto.Message, error) {
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("emulator: %s: %w", path, err)
	}
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return nil, fmt.Errorf("emulator: %s: %w", path, err)
		}
	}
	return m, nil
}

func dur(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

// buildConfig extracts the runnable config from a checked bootstrap.
func buildConfig(bs *bootstrapv3.Bootstrap) (*config, error) {
	sr := bs.GetStaticResources()
	if len(sr.GetListeners()) != 1 {
		return nil, errors.New("emulator: static_resources.listeners: exactly one listener is supported")
	}
	l := sr.GetListeners()[0]
	if len(l.GetFilterChains()) != 1 || len(l.GetFilterChains()[0].GetFilters()) != 1 {
		return nil, errors.New("emulator: listeners[0].filter_chains: exactly one chain with one filter (the HCM) is supported")
	}
	cfg := &config{bufferLimit: defaultBufferSize, clusters: map[string]*cluster{}}
	if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
		cfg.bufferLimit = int(v.GetValue())
	}
	nf := l.GetFilterChains()[0].GetFilters()[0]
	if nf.GetName() != hcmName {
		return nil, fmt.Errorf("emulator: listeners[0].filter_chains[0].filters[0]: %q not supported", nf.GetName())
	}
	m, err := unpack(nf.GetTypedConfig(), "http_connection_manager")
	if err != nil {
		return nil, err
	}
	hcm, ok := m.(*hcmv3.HttpConnectionManager)
	if !ok {
		return nil, errors.New("emulator: http_connection_manager: typed_config is not an HttpConnectionManager")
	}
	cfg.statPrefix = hcm.GetStatPrefix()
	cfg.routes = hcm.GetRouteConfig()
	for i, f := range hcm.GetHttpFilters() {
		path := fmt.Sprintf("http_filters[%d]", i)
		hf, err := buildFilter(f.GetName(), f.GetTypedConfig(), path, false)
		if err != nil {
			return nil, err
		}
		cfg.filters = append(cfg.filters, hf)
	}
	if n := len(cfg.filters); n == 0 || cfg.filters[n-1].name != routerName {
		return nil, errors.New("emulator: http_filters: the chain must end with envoy.filters.http.router")
	}
	for i, c := range sr.GetClusters() {
		cl, err := buildCluster(c, fmt.Sprintf("clusters[%d]", i))
		if err != nil {
			return nil, err
		}
		cfg.clusters[cl.name] = cl
	}
	if err := checkRoutes(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func buildFilter(name string, tc *anypb.Any, path string, upstream bool) (*httpFilter, error) {
	m, err := unpack(tc, path)
	if err != nil {
		return nil, err
	}
	switch name {
	case extProcName:
		ep, ok := m.(*extprocv3.ExternalProcessor)
		if !ok {
			return nil, fmt.Errorf("emulator: %s: typed_config is not an ExternalProcessor", path)
		}
		c, err := newExtProcConfig(ep, path, upstream)
		if err != nil {
			return nil, err
		}
		return &httpFilter{name: name, extProc: c}, nil
	case rateLimitName:
		rl, ok := m.(*rlfilterv3.RateLimit)
		if !ok || upstream {
			return nil, fmt.Errorf("emulator: %s: ratelimit filter not supported here", path)
		}
		return &httpFilter{name: name, rateLimit: rl}, nil
	case routerName, upstreamCodecName:
		return &httpFilter{name: name}, nil
	}
	return nil, fmt.Errorf("emulator: %s: filter %q not implemented", path, name)
}

func buildCluster(c *clusterv3.Cluster, path string) (*cluster, error) {
	cl := &cluster{name: c.GetName(), connectTimeout: dur(c.GetConnectTimeout(), 5*time.Second), maxRetries: 3}
	for _, t := range c.GetCircuitBreakers().GetThresholds() {
		if t.GetPriority() == corev3.RoutingPriority_DEFAULT && t.GetMaxRetries() != nil {
			cl.maxRetries = int64(t.GetMaxRetries().GetValue())
		}
	}
	eps := c.GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		return nil, fmt.Errorf("emulator: %s.load_assignment: exactly one endpoint is supported", path)
	}
	sa := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	cl.address = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	if ts := c.GetTransportSocket(); ts != nil {
		if ts.GetName() != tlsSocketName {
			return nil, fmt.Errorf("emulator: %s.transport_socket: %q not implemented", path, ts.GetName())
		}
		m, err := unpack(ts.GetTypedConfig(), path+".transport_socket")
		if err != nil {
			return nil, err
		}
		t, ok := m.(*tlsv3.UpstreamTlsContext)
		if !ok {
			return nil, fmt.Errorf("emulator: %s.transport_socket: not an UpstreamTlsContext", path)
		}
		cl.tls = t
	}
	for k, a := range c.GetTypedExtensionProtocolOptions() {
		p := fmt.Sprintf("%s.typed_extension_protocol_options[%s]", path, k)
		if k != httpOptionsKey {
			return nil, fmt.Errorf("emulator: %s: not implemented", p)
		}
		m, err := unpack(a, p)
		if err != nil {
			return nil, err
		}
		o, ok := m.(*upstreamhttpv3.HttpProtocolOptions)
		if !ok {
			return nil, fmt.Errorf("emulator: %s: not an HttpProtocolOptions", p)
		}
		cl.http2 = o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
		fs := o.GetHttpFilters()
		for i, f := range fs {
			fp := fmt.Sprintf("%s.http_filters[%d]", p, i)
			if i == len(fs)-1 {
				if f.GetName() != upstreamCodecName {
					return nil, fmt.Errorf("emulator: %s: upstream filter chains must end with %s", fp, upstreamCodecName)
				}
				continue
			}
			hf, err := buildFilter(f.GetName(), f.GetTypedConfig(), fp, true)
			if err != nil {
				return nil, err
			}
			if hf.extProc == nil {
				return nil, fmt.Errorf("emulator: %s: %q not supported as an upstream filter", fp, f.GetName())
			}
			cl.upstreamFilter = append(cl.upstreamFilter, hf.extProc)
		}
	}
	return cl, nil
}

// checkRoutes verifies every route names a known cluster or is left to the
// router's cluster_not_found reply, and that gRPC services name clusters.
func checkRoutes(cfg *config) error {
	check := func(name, path string) error {
		if _, ok := cfg.clusters[name]; !ok {
			return fmt.Errorf("emulator: %s: unknown cluster %q", path, name)
		}
		return nil
	}
	for i, f := range cfg.filters {
		if f.extProc != nil {
			if err := check(f.extProc.cluster, fmt.Sprintf("http_filters[%d].grpc_service", i)); err != nil {
				return err
			}
		}
		if f.rateLimit != nil {
			if err := check(f.rateLimit.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().GetClusterName(),
				fmt.Sprintf("http_filters[%d].rate_limit_service", i)); err != nil {
				return err
			}
		}
	}
	// Envoy validates static route clusters unless validate_clusters is false.
	if vc := cfg.routes.GetValidateClusters(); vc == nil || vc.GetValue() {
		for i, vh := range cfg.routes.GetVirtualHosts() {
			for j, r := range vh.GetRoutes() {
				if err := check(r.GetRoute().GetCluster(), fmt.Sprintf("route_config.virtual_hosts[%d].routes[%d].route.cluster", i, j)); err != nil {
					return err
				}
			}
		}
	}
	for _, c := range cfg.clusters {
		for _, u := range c.upstreamFilter {
			if err := check(u.cluster, "clusters["+c.name+"].http_filters.grpc_service"); err != nil {
				return err
			}
		}
	}
	return nil
}
