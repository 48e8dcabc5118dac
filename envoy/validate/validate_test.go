package validate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShippedBootstrapIsValid(t *testing.T) {
	data, err := os.ReadFile("../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Bootstrap(data)
	if err != nil {
		t.Fatalf("envoy/envoy.yaml: %v", err)
	}
	if n := len(b.GetStaticResources().GetClusters()); n != 4 {
		t.Errorf("clusters = %d", n)
	}
}

// TestBrokenCopies loads each deliberately broken copy of envoy.yaml and
// checks that validation names the problem precisely.
func TestBrokenCopies(t *testing.T) {
	tests := map[string]string{
		"unknown_field":            `line 27: unknown field "stat_prefixx"`,
		"unregistered_type":        `unable to resolve "type.googleapis.com/envoy.extensions.filters.http.router.v9.Router": "not found"`,
		"negative_message_timeout": `static_resources.listeners[0].filter_chains[0].filters[0].typed_config(HttpConnectionManager).http_filters[0].typed_config(ExternalProcessor): invalid ExternalProcessor.MessageTimeout: value must be inside range [0s, 1h0m0s]`,
		"missing_cluster":          `static_resources.listeners[0].filter_chains[0].filters[0].route_config.virtual_hosts[0](claude).routes[0].route.cluster: cluster "ollama-typo" is not defined`,
		"no_upstream_codec":        `static_resources.clusters[0](anthropic).http_filters: an upstream filter chain must end with envoy.filters.http.upstream_codec`,
		"upstream_role_missing":    `static_resources.clusters[0](anthropic).http_filters[0](envoy.filters.http.ext_proc): an upstream ext_proc filter must send grpc_service.initial_metadata x-guardian-role: upstream (got "")`,
		"backend_value":            `static_resources.listeners[0].filter_chains[0].filters[0].route_config.virtual_hosts[0](claude).routes[0].match.headers[0]: x-guardian-backend is matched exactly against "claude" or "ollama" (what the front processor sets), got exact:"local"`,
		"front_body_mode":          `static_resources.listeners[0].filter_chains[0].filters[0].http_filters[0](envoy.filters.http.ext_proc).processing_mode.request_body_mode: the front processor needs BUFFERED, got STREAMED`,
		"duplex_without_trailers":  `static_resources.listeners[0].filter_chains[0].filters[0].http_filters[0](envoy.filters.http.ext_proc): response_body_mode FULL_DUPLEX_STREAMED requires response_trailer_mode SEND`,
		"hits_addend_key":          `static_resources.listeners[0].filter_chains[0].filters[0].route_config.virtual_hosts[0](claude).typed_per_filter_config[envoy.filters.http.ratelimit].rate_limits[2].hits_addend.format: key "input_tokens": the front processor writes [tenant request_id backend model input_tokens_estimate max_tokens input_tokens_actual input_tokens_refund input_tokens_extra]`,
		"grpc_cluster_http1":       `static_resources.listeners[0].filter_chains[0].filters[0].http_filters[0](envoy.filters.http.ext_proc).grpc_service.envoy_grpc.cluster_name: cluster "guardian_extproc" carries gRPC and needs explicit_http_config.http2_protocol_options`,
		"receiving_namespace":      `static_resources.listeners[0].filter_chains[0].filters[0].http_filters[0](envoy.filters.http.ext_proc).metadata_options.receiving_namespaces.untyped: must include "claude-guardian" or Envoy drops the front processor's metadata`,
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) != len(tests) {
		t.Errorf("%d testdata files, %d cases: every broken copy needs a case", len(files), len(tests))
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Bootstrap(data)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, want)
			}
		})
	}
}
