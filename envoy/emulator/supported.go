package emulator

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// supported lists, per message, the fields the emulator implements. A set
// field that is not listed is a load error: config is never silently ignored.
// Messages not listed at all are refused whole, except google.protobuf
// well-known types (durations, wrappers), which are leaves.
var supported = map[protoreflect.FullName][]string{
	"envoy.config.bootstrap.v3.Bootstrap":                                               {"admin", "static_resources"},
	"envoy.config.bootstrap.v3.Admin":                                                   {"address"}, // not served; loopback admin is not emulated
	"envoy.config.bootstrap.v3.Bootstrap.StaticResources":                               {"listeners", "clusters"},
	"envoy.config.core.v3.Address":                                                      {"socket_address"},
	"envoy.config.core.v3.SocketAddress":                                                {"address", "port_value"},
	"envoy.config.listener.v3.Listener":                                                 {"name", "address", "filter_chains", "per_connection_buffer_limit_bytes"},
	"envoy.config.listener.v3.FilterChain":                                              {"filters"},
	"envoy.config.listener.v3.Filter":                                                   {"name", "typed_config"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": {"stat_prefix", "route_config", "http_filters", "request_timeout"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter":            {"name", "typed_config"},
	"envoy.config.route.v3.RouteConfiguration":                                          {"name", "virtual_hosts", "validate_clusters"},
	"envoy.config.route.v3.VirtualHost":                                                 {"name", "domains", "routes", "include_request_attempt_count", "typed_per_filter_config"},
	"envoy.config.route.v3.Route":                                                       {"name", "match", "route", "typed_per_filter_config"},
	"envoy.config.route.v3.RouteMatch":                                                  {"prefix", "path", "headers"},
	"envoy.config.route.v3.HeaderMatcher":                                               {"name", "string_match", "present_match", "invert_match"},
	"envoy.type.matcher.v3.StringMatcher":                                               {"exact", "prefix", "suffix", "contains", "ignore_case"},
	"envoy.config.route.v3.RouteAction":                                                 {"cluster", "host_rewrite_literal", "timeout", "idle_timeout", "retry_policy", "cluster_not_found_response_code"},
	"envoy.config.route.v3.RetryPolicy":                                                 {"retry_on", "retriable_status_codes", "retriable_headers", "num_retries", "retry_back_off", "rate_limited_retry_back_off"},
	"envoy.config.route.v3.RetryPolicy.RetryBackOff":                                    {"base_interval", "max_interval"},
	"envoy.config.route.v3.RetryPolicy.RateLimitedRetryBackOff":                         {"reset_headers", "max_interval"},
	"envoy.config.route.v3.RetryPolicy.ResetHeader":                                     {"name", "format"},
	"envoy.config.route.v3.RateLimit":                                                   {"actions", "hits_addend", "apply_on_stream_done"},
	"envoy.config.route.v3.RateLimit.HitsAddend":                                        {"number", "format", "is_negative_hits"},
	"envoy.config.route.v3.RateLimit.Action":                                            {"request_headers", "generic_key", "metadata"},
	"envoy.config.route.v3.RateLimit.Action.RequestHeaders":                             {"header_name", "descriptor_key", "skip_if_absent"},
	"envoy.config.route.v3.RateLimit.Action.GenericKey":                                 {"descriptor_value", "descriptor_key"},
	"envoy.config.route.v3.RateLimit.Action.MetaData":                                   {"descriptor_key", "metadata_key", "default_value", "source", "skip_if_absent"},
	"envoy.type.metadata.v3.MetadataKey":                                                {"key", "path"},
	"envoy.type.metadata.v3.MetadataKey.PathSegment":                                    {"key"},
	"envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor": {"grpc_service", "failure_mode_allow", "processing_mode",
		"message_timeout", "max_message_timeout", "mutation_rules", "metadata_options", "allow_mode_override",
		"allowed_override_modes", "disable_clear_route_cache", "route_cache_action", "status_on_error", "disable_immediate_response"},
	"envoy.extensions.filters.http.ext_proc.v3.ProcessingMode": {"request_header_mode", "response_header_mode",
		"request_body_mode", "response_body_mode", "request_trailer_mode", "response_trailer_mode"},
	"envoy.extensions.filters.http.ext_proc.v3.MetadataOptions":                    {"receiving_namespaces"},
	"envoy.extensions.filters.http.ext_proc.v3.MetadataOptions.MetadataNamespaces": {"untyped"},
	"envoy.config.common.mutation_rules.v3.HeaderMutationRules":                    {"allow_all_routing", "allow_envoy", "disallow_system", "disallow_all", "disallow_is_error"},
	"envoy.config.core.v3.GrpcService":                                             {"envoy_grpc", "initial_metadata"},
	"envoy.config.core.v3.GrpcService.EnvoyGrpc":                                   {"cluster_name"},
	"envoy.config.core.v3.HeaderValue":                                             {"key", "value"},
	"envoy.config.core.v3.HeaderValueOption":                                       {"header", "append_action"},
	"envoy.type.v3.HttpStatus":                                                     {"code"},
	"envoy.extensions.filters.http.ratelimit.v3.RateLimit": {"domain", "timeout", "failure_mode_deny", "rate_limit_service",
		"enable_x_ratelimit_headers", "disable_x_envoy_ratelimited_header", "rate_limited_status", "response_headers_to_add",
		"status_on_error", "rate_limits"},
	"envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute":              {"rate_limits", "domain"},
	"envoy.config.ratelimit.v3.RateLimitServiceConfig":                          {"grpc_service", "transport_api_version"},
	"envoy.extensions.filters.http.router.v3.Router":                            {},
	"envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec":             {},
	"envoy.config.cluster.v3.Cluster":                                           {"name", "type", "connect_timeout", "load_assignment", "transport_socket", "typed_extension_protocol_options", "dns_lookup_family", "circuit_breakers"},
	"envoy.config.cluster.v3.CircuitBreakers":                                   {"thresholds"},
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds":                        {"priority", "max_retries"},
	"envoy.config.endpoint.v3.ClusterLoadAssignment":                            {"cluster_name", "endpoints"},
	"envoy.config.endpoint.v3.LocalityLbEndpoints":                              {"lb_endpoints"},
	"envoy.config.endpoint.v3.LbEndpoint":                                       {"endpoint"},
	"envoy.config.endpoint.v3.Endpoint":                                         {"address"},
	"envoy.config.core.v3.TransportSocket":                                      {"name", "typed_config"},
	"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext":              {"sni", "common_tls_context"},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext":                {"alpn_protocols", "validation_context"},
	"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext":    {"trusted_ca", "match_typed_subject_alt_names"},
	"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher":           {"san_type", "matcher"},
	"envoy.config.core.v3.DataSource":                                           {"filename"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions":                    {"auto_config", "explicit_http_config", "http_filters"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig":     {"http_protocol_options", "http2_protocol_options"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig": {"http_protocol_options", "http2_protocol_options"},
	"envoy.config.core.v3.Http1ProtocolOptions":                                 {},
	"envoy.config.core.v3.Http2ProtocolOptions":                                 {},
	"envoy.config.core.v3.TypedExtensionConfig":                                 {"name", "typed_config"},
}

// checkSupported walks m (descending into Any) and returns an error naming
// the path of the first field the emulator does not implement.
func checkSupported(m proto.Message) error {
	return walk(m.ProtoReflect(), "")
}

func walk(m protoreflect.Message, path string) error {
	name := m.Descriptor().FullName()
	if name == "google.protobuf.Any" {
		a, ok := m.Interface().(*anypb.Any)
		if !ok {
			return fmt.Errorf("emulator: %s: malformed Any", path)
		}
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("emulator: %s: %w", path, err)
		}
		return walk(inner.ProtoReflect(), path)
	}
	if strings.HasPrefix(string(name), "google.protobuf.") {
		return nil
	}
	allowed, ok := supported[name]
	if !ok {
		return fmt.Errorf("emulator: %s: %s is not implemented by the emulator", strings.TrimPrefix(path, "."), name)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		if !contains(allowed, string(fd.Name())) {
			err = fmt.Errorf("emulator: %s: field not implemented by the emulator", strings.TrimPrefix(p, "."))
			return false
		}
		err = walkValue(fd, v, p)
		return err == nil
	})
	return err
}

func walkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, p string) error {
	switch {
	case fd.IsMap():
		var err error
		if fd.MapValue().Kind() != protoreflect.MessageKind {
			return nil
		}
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			err = walk(mv.Message(), fmt.Sprintf("%s[%s]", p, k.String()))
			return err == nil
		})
		return err
	case fd.IsList():
		if fd.Kind() != protoreflect.MessageKind {
			return nil
		}
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			if err := walk(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i)); err != nil {
				return err
			}
		}
		return nil
	case fd.Kind() == protoreflect.MessageKind:
		return walk(v.Message(), p)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
