package extproc

import (
	"bytes"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// miniEnvoy plays the part of Envoy for end-to-end tests of the
// processors: it drives the front processor (and, on the anthropic
// cluster, the upstream processor) over real gRPC in Envoy's order,
// applies their header and body mutations as Envoy does (removals before
// sets, raw_value only, content-length checked against a mutated body),
// routes on x-guardian-backend to the fake Anthropic or the fake Ollama
// over HTTP, and streams the response back through the front in chunks.
type miniEnvoy struct {
	h                    *harness
	claudeURL, ollamaURL string
	client               *http.Client
}

// exchange is one request as the caller saw it, plus what went upstream.
type exchange struct {
	status       int
	header       map[string]string // response headers the caller gets
	body         []byte
	upstream     string            // claude, ollama, or "" for an immediate response
	sentHeader   map[string]string // request headers that left Envoy
	sentBody     []byte
	immediateErr anthropicError
}

func applyMutation(hdr map[string]string, m *extprocv3.HeaderMutation) {
	if m == nil {
		return
	}
	for _, r := range m.RemoveHeaders {
		delete(hdr, r)
	}
	for _, o := range m.SetHeaders {
		hdr[o.Header.Key] = string(o.Header.RawValue)
	}
}

func kvOf(hdr map[string]string) []string {
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var kv []string
	for _, k := range keys {
		kv = append(kv, k, hdr[k])
	}
	return kv
}

// immediate ends the stream as Envoy does after an immediate response.
func (e *miniEnvoy) immediate(t testing.TB, s *envoyStream, ir *extprocv3.ImmediateResponse) exchange {
	t.Helper()
	s.close()
	x := exchange{status: int(ir.Status.GetCode()), header: map[string]string{}, body: ir.Body}
	applyMutation(x.header, ir.Headers)
	x.immediateErr = decodeError(t, ir)
	return x
}

// do sends one POST /v1/messages with the caller's extra headers.
func (e *miniEnvoy) do(t testing.TB, body string, callerHeaders ...string) exchange {
	t.Helper()
	hdr := map[string]string{":method": "POST", ":path": "/v1/messages", ":authority": "gateway.local", ":scheme": "http",
		"content-type": "application/json", "anthropic-version": "2023-06-01", "content-length": strconv.Itoa(len(body))}
	for i := 0; i+1 < len(callerHeaders); i += 2 {
		hdr[callerHeaders[i]] = callerHeaders[i+1]
	}
	s := e.h.open(t, RoleFront)
	resp := s.roundTrip(reqHeaders(false, kvOf(hdr)...))
	if ir := resp.GetImmediateResponse(); ir != nil {
		return e.immediate(t, s, ir)
	}
	applyMutation(hdr, resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
	resp = s.roundTrip(reqBody(body, true))
	if ir := resp.GetImmediateResponse(); ir != nil {
		return e.immediate(t, s, ir)
	}
	cr := resp.GetRequestBody().GetResponse()
	applyMutation(hdr, cr.GetHeaderMutation())
	sent := []byte(body)
	if bm := cr.GetBodyMutation(); bm != nil {
		sent = bm.GetBody()
	}
	if cl, ok := hdr["content-length"]; ok && cl != strconv.Itoa(len(sent)) {
		t.Fatalf("Envoy would answer 500: content-length %s but the mutated body is %d bytes", cl, len(sent))
	}
	x := exchange{upstream: hdr[HeaderBackend], sentBody: sent, header: map[string]string{}}
	url := e.claudeURL
	var up *envoyStream
	if x.upstream == BackendOllama {
		url = e.ollamaURL
	} else {
		// The anthropic cluster's upstream filter, once per attempt.
		up = e.h.open(t, RoleUpstream)
		ur := up.roundTrip(reqHeaders(false, kvOf(hdr)...))
		applyMutation(hdr, ur.GetRequestHeaders().GetResponse().GetHeaderMutation())
	}
	x.sentHeader = map[string]string{}
	req, err := http.NewRequest(http.MethodPost, url+hdr[":path"], bytes.NewReader(sent))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		x.sentHeader[k] = v
		if !strings.HasPrefix(k, ":") && k != "content-length" {
			req.Header.Set(k, v)
		}
	}
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("upstream %s: %v", x.upstream, err)
	}
	defer res.Body.Close()
	rh := map[string]string{":status": strconv.Itoa(res.StatusCode)}
	for k, v := range res.Header {
		rh[strings.ToLower(k)] = v[0]
	}
	if up != nil {
		ur := up.roundTrip(respHeaders(false, kvOf(rh)...))
		applyMutation(rh, ur.GetResponseHeaders().GetResponse().GetHeaderMutation())
		up.close()
	}
	fr := s.roundTrip(respHeaders(false, kvOf(rh)...))
	applyMutation(rh, fr.GetResponseHeaders().GetResponse().GetHeaderMutation())
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	// STREAMED response body: arbitrary chunk boundaries.
	const chunk = 97
	for i := 0; ; i += chunk {
		end := min(i+chunk, len(raw))
		s.roundTrip(respBody(string(raw[i:end]), end == len(raw)))
		if end == len(raw) {
			break
		}
	}
	s.close()
	x.status, _ = strconv.Atoi(rh[":status"])
	delete(rh, ":status")
	x.header, x.body = rh, raw
	return x
}
