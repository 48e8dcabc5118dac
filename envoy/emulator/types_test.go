package emulator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

type typeHTTPStatus = typev3.HttpStatus

func typeStatusCode(c int) typev3.StatusCode { return typev3.StatusCode(c) }

type (
	corev3HeaderValueOption = corev3.HeaderValueOption
	corev3HeaderValue       = corev3.HeaderValue
)
