package rlsconfig

import (
	"strings"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
)

// Match is the outcome of [Config.Lookup].
type Match struct {
	// Rule is the matched rule; nil when nothing matched.
	Rule *Rule
	// MetricKey is the stats key: Rule.Key unless detailed_metric or
	// value_to_metric made it depend on the request's values (Dynamic).
	MetricKey string
	Dynamic   bool
	// Shared, when not nil, holds per entry the wildcard pattern that
	// replaces the entry's value in the counter key (share_threshold).
	Shared []string
}

// how a level matched.
const (
	byExact uint8 = iota + 1
	byWild
	byKey
)

// maxTracked is how many levels Lookup remembers for metric keys; deeper
// descriptors use the rule's static key.
const maxTracked = 16

// Lookup finds the rule for one request descriptor of domain.
func (c *Config) Lookup(domain string, entries []*rlv3.RateLimitDescriptor_Entry) Match {
	d := c.domains[domain]
	if d == nil || len(entries) == 0 {
		return Match{}
	}
	var (
		buf      [128]byte
		how      [maxTracked]uint8
		nodes    [maxTracked]*node
		wildKeys [maxTracked]string
		rule     *Rule
		special  bool // a level needs a request-specific metric key
	)
	prev, children := d, d.children
	for i, e := range entries {
		b := append(buf[:0], e.Key...)
		b = append(b, '_')
		b = append(b, e.Value...)
		next := children[string(b)]
		h, wk := byExact, ""
		if next == nil && len(prev.wild) > 0 {
			s := string(b)
			for _, w := range prev.wild {
				if wildcardMatch(w.parts, s) {
					next, h, wk = children[w.key], byWild, w.key
					break
				}
			}
		}
		if next == nil {
			next, h = children[e.Key], byKey
		}
		if next == nil {
			break
		}
		if i < maxTracked {
			how[i], nodes[i], wildKeys[i] = h, next, wk
		}
		special = special || h == byWild || next.valueToMetric
		if next.rule != nil && i == len(entries)-1 {
			rule = next.rule
		}
		if len(next.children) == 0 {
			break
		}
		prev, children = next, next.children
	}
	if rule == nil {
		return Match{}
	}
	m := Match{Rule: rule, MetricKey: rule.Key}
	n := min(len(entries), maxTracked)
	for i := range n {
		if how[i] == byWild && nodes[i].shareThreshold {
			if m.Shared == nil {
				m.Shared = make([]string, len(entries))
			}
			m.Shared[i] = nodes[i].sharePattern
		}
	}
	switch {
	case rule.DetailedMetric:
		m.MetricKey, m.Dynamic = detailedKey(domain, entries, m.Shared), true
	case special && len(entries) <= maxTracked:
		k := valueKey(domain, entries, how[:n], nodes[:n], wildKeys[:n], m.Shared)
		if k != rule.Key {
			m.MetricKey, m.Dynamic = k, true
		}
	}
	return m
}

// detailedKey is the reference's detailed_metric key: every entry as
// key_value (shared entries as key_pattern).
func detailedKey(domain string, entries []*rlv3.RateLimitDescriptor_Entry, shared []string) string {
	var sb strings.Builder
	sb.WriteString(domain)
	for i, e := range entries {
		sb.WriteByte('.')
		sb.WriteString(e.Key)
		switch {
		case shared != nil && shared[i] != "":
			sb.WriteByte('_')
			sb.WriteString(shared[i])
		case shared != nil && e.Value == "":
		default:
			sb.WriteByte('_')
			sb.WriteString(e.Value)
		}
	}
	return sb.String()
}

// valueKey is the reference's value_to_metric key.
func valueKey(domain string, entries []*rlv3.RateLimitDescriptor_Entry, how []uint8, nodes []*node, wildKeys []string, shared []string) string {
	var sb strings.Builder
	sb.WriteString(domain)
	for i, e := range entries[:len(how)] {
		sb.WriteByte('.')
		sb.WriteString(e.Key)
		v := ""
		switch how[i] {
		case byWild:
			switch {
			case shared != nil && shared[i] != "":
				v = shared[i]
			case nodes[i].valueToMetric:
				v = e.Value
			default:
				v = strings.TrimPrefix(wildKeys[i], e.Key+"_")
			}
		case byExact:
			v = e.Value
		case byKey:
			if nodes[i].valueToMetric {
				v = e.Value
			}
		}
		if v != "" {
			sb.WriteByte('_')
			sb.WriteString(v)
		}
	}
	return sb.String()
}

// wildcardMatch reports whether value matches a pattern split on '*': each
// '*' matches any run of characters, including none.
func wildcardMatch(parts []string, value string) bool {
	if len(parts) == 1 {
		return parts[0] == value
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(value) < len(first)+len(last) || !strings.HasPrefix(value, first) || !strings.HasSuffix(value, last) {
		return false
	}
	rest := value[len(first) : len(value)-len(last)]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return true
}

func splitStar(s string) []string { return strings.Split(s, "*") }
