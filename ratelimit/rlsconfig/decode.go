package rlsconfig

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"go.yaml.in/yaml/v3"
)

// fileError is an error in one file, printed as "file: line N: msg".
type fileError struct {
	file string
	line int
	msg  string
}

func (e *fileError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.file, e.line, e.msg)
	}
	return fmt.Sprintf("%s: %s", e.file, e.msg)
}

// decoder walks one file's YAML nodes.
type decoder struct {
	file string
}

func (d *decoder) errf(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &fileError{file: d.file, line: line, msg: fmt.Sprintf(format, args...)}
}

// fields iterates over a mapping node, rejecting keys not in known.
func (d *decoder) fields(n *yaml.Node, what string, known map[string]bool, fn func(key string, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return d.errf(n, "%s must be a map", what)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			return d.errf(k, "config error, key is not of type string: %v", k.Value)
		}
		if !known[k.Value] {
			return d.errf(k, "config error, unknown key '%s' in %s", k.Value, what)
		}
		if seen[k.Value] {
			return d.errf(k, "key '%s' repeated in %s", k.Value, what)
		}
		seen[k.Value] = true
		if err := fn(k.Value, v); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" && n.Tag != "!!bool") {
		if n.Tag == "!!null" {
			return "", nil
		}
		return "", d.errf(n, "%s must be a string", key)
	}
	return n.Value, nil
}

func (d *decoder) boolean(n *yaml.Node, key string) (bool, error) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		return false, d.errf(n, "%s must be true or false, not %q", key, n.Value)
	}
	return b, nil
}

func (d *decoder) uint32(n *yaml.Node, key string) (uint32, error) {
	v, err := strconv.ParseUint(n.Value, 10, 64)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil || v > math.MaxUint32 {
		return 0, d.errf(n, "%s must be an integer from 0 to 4294967295, not %q", key, n.Value)
	}
	return uint32(v), nil
}

var (
	rootKeys = map[string]bool{"domain": true, "descriptors": true}
	descKeys = map[string]bool{
		"key": true, "value": true, "rate_limit": true, "descriptors": true,
		"shadow_mode": true, "quota_mode": true, "detailed_metric": true,
		"value_to_metric": true, "share_threshold": true, "metadata": true,
	}
	limitKeys = map[string]bool{
		"unit": true, "requests_per_unit": true, "unlimited": true, "name": true, "replaces": true,
		"algorithm": true, "burst": true, "day_reset_timezone": true, "concurrency": true, "lease_ttl": true,
	}
	replacesKeys = map[string]bool{"name": true}
)

// yamlLimit is a rate_limit block as written.
type yamlLimit struct {
	node               *yaml.Node
	unit               string
	unitNode           *yaml.Node
	requestsPerUnit    uint32
	unlimited          bool
	name               string
	replaces           []string
	algorithm          Algorithm
	algorithmSet       bool
	burst              uint32
	timezone           string
	concurrency        uint32
	leaseTTL           time.Duration
	hasRequestsPerUnit bool
}

// yamlDescriptor is a descriptor as written.
type yamlDescriptor struct {
	node                                   *yaml.Node
	key, value                             string
	limit                                  *yamlLimit
	shadow, quota, detailed, v2m, shareThr bool
	children                               []yamlDescriptor
}

func (d *decoder) root(doc *yaml.Node) (domain string, descs []yamlDescriptor, err error) {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return "", nil, d.errf(nil, "config file cannot have empty domain")
		}
		n = n.Content[0]
	}
	var domainNode *yaml.Node
	err = d.fields(n, "the file", rootKeys, func(k string, v *yaml.Node) error {
		var err error
		switch k {
		case "domain":
			domainNode = v
			domain, err = d.str(v, "domain")
		case "descriptors":
			descs, err = d.descriptors(v)
		}
		return err
	})
	if err != nil {
		return "", nil, err
	}
	if domain == "" {
		return "", nil, d.errf(domainNode, "config file cannot have empty domain")
	}
	return domain, descs, nil
}

func (d *decoder) descriptors(n *yaml.Node) ([]yamlDescriptor, error) {
	if n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.errf(n, "descriptors must be a list")
	}
	out := make([]yamlDescriptor, 0, len(n.Content))
	for _, e := range n.Content {
		if e.Kind != yaml.MappingNode {
			return nil, d.errf(e, "config error, yaml file contains list of type other than map: %v", e.Value)
		}
		yd := yamlDescriptor{node: e}
		err := d.fields(e, "a descriptor", descKeys, func(k string, v *yaml.Node) error {
			var err error
			switch k {
			case "key":
				yd.key, err = d.str(v, k)
			case "value":
				yd.value, err = d.str(v, k)
			case "rate_limit":
				yd.limit, err = d.rateLimit(v)
			case "descriptors":
				yd.children, err = d.descriptors(v)
			case "shadow_mode":
				yd.shadow, err = d.boolean(v, k)
			case "quota_mode":
				yd.quota, err = d.boolean(v, k)
			case "detailed_metric":
				yd.detailed, err = d.boolean(v, k)
			case "value_to_metric":
				yd.v2m, err = d.boolean(v, k)
			case "share_threshold":
				yd.shareThr, err = d.boolean(v, k)
			case "metadata":
				if v.Kind != yaml.MappingNode {
					err = d.errf(v, "metadata must be a map")
				}
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, yd)
	}
	return out, nil
}

func (d *decoder) rateLimit(n *yaml.Node) (*yamlLimit, error) {
	l := &yamlLimit{node: n}
	err := d.fields(n, "rate_limit", limitKeys, func(k string, v *yaml.Node) error {
		var err error
		switch k {
		case "unit":
			l.unitNode = v
			l.unit, err = d.str(v, k)
		case "requests_per_unit":
			l.hasRequestsPerUnit = true
			l.requestsPerUnit, err = d.uint32(v, k)
		case "unlimited":
			l.unlimited, err = d.boolean(v, k)
		case "name":
			l.name, err = d.str(v, k)
		case "replaces":
			l.replaces, err = d.replaces(v)
		case "algorithm":
			l.algorithmSet = true
			switch v.Value {
			case "token_bucket":
				l.algorithm = TokenBucket
			case "fixed_window":
				l.algorithm = FixedWindow
			default:
				err = d.errf(v, "algorithm %q is not token_bucket or fixed_window", v.Value)
			}
		case "burst":
			l.burst, err = d.uint32(v, k)
		case "day_reset_timezone":
			l.timezone, err = d.str(v, k)
		case "concurrency":
			l.concurrency, err = d.uint32(v, k)
		case "lease_ttl":
			l.leaseTTL, err = time.ParseDuration(v.Value)
			if err != nil || l.leaseTTL < time.Millisecond {
				err = d.errf(v, "lease_ttl %q is not a duration of at least 1ms such as 10m", v.Value)
			}
		}
		return err
	})
	return l, err
}

func (d *decoder) replaces(n *yaml.Node) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, d.errf(n, "replaces must be a list")
	}
	var out []string
	for _, e := range n.Content {
		if e.Kind != yaml.MappingNode {
			return nil, d.errf(e, "config error, yaml file contains list of type other than map: %v", e.Value)
		}
		name := ""
		err := d.fields(e, "replaces", replacesKeys, func(_ string, v *yaml.Node) error {
			var err error
			name, err = d.str(v, "name")
			return err
		})
		if err != nil {
			return nil, err
		}
		if name == "" {
			return nil, d.errf(e, "should not have an empty replaces entry")
		}
		out = append(out, name)
	}
	return out, nil
}

// rule validates a rate_limit block and builds its Rule.
func (d *decoder) rule(l *yamlLimit, yd *yamlDescriptor, domain, key string) (*Rule, error) {
	r := &Rule{
		Key: key, Domain: domain, DescriptorKey: yd.key,
		Name: l.name, RequestsPerUnit: l.requestsPerUnit, Unlimited: l.unlimited, Replaces: l.replaces,
		ShadowMode: yd.shadow, QuotaMode: yd.quota, DetailedMetric: yd.detailed,
		Algorithm: l.algorithm, Burst: l.burst, Concurrency: l.concurrency, LeaseTTL: l.leaseTTL,
	}
	unit, ok := rlspb.RateLimitResponse_RateLimit_Unit_value[strings.ToUpper(l.unit)]
	validUnit := ok && unit != int32(rlspb.RateLimitResponse_RateLimit_UNKNOWN)
	at := l.unitNode
	if at == nil {
		at = l.node
	}
	switch {
	case l.unlimited:
		if validUnit {
			return nil, d.errf(at, "should not specify rate limit unit when unlimited")
		}
	case l.concurrency > 0:
		if l.unit != "" || l.hasRequestsPerUnit {
			return nil, d.errf(at, "concurrency limits take no unit or requests_per_unit")
		}
	case !validUnit:
		return nil, d.errf(at, "invalid rate limit unit '%s'", l.unit)
	}
	r.Unit = rlspb.RateLimitResponse_RateLimit_Unit(unit)
	for _, name := range l.replaces {
		if name == l.name {
			return nil, d.errf(l.node, "replaces should not contain name of same descriptor")
		}
	}
	extended := l.algorithmSet || l.burst > 0 || l.timezone != "" || l.leaseTTL > 0
	if (l.unlimited || l.concurrency > 0) && extended && l.leaseTTL == 0 {
		return nil, d.errf(l.node, "algorithm, burst and day_reset_timezone apply to rate limits only")
	}
	if l.leaseTTL > 0 && l.concurrency == 0 {
		return nil, d.errf(l.node, "lease_ttl applies to concurrency limits only")
	}
	if l.concurrency > 0 {
		if l.algorithmSet || l.burst > 0 || l.timezone != "" {
			return nil, d.errf(l.node, "algorithm, burst and day_reset_timezone apply to rate limits only")
		}
		if r.LeaseTTL == 0 {
			r.LeaseTTL = DefaultLeaseTTL
		}
	}
	if l.algorithm == FixedWindow && (l.burst > 0 || l.timezone != "") {
		return nil, d.errf(l.node, "burst and day_reset_timezone apply to algorithm token_bucket only")
	}
	if l.burst > 0 && l.burst < l.requestsPerUnit {
		return nil, d.errf(l.node, "burst %d is below requests_per_unit %d", l.burst, l.requestsPerUnit)
	}
	if l.timezone != "" {
		if r.Unit != rlspb.RateLimitResponse_RateLimit_DAY {
			return nil, d.errf(l.node, "day_reset_timezone needs unit day, not %s", strings.ToLower(r.Unit.String()))
		}
		loc, err := time.LoadLocation(l.timezone)
		if err != nil || l.timezone == "Local" {
			return nil, d.errf(l.node, "day_reset_timezone %q is not an IANA time zone such as America/Phoenix", l.timezone)
		}
		r.Location = loc
	}
	if !l.unlimited {
		r.Limit = &rlspb.RateLimitResponse_RateLimit{Name: l.name, RequestsPerUnit: l.requestsPerUnit, Unit: r.Unit}
		if l.concurrency > 0 {
			r.Limit.RequestsPerUnit = l.concurrency
		}
	}
	return r, nil
}
