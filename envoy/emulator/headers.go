package emulator

import (
	"net/http"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// hdr is one header entry; keys are lower case as in Envoy's header maps.
type hdr struct{ key, value string }

// headerMap is an ordered multi-map like Envoy's HeaderMapImpl.
type headerMap struct{ h []hdr }

func (m *headerMap) get(k string) (string, bool) {
	for _, e := range m.h {
		if e.key == k {
			return e.value, true
		}
	}
	return "", false
}

func (m *headerMap) value(k string) string { v, _ := m.get(k); return v }

func (m *headerMap) add(k, v string) { m.h = append(m.h, hdr{strings.ToLower(k), v}) }

// set replaces every value of k with v (Envoy's setCopy).
func (m *headerMap) set(k, v string) {
	k = strings.ToLower(k)
	for i, e := range m.h {
		if e.key == k {
			m.h[i].value = v
			m.removeAfter(k, i)
			return
		}
	}
	m.h = append(m.h, hdr{k, v})
}

func (m *headerMap) removeAfter(k string, i int) {
	out := m.h[:i+1]
	for _, e := range m.h[i+1:] {
		if e.key != k {
			out = append(out, e)
		}
	}
	m.h = out
}

func (m *headerMap) remove(k string) {
	k = strings.ToLower(k)
	out := m.h[:0]
	for _, e := range m.h {
		if e.key != k {
			out = append(out, e)
		}
	}
	m.h = out
}

func (m *headerMap) clone() *headerMap {
	return &headerMap{h: append([]hdr(nil), m.h...)}
}

// proto renders the map as ext_proc sends it: values in raw_value.
func (m *headerMap) proto() *corev3.HeaderMap {
	out := &corev3.HeaderMap{}
	for _, e := range m.h {
		out.Headers = append(out.Headers, &corev3.HeaderValue{Key: e.key, RawValue: []byte(e.value)})
	}
	return out
}

// hopByHop headers are connection-level and never forwarded.
var hopByHop = map[string]bool{"connection": true, "keep-alive": true, "proxy-connection": true,
	"transfer-encoding": true, "upgrade": true, "te": true, "trailer": true}

// fromHTTP builds a header map from net/http headers (sorted for determinism).
func fromHTTP(m *headerMap, h http.Header) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		if hopByHop[lk] {
			continue
		}
		for _, v := range h[k] {
			m.add(lk, v)
		}
	}
}

// toHTTP copies the non-pseudo headers into h.
func (m *headerMap) toHTTP(h http.Header) {
	for _, e := range m.h {
		if strings.HasPrefix(e.key, ":") || hopByHop[e.key] {
			continue
		}
		h[http.CanonicalHeaderKey(e.key)] = append(h[http.CanonicalHeaderKey(e.key)], e.value)
	}
}

// applyOptions applies route/filter HeaderValueOptions (append_action).
func (m *headerMap) applyOptions(opts []*corev3.HeaderValueOption) {
	for _, o := range opts {
		k, v := strings.ToLower(o.GetHeader().GetKey()), o.GetHeader().GetValue()
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			m.add(k, v)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if _, ok := m.get(k); !ok {
				m.add(k, v)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			m.set(k, v)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if _, ok := m.get(k); ok {
				m.set(k, v)
			}
		}
	}
}
