package emulator

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"golang.org/x/net/http/httpguts"
)

// maxHeaders is the HCM default max_request_headers_kb count limit (100).
const maxHeaders = 100

// checker is Envoy's mutation_rules checker (mutation_rules.cc).
type checker struct {
	r *mutationv3.HeaderMutationRules
}

type checkResult int

const (
	checkOK checkResult = iota
	checkIgnore
	checkFail
)

type op int

const (
	opSet op = iota
	opAppend
	opRemove
)

var routingHeaders = map[string]bool{"host": true, ":authority": true, ":method": true, ":scheme": true}

func (c checker) check(o op, name, value string) checkResult {
	deny := checkIgnore
	if c.r.GetDisallowIsError().GetValue() {
		deny = checkFail
	}
	if o == opRemove && (strings.HasPrefix(name, ":") || name == "host") {
		return deny
	}
	switch {
	case c.r.GetDisallowAll().GetValue():
		return deny
	case routingHeaders[name] && !c.r.GetAllowAllRouting().GetValue():
		return deny
	case strings.HasPrefix(name, ":") && (o == opAppend || c.r.GetDisallowSystem().GetValue()):
		return deny
	case strings.HasPrefix(name, "x-envoy") && !c.r.GetAllowEnvoy().GetValue():
		return deny
	}
	if o == opRemove {
		return checkOK
	}
	switch name {
	case ":status":
		n, err := strconv.Atoi(value)
		if err != nil || n < 200 || n > 999 {
			return deny
		}
	case "host", ":authority":
		if value == "" || strings.ContainsAny(value, " /?#@") {
			return deny
		}
	case ":scheme":
		if value != "http" && value != "https" {
			return deny
		}
	}
	return checkOK
}

// errMutation is a header mutation the filter must answer with status_on_error.
var errMutation = errors.New("header mutation failed")

// applyMutation applies an ext_proc HeaderMutation to m as
// MutationUtils::applyHeaderMutations does: removes first, then sets read
// from raw_value only; append false (default) overwrites. skipContentLength
// drops content-length sets in the modes where Envoy removes it. Denied
// mutations count in rejected (ignore) or fail.
func applyMutation(mut *extprocv3.HeaderMutation, m *headerMap, c checker, skipContentLength bool, rejected func()) error {
	if mut == nil {
		return nil
	}
	if len(mut.GetRemoveHeaders()) > maxHeaders || len(mut.GetSetHeaders()) > maxHeaders {
		return fmt.Errorf("%w: too many headers in mutation", errMutation)
	}
	for _, name := range mut.GetRemoveHeaders() {
		name = strings.ToLower(name)
		if !httpguts.ValidHeaderFieldName(strings.TrimPrefix(name, ":")) {
			return fmt.Errorf("%w: invalid header name %q", errMutation, name)
		}
		switch c.check(opRemove, name, "") {
		case checkOK:
			m.remove(name)
		case checkIgnore:
			rejected()
		case checkFail:
			return fmt.Errorf("%w: removal of %s is not allowed", errMutation, name)
		}
	}
	for _, s := range mut.GetSetHeaders() {
		h := s.GetHeader()
		if h == nil {
			continue
		}
		name := strings.ToLower(h.GetKey())
		if skipContentLength && name == "content-length" {
			continue
		}
		if h.GetValue() != "" && len(h.GetRawValue()) > 0 {
			return fmt.Errorf("%w: only one of value or raw_value may be set for %s", errMutation, name)
		}
		value := string(h.GetRawValue())
		if !httpguts.ValidHeaderFieldName(strings.TrimPrefix(name, ":")) || !httpguts.ValidHeaderFieldValue(value) {
			return fmt.Errorf("%w: invalid character in header %q", errMutation, name)
		}
		appendOp := s.GetAppend().GetValue()
		o := opSet
		if appendOp {
			o = opAppend
		}
		switch c.check(o, name, value) {
		case checkOK:
			if appendOp {
				m.add(name, value)
			} else {
				m.set(name, value)
			}
		case checkIgnore:
			rejected()
		case checkFail:
			return fmt.Errorf("%w: mutation of %s is not allowed", errMutation, name)
		}
	}
	if len(m.h) > maxHeaders {
		return fmt.Errorf("%w: header map over the size limit", errMutation)
	}
	return nil
}
