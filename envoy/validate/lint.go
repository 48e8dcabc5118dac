package validate

import (
	"errors"
	"fmt"
	"regexp"
	"slices"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/claude-guardian/claude-guardian/extproc"
)

// Extension names as Envoy knows them.
const (
	hcmName           = "envoy.filters.network.http_connection_manager"
	extProcName       = "envoy.filters.http.ext_proc"
	rateLimitName     = "envoy.filters.http.ratelimit"
	routerName        = "envoy.filters.http.router"
	upstreamCodecName = "envoy.filters.http.upstream_codec"
	httpOptionsKey    = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// linter collects the checks Envoy performs only in C++ and guardian's
// contract with its processors.
type linter struct {
	clusters map[string]*clusterv3.Cluster
	// namespaces the front ext_proc filter accepts dynamic metadata in.
	receiving map[string]bool
	errs      []error
}

func (l *linter) errorf(path, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func lintBootstrap(b *bootstrapv3.Bootstrap) []error {
	l := &linter{clusters: map[string]*clusterv3.Cluster{}, receiving: map[string]bool{}}
	sr := b.GetStaticResources()
	for _, c := range sr.GetClusters() {
		l.clusters[c.GetName()] = c
	}
	for i, c := range sr.GetClusters() {
		l.cluster(fmt.Sprintf("static_resources.clusters[%d](%s)", i, c.GetName()), c)
	}
	for i, lis := range sr.GetListeners() {
		for j, fc := range lis.GetFilterChains() {
			for k, f := range fc.GetFilters() {
				p := fmt.Sprintf("static_resources.listeners[%d].filter_chains[%d].filters[%d]", i, j, k)
				if f.GetName() != hcmName {
					continue
				}
				hcm := &hcmv3.HttpConnectionManager{}
				if !unpack(l, p, f.GetTypedConfig(), hcm) {
					continue
				}
				l.hcm(p, hcm)
			}
		}
	}
	return l.errs
}

func unpack(l *linter, path string, a *anypb.Any, m proto.Message) bool {
	if a == nil {
		l.errorf(path, "typed_config is required")
		return false
	}
	if err := a.UnmarshalTo(m); err != nil {
		l.errorf(path, "typed_config: %v", err)
		return false
	}
	return true
}

func (l *linter) hcm(path string, hcm *hcmv3.HttpConnectionManager) {
	filters := hcm.GetHttpFilters()
	if len(filters) == 0 || filters[len(filters)-1].GetName() != routerName {
		l.errorf(path+".http_filters", "the last HTTP filter must be %s", routerName)
	}
	for i, f := range filters {
		p := fmt.Sprintf("%s.http_filters[%d](%s)", path, i, f.GetName())
		switch f.GetName() {
		case extProcName:
			c := &extprocv3.ExternalProcessor{}
			if unpack(l, p, f.GetTypedConfig(), c) {
				l.extProc(p, c, false)
				for _, ns := range c.GetMetadataOptions().GetReceivingNamespaces().GetUntyped() {
					l.receiving[ns] = true
				}
			}
		case rateLimitName:
			c := &ratelimitv3.RateLimit{}
			if unpack(l, p, f.GetTypedConfig(), c) {
				l.rateLimitFilter(p, c)
			}
		}
	}
	if rc := hcm.GetRouteConfig(); rc != nil {
		l.routes(path+".route_config", rc)
	} else if hcm.GetRds() != nil {
		l.errorf(path, "rds: guardian's configs ship a static route_config")
	}
}

// extProc applies Envoy's config.cc checks and guardian's processor
// contract to one ext_proc filter.
func (l *linter) extProc(path string, c *extprocv3.ExternalProcessor, upstream bool) {
	hasGRPC, hasHTTP := c.GetGrpcService() != nil, c.GetHttpService() != nil
	if hasGRPC == hasHTTP {
		l.errorf(path, "exactly one of grpc_service and http_service must be set")
	}
	pm := c.GetProcessingMode()
	duplex := extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED
	if pm.GetRequestBodyMode() == duplex && pm.GetRequestTrailerMode() != extprocv3.ProcessingMode_SEND {
		l.errorf(path, "request_body_mode FULL_DUPLEX_STREAMED requires request_trailer_mode SEND")
	}
	if pm.GetResponseBodyMode() == duplex && pm.GetResponseTrailerMode() != extprocv3.ProcessingMode_SEND {
		l.errorf(path, "response_body_mode FULL_DUPLEX_STREAMED requires response_trailer_mode SEND")
	}
	if (pm.GetRequestBodyMode() == duplex || pm.GetResponseBodyMode() == duplex) && c.GetFailureModeAllow() {
		l.errorf(path, "FULL_DUPLEX_STREAMED cannot be combined with failure_mode_allow")
	}
	if hasHTTP && (pm.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE || pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE ||
		pm.GetRequestTrailerMode() == extprocv3.ProcessingMode_SEND || pm.GetResponseTrailerMode() == extprocv3.ProcessingMode_SEND) {
		l.errorf(path, "http_service can send headers only: body modes must be NONE and trailer modes not SEND")
	}
	if c.GetDisableClearRouteCache() && c.GetRouteCacheAction() != extprocv3.ExternalProcessor_DEFAULT {
		l.errorf(path, "disable_clear_route_cache and route_cache_action cannot both be set")
	}
	gs := c.GetGrpcService()
	if gs == nil {
		return
	}
	cluster := gs.GetEnvoyGrpc().GetClusterName()
	if gs.GetEnvoyGrpc() == nil {
		l.errorf(path+".grpc_service", "use envoy_grpc (a cluster) to reach guardian")
	} else {
		l.grpcCluster(path+".grpc_service.envoy_grpc.cluster_name", cluster)
	}
	role := ""
	for _, md := range gs.GetInitialMetadata() {
		if md.GetKey() == extproc.RoleMetadataKey {
			role = md.GetValue()
		}
	}
	if upstream {
		if role != string(extproc.RoleUpstream) {
			l.errorf(path, "an upstream ext_proc filter must send grpc_service.initial_metadata %s: %s (got %q)", extproc.RoleMetadataKey, extproc.RoleUpstream, role)
		}
		if pm.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE || pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE {
			l.errorf(path, "the upstream processor takes headers only: body modes must be NONE")
		}
		return
	}
	if role != "" && role != string(extproc.RoleFront) {
		l.errorf(path, "a downstream ext_proc filter is guardian's front processor: %s must be absent or %q (got %q)", extproc.RoleMetadataKey, extproc.RoleFront, role)
	}
	want := map[string][2]string{
		"request_header_mode":  {headerMode(pm.GetRequestHeaderMode()), "SEND"},
		"request_body_mode":    {pm.GetRequestBodyMode().String(), "BUFFERED"},
		"response_header_mode": {headerMode(pm.GetResponseHeaderMode()), "SEND"},
		"response_body_mode":   {pm.GetResponseBodyMode().String(), "STREAMED"},
	}
	for _, f := range []string{"request_header_mode", "request_body_mode", "response_header_mode", "response_body_mode"} {
		if got := want[f]; got[0] != got[1] {
			l.errorf(path+".processing_mode."+f, "the front processor needs %s, got %s", got[1], got[0])
		}
	}
	if !slices.Contains(c.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(), extproc.MetadataNamespace) {
		l.errorf(path+".metadata_options.receiving_namespaces.untyped", "must include %q or Envoy drops the front processor's metadata", extproc.MetadataNamespace)
	}
}

func headerMode(m extprocv3.ProcessingMode_HeaderSendMode) string {
	if m == extprocv3.ProcessingMode_DEFAULT {
		return "SEND"
	}
	return m.String()
}

func (l *linter) grpcCluster(path, name string) {
	c, ok := l.clusters[name]
	if !ok {
		l.errorf(path, "cluster %q is not defined", name)
		return
	}
	opts := &httpv3.HttpProtocolOptions{}
	if a := c.GetTypedExtensionProtocolOptions()[httpOptionsKey]; a == nil || a.UnmarshalTo(opts) != nil ||
		(opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil && opts.GetUseDownstreamProtocolConfig().GetHttp2ProtocolOptions() == nil) {
		l.errorf(path, "cluster %q carries gRPC and needs explicit_http_config.http2_protocol_options", name)
	}
}

func (l *linter) cluster(path string, c *clusterv3.Cluster) {
	a := c.GetTypedExtensionProtocolOptions()[httpOptionsKey]
	if a == nil {
		return
	}
	opts := &httpv3.HttpProtocolOptions{}
	if !unpack(l, path+".typed_extension_protocol_options", a, opts) {
		return
	}
	filters := opts.GetHttpFilters()
	if len(filters) == 0 {
		return
	}
	if filters[len(filters)-1].GetName() != upstreamCodecName {
		l.errorf(path+".http_filters", "an upstream filter chain must end with %s", upstreamCodecName)
	}
	for i, f := range filters {
		p := fmt.Sprintf("%s.http_filters[%d](%s)", path, i, f.GetName())
		if f.GetName() == extProcName {
			ep := &extprocv3.ExternalProcessor{}
			if unpack(l, p, f.GetTypedConfig(), ep) {
				l.extProc(p, ep, true)
			}
		}
	}
}

func (l *linter) rateLimitFilter(path string, c *ratelimitv3.RateLimit) {
	svc := c.GetRateLimitService()
	if svc.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		l.errorf(path+".rate_limit_service.transport_api_version", "must be V3")
	}
	if eg := svc.GetGrpcService().GetEnvoyGrpc(); eg != nil {
		l.grpcCluster(path+".rate_limit_service.grpc_service.envoy_grpc.cluster_name", eg.GetClusterName())
	}
	l.rateLimits(path+".rate_limits", c.GetRateLimits())
}

var dynMeta = regexp.MustCompile(`^%DYNAMIC_METADATA\(([^:()]+):([^:()]+)\)%$`)

// rateLimits checks that descriptors read what guardian writes: headers the
// front processor sets and metadata keys it publishes.
func (l *linter) rateLimits(path string, rls []*routev3.RateLimit) {
	for i, rl := range rls {
		p := fmt.Sprintf("%s[%d]", path, i)
		for j, a := range rl.GetActions() {
			if rh := a.GetRequestHeaders(); rh != nil {
				name := rh.GetHeaderName()
				if len(name) > len(extproc.InternalPrefix) && name[:len(extproc.InternalPrefix)] == extproc.InternalPrefix &&
					name != extproc.HeaderTenant && name != extproc.HeaderBackend && name != extproc.HeaderRequestID {
					l.errorf(fmt.Sprintf("%s.actions[%d].request_headers.header_name", p, j), "guardian never sets %q", name)
				}
			}
		}
		if f := rl.GetHitsAddend().GetFormat(); f != "" {
			m := dynMeta.FindStringSubmatch(f)
			switch {
			case m == nil:
				l.errorf(p+".hits_addend.format", "%q: guardian's configs take hits from %%DYNAMIC_METADATA(ns:key)%%", f)
			case m[1] != extproc.MetadataNamespace:
				l.errorf(p+".hits_addend.format", "namespace %q: the front processor writes %q", m[1], extproc.MetadataNamespace)
			case !slices.Contains(extproc.MetadataKeys, m[2]):
				l.errorf(p+".hits_addend.format", "key %q: the front processor writes %v", m[2], extproc.MetadataKeys)
			case !l.receiving[m[1]]:
				l.errorf(p+".hits_addend.format", "namespace %q is not in the ext_proc filter's receiving_namespaces: the metadata would be dropped", m[1])
			}
		}
	}
}

// routes checks cluster references and the x-guardian-backend matches.
func (l *linter) routes(path string, rc *routev3.RouteConfiguration) {
	for i, vh := range rc.GetVirtualHosts() {
		vp := fmt.Sprintf("%s.virtual_hosts[%d](%s)", path, i, vh.GetName())
		if a := vh.GetTypedPerFilterConfig()[rateLimitName]; a != nil {
			per := &ratelimitv3.RateLimitPerRoute{}
			if unpack(l, vp+".typed_per_filter_config["+rateLimitName+"]", a, per) {
				l.rateLimits(vp+".typed_per_filter_config["+rateLimitName+"].rate_limits", per.GetRateLimits())
			}
		}
		for j, r := range vh.GetRoutes() {
			rp := fmt.Sprintf("%s.routes[%d]", vp, j)
			if c := r.GetRoute().GetCluster(); c != "" {
				if _, ok := l.clusters[c]; !ok {
					l.errorf(rp+".route.cluster", "cluster %q is not defined", c)
				}
			}
			for k, h := range r.GetMatch().GetHeaders() {
				if h.GetName() != extproc.HeaderBackend {
					continue
				}
				v := h.GetStringMatch().GetExact()
				if v != extproc.BackendClaude && v != extproc.BackendOllama {
					l.errorf(fmt.Sprintf("%s.match.headers[%d]", rp, k), "%s is matched exactly against %q or %q (what the front processor sets), got %v",
						extproc.HeaderBackend, extproc.BackendClaude, extproc.BackendOllama, h.GetStringMatch())
				}
			}
		}
	}
}

// ErrNotBootstrap is returned for documents that are not Envoy bootstraps.
var ErrNotBootstrap = errors.New("validate: not an Envoy bootstrap")
