package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"

	"github.com/claude-guardian/claude-guardian/config"
)

// File is one manifest file to validate.
type File struct {
	Name string
	Data []byte
}

type object struct {
	file, kind, name string
	spec             json.RawMessage
	raw              map[string]json.RawMessage
}

// Istio validates Kubernetes manifests for the mesh: Istio resources decode
// into istio.io/api types (unknown fields rejected), each EnvoyFilter patch
// value is validated as the Envoy type it becomes (with every typed_config
// resolved and validated, and the same processor contract as Bootstrap),
// gRPC clusters named outbound|PORT||HOST must reach a Service port named
// grpc-*, and guardian's ConfigMap must hold a valid guardian.yaml. Files
// are checked together so that references across them resolve.
func Istio(files []File) error {
	var objs []object
	var errs []error
	for _, f := range files {
		docs, err := splitDocs(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, docs...)
	}
	grpcPorts := map[string]bool{} // "port||host"
	for _, o := range objs {
		if o.kind == "Service" {
			collectServicePorts(o, grpcPorts)
		}
	}
	for _, o := range objs {
		if err := validateObject(o, grpcPorts); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func splitDocs(f File) ([]object, error) {
	var out []object
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(f.Data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", f.Name, i+1, err)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(js, &raw); err != nil {
			return nil, fmt.Errorf("%s: document %d: not an object: %w", f.Name, i+1, err)
		}
		var kind string
		_ = json.Unmarshal(raw["kind"], &kind)
		var meta struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(raw["metadata"], &meta)
		if kind == "" || meta.Name == "" {
			return nil, fmt.Errorf("%s: document %d: kind and metadata.name are required", f.Name, i+1)
		}
		out = append(out, object{file: f.Name, kind: kind, name: meta.Name, spec: raw["spec"], raw: raw})
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func collectServicePorts(o object, grpc map[string]bool) {
	var meta struct {
		Namespace string `json:"namespace"`
	}
	_ = json.Unmarshal(o.raw["metadata"], &meta)
	var spec struct {
		Ports []struct {
			Name        string `json:"name"`
			Port        int    `json:"port"`
			AppProtocol string `json:"appProtocol"`
		} `json:"ports"`
	}
	_ = json.Unmarshal(o.spec, &spec)
	host := o.name + "." + meta.Namespace + ".svc.cluster.local"
	for _, p := range spec.Ports {
		if strings.HasPrefix(p.Name, "grpc") || p.AppProtocol == "grpc" {
			grpc[fmt.Sprintf("%d||%s", p.Port, host)] = true
		}
	}
}

func validateObject(o object, grpcPorts map[string]bool) error {
	where := fmt.Sprintf("%s: %s %s", o.file, o.kind, o.name)
	var m proto.Message
	switch o.kind {
	case "EnvoyFilter":
		ef := &networking.EnvoyFilter{}
		if err := protojson.Unmarshal(o.spec, ef); err != nil {
			return fmt.Errorf("%s: spec: %w", where, err)
		}
		return envoyFilter(where, ef, grpcPorts)
	case "ServiceEntry":
		m = &networking.ServiceEntry{}
	case "DestinationRule":
		m = &networking.DestinationRule{}
	case "Gateway":
		m = &networking.Gateway{}
	case "VirtualService":
		m = &networking.VirtualService{}
	case "ConfigMap":
		return guardianConfigMap(where, o)
	default:
		return nil // core Kubernetes kinds: kubectl validates them
	}
	if err := protojson.Unmarshal(o.spec, m); err != nil {
		return fmt.Errorf("%s: spec: %w", where, err)
	}
	return nil
}

// guardianConfigMap checks a guardian.yaml carried in a ConfigMap. Its keys
// come from a Secret at run time, so every ${…KEY…} variable is taken as
// set (to a placeholder unique to the variable) and every other variable as
// unset, so that defaults apply.
func guardianConfigMap(where string, o object) error {
	var data map[string]string
	_ = json.Unmarshal(o.raw["data"], &data)
	body, ok := data["guardian.yaml"]
	if !ok {
		return nil
	}
	if _, err := config.Parse([]byte(body), func(name string) (string, bool) {
		if strings.Contains(name, "KEY") {
			return "placeholder-" + name, true
		}
		return "", false
	}); err != nil {
		return fmt.Errorf("%s: data[guardian.yaml]: %w", where, err)
	}
	return nil
}

var outboundCluster = regexp.MustCompile(`^outbound\|(\d+)\|[^|]*\|(.+)$`)

func envoyFilter(where string, ef *networking.EnvoyFilter, grpcPorts map[string]bool) error {
	l := &linter{clusters: map[string]*clusterv3.Cluster{}, receiving: map[string]bool{}, istioGRPC: grpcPorts}
	type pending struct {
		path string
		vh   *routev3.VirtualHost
	}
	var vhosts []pending
	for i, cp := range ef.GetConfigPatches() {
		p := fmt.Sprintf("%s: configPatches[%d](%s)", where, i, cp.GetApplyTo())
		js, err := protojson.Marshal(cp.GetPatch().GetValue())
		if err != nil {
			l.errorf(p, "patch.value: %v", err)
			continue
		}
		op := cp.GetPatch().GetOperation()
		whole := op != networking.EnvoyFilter_Patch_MERGE // a MERGE value is partial
		switch cp.GetApplyTo() {
		case networking.EnvoyFilter_HTTP_FILTER:
			f := &hcmv3.HttpFilter{}
			if decode(l, p, js, f, whole) {
				l.httpFilter(p+"("+f.GetName()+")", f)
			}
		case networking.EnvoyFilter_CLUSTER:
			c := &clusterv3.Cluster{}
			if decode(l, p, js, c, whole) {
				l.cluster(p, c)
			}
		case networking.EnvoyFilter_VIRTUAL_HOST:
			vh := &routev3.VirtualHost{}
			if decode(l, p, js, vh, whole) {
				vhosts = append(vhosts, pending{p, vh})
			}
		case networking.EnvoyFilter_HTTP_ROUTE:
			decode(l, p, js, &routev3.Route{}, whole)
		case networking.EnvoyFilter_LISTENER:
			decode(l, p, js, &listenerv3.Listener{}, whole)
		default:
			l.errorf(p, "applyTo %s is not used by guardian's manifests", cp.GetApplyTo())
		}
	}
	// Virtual hosts last: their hits_addend needs the receiving namespaces.
	for _, v := range vhosts {
		if a := v.vh.GetTypedPerFilterConfig()[rateLimitName]; a != nil {
			per := &ratelimitv3.RateLimitPerRoute{}
			if unpack(l, v.path+".typed_per_filter_config", a, per) {
				l.rateLimits(v.path+".typed_per_filter_config["+rateLimitName+"].rate_limits", per.GetRateLimits())
			}
		}
	}
	return errors.Join(l.errs...)
}

func decode(l *linter, path string, js []byte, m proto.Message, whole bool) bool {
	if err := protojson.Unmarshal(js, m); err != nil {
		l.errorf(path, "patch.value as %s: %v", m.ProtoReflect().Descriptor().Name(), err)
		return false
	}
	if v, ok := m.(validatorAll); ok && whole {
		if err := v.ValidateAll(); err != nil {
			l.errorf(path, "patch.value: %v", err)
		}
	}
	for _, err := range validateAnys(m.ProtoReflect(), "patch.value") {
		l.errorf(path, "%v", err)
	}
	return true
}

// istioCluster checks an Istio-generated cluster name against the Services
// in the manifests.
func (l *linter) istioCluster(path, name string) {
	m := outboundCluster.FindStringSubmatch(name)
	if m == nil {
		l.errorf(path, "%q: in Istio, name guardian's Service cluster as outbound|PORT||HOST", name)
		return
	}
	if !l.istioGRPC[m[1]+"||"+m[2]] {
		l.errorf(path, "%q: no Service port %s on %s named grpc-* (or appProtocol grpc) in these manifests: Istio would not use HTTP/2", name, m[1], m[2])
	}
}
