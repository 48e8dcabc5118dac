package emulator

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// routeEntry is a matched route and its virtual host.
type routeEntry struct {
	vh *routev3.VirtualHost
	r  *routev3.Route
}

// perFilter returns the most specific typed_per_filter_config for name.
func (re *routeEntry) perFilter(name string) *anypb.Any {
	if re == nil {
		return nil
	}
	if a, ok := re.r.GetTypedPerFilterConfig()[name]; ok {
		return a
	}
	return re.vh.GetTypedPerFilterConfig()[name]
}

// matchRoute selects the virtual host by :authority and the first matching
// route, as Envoy's config_impl does for the fields implemented.
func matchRoute(rc *routev3.RouteConfiguration, h *headerMap) *routeEntry {
	host := strings.ToLower(h.value(":authority"))
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	var vh *routev3.VirtualHost
	best := -1
	for _, v := range rc.GetVirtualHosts() {
		for _, d := range v.GetDomains() {
			if s := domainScore(strings.ToLower(d), host); s > best {
				best, vh = s, v
			}
		}
	}
	if vh == nil {
		return nil
	}
	path := h.value(":path")
	for _, r := range vh.GetRoutes() {
		m := r.GetMatch()
		switch {
		case m.GetPath() != "":
			p := path
			if i := strings.IndexByte(p, '?'); i >= 0 {
				p = p[:i]
			}
			if p != m.GetPath() {
				continue
			}
		case !strings.HasPrefix(path, m.GetPrefix()):
			continue
		}
		if headersMatch(m.GetHeaders(), h) {
			return &routeEntry{vh: vh, r: r}
		}
	}
	return nil
}

// domainScore: exact > suffix wildcard > prefix wildcard > "*" (longest first).
func domainScore(d, host string) int {
	switch {
	case d == host:
		return 3 << 20
	case strings.HasPrefix(d, "*") && d != "*" && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
		return 2<<20 + len(d)
	case strings.HasSuffix(d, "*") && d != "*" && strings.HasPrefix(host, d[:len(d)-1]) && len(host) > len(d)-1:
		return 1<<20 + len(d)
	case d == "*":
		return 0
	}
	return -1
}

func headersMatch(ms []*routev3.HeaderMatcher, h *headerMap) bool {
	for _, m := range ms {
		if headerMatch(m, h) == m.GetInvertMatch() {
			return false
		}
	}
	return true
}

// headerMatch: multiple values are joined with "," as Envoy does.
func headerMatch(m *routev3.HeaderMatcher, h *headerMap) bool {
	var vals []string
	for _, e := range h.h {
		if e.key == strings.ToLower(m.GetName()) {
			vals = append(vals, e.value)
		}
	}
	if len(vals) == 0 {
		return false
	}
	if _, ok := m.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_PresentMatch); ok {
		return m.GetPresentMatch()
	}
	if sm := m.GetStringMatch(); sm != nil {
		return stringMatch(sm, strings.Join(vals, ","))
	}
	return true
}

func stringMatch(sm *matcherv3.StringMatcher, v string) bool {
	if sm.GetIgnoreCase() {
		v = strings.ToLower(v)
	}
	lower := func(s string) string {
		if sm.GetIgnoreCase() {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return v == lower(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(v, lower(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(v, lower(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(v, lower(p.Contains))
	}
	return false
}
