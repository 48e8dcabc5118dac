package validate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFiles(t *testing.T, paths ...string) []File {
	t.Helper()
	var fs []File
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, File{Name: filepath.Base(p), Data: data})
	}
	return fs
}

var shippedIstio = []string{"../istio/guardian.yaml", "../istio/anthropic.yaml", "../istio/envoyfilter.yaml"}

func TestShippedIstioManifestsAreValid(t *testing.T) {
	got, _ := filepath.Glob("../istio/*.yaml")
	if len(got) != len(shippedIstio) {
		t.Fatalf("envoy/istio has %v; the test lists %v", got, shippedIstio)
	}
	if err := Istio(readFiles(t, shippedIstio...)); err != nil {
		t.Fatal(err)
	}
}

// TestIstioBrokenCopies swaps one shipped file for its broken copy and checks
// the message.
func TestIstioBrokenCopies(t *testing.T) {
	tests := []struct {
		broken, replaces, want string
	}{
		{"envoyfilter_unknown_field", "envoyfilter.yaml", `envoyfilter_unknown_field.yaml: EnvoyFilter claude-guardian: configPatches[0](HTTP_FILTER): patch.value as HttpFilter: proto:`},
		{"envoyfilter_upstream_role", "envoyfilter.yaml", `configPatches[2](CLUSTER).http_filters[0](envoy.filters.http.ext_proc): an upstream ext_proc filter must send grpc_service.initial_metadata x-guardian-role: upstream (got "front")`},
		{"envoyfilter_listener_limit", "envoyfilter.yaml", `envoyfilter_listener_limit.yaml: EnvoyFilter claude-guardian: configPatches[0](LISTENER): patch.value as Listener: proto:`},
		{"envoyfilter_cluster_port", "envoyfilter.yaml", `"outbound|8082||guardian.claude-guardian.svc.cluster.local": no Service port 8082 on guardian.claude-guardian.svc.cluster.local named grpc-* (or appProtocol grpc) in these manifests: Istio would not use HTTP/2`},
		{"guardian_configmap", "guardian.yaml", `guardian_configmap.yaml: ConfigMap guardian-config: data[guardian.yaml]: config: accounts[0].keys: at least one key is required`},
		{"anthropic_virtualservice", "anthropic.yaml", `anthropic_virtualservice.yaml: VirtualService claude-routes: spec: proto:`},
	}
	files, _ := filepath.Glob("testdata/istio/*.yaml")
	if len(files) != len(tests) {
		t.Errorf("%d broken copies, %d cases", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			var paths []string
			for _, p := range shippedIstio {
				if filepath.Base(p) == tt.replaces {
					p = filepath.Join("testdata/istio", tt.broken+".yaml")
				}
				paths = append(paths, p)
			}
			err := Istio(readFiles(t, paths...))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}
