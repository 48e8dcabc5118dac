// Package validate checks Envoy configuration the way Envoy would before it
// ever runs: it parses bootstrap YAML with go-control-plane v1.40's protos
// (unknown fields and unregistered typed_config types are errors), runs the
// generated ValidateAll on every message including those packed in Any, and
// adds the checks Envoy makes only in C++ plus guardian's own contract with
// its processors (reference/envoy-protocols.md §7).
package validate

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	// Every extension a shipped config may name must be registered, or
	// protojson cannot resolve its typed_config.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// Bootstrap parses and validates an Envoy bootstrap YAML document. It
// returns the parsed bootstrap when it is valid, else every problem found
// (proto validation stops at the first problem per message).
func Bootstrap(data []byte) (*bootstrapv3.Bootstrap, error) {
	b, err := ParseBootstrap(data)
	if err != nil {
		return nil, err
	}
	var errs []error
	if err := b.ValidateAll(); err != nil {
		errs = append(errs, fmt.Errorf("bootstrap: %w", err))
	}
	// ValidateAll does not descend into Any: unpack and validate each.
	errs = append(errs, validateAnys(b.ProtoReflect(), "")...)
	if len(errs) == 0 {
		errs = append(errs, lintBootstrap(b)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b, nil
}

// ParseBootstrap decodes YAML into a Bootstrap, rejecting unknown fields and
// typed_config types that are not registered.
func ParseBootstrap(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, b); err != nil {
		return nil, yamlPosition(data, err)
	}
	return b, nil
}

var (
	unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)
	jsonOffset   = regexp.MustCompile(`^proto:[\s\x{00a0}]*\(line \d+:\d+\):[\s\x{00a0}]*`) // protojson varies its spaces
)

// yamlPosition rewrites protojson's error, whose position is in the JSON it
// was converted to, to name the YAML line of an unknown field.
func yamlPosition(data []byte, err error) error {
	msg := jsonOffset.ReplaceAllString(err.Error(), "")
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		for i, line := range strings.Split(string(data), "\n") {
			t := strings.TrimLeft(line, " -{")
			if strings.HasPrefix(t, m[1]+":") || strings.Contains(line, " "+m[1]+":") || strings.Contains(line, "{"+m[1]+":") {
				return fmt.Errorf("line %d: %s", i+1, msg)
			}
		}
	}
	return fmt.Errorf("proto: %s", msg)
}
