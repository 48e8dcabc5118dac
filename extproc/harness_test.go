package extproc

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/claude-guardian/claude-guardian/admission"
	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/keypool"
	"github.com/claude-guardian/claude-guardian/ratelimit/bucket"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Test fixtures: obviously fake keys.
const (
	shopKey   = "gw-test-shop-key"
	searchKey = "gw-test-search-key"
	poolKeyA1 = "sk-ant-test-a1"
	poolKeyB1 = "sk-ant-test-b1"
)

type harness struct {
	client   extprocv3.ExternalProcessorClient
	pool     *keypool.Pool
	tickets  *keypool.MemoryTickets // with admit
	metrics  *Metrics
	poolMetr *keypool.Metrics
	now      time.Time
}

type harnessOpts struct {
	maxRequestBytes int64
	accounts        []config.Account
	clients         []config.Client             // default: shop and search
	policy          func(*harness) *FrontPolicy // nil: no routing policy
	admit           bool                        // reserve before sending (memory buckets on the harness clock)
	maxWait         time.Duration               // admission deadline (default 2 s)
	// tickets, when set, wraps the ticket store the processors use.
	tickets func(keypool.Tickets) keypool.Tickets
}

func defaultAccounts() []config.Account {
	return []config.Account{
		{Name: "org-a", Limits: config.Limits{RPM: 50, ITPM: 30000, OTPM: 8000}, Keys: []config.Key{{ID: "a1", Key: poolKeyA1}}},
		{Name: "org-b", Limits: config.Limits{RPM: 50, ITPM: 30000, OTPM: 8000}, Keys: []config.Key{{ID: "b1", Key: poolKeyB1}}},
	}
}

// newHarness serves the ext_proc service on a loopback port, as guardian
// serve does, and connects a client that plays Envoy.
func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	if o.maxRequestBytes == 0 {
		o.maxRequestBytes = 32 << 20
	}
	if o.accounts == nil {
		o.accounts = defaultAccounts()
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &harness{now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	h.poolMetr = keypool.NewMetrics(prometheus.NewRegistry())
	clock := func() time.Time { return h.now }
	mem := bucket.NewMemory(clock)
	h.pool = keypool.New(o.accounts, keypool.Options{Logger: log, Metrics: h.poolMetr, Now: clock, Engine: mem, Leases: mem})
	h.metrics = NewMetrics(prometheus.NewRegistry())
	if o.clients == nil {
		o.clients = []config.Client{{Name: "shop", Key: shopKey}, {Name: "search", Key: searchKey}}
	}
	front := NewFront(FrontConfig{MaxRequestBytes: o.maxRequestBytes, MaxResponseScanBytes: 1 << 20}, NewTenants(o.clients), h.pool, log, h.metrics)
	if o.policy != nil {
		front.WithPolicy(*o.policy(h))
	}
	upstream := NewUpstream(h.pool, log)
	if o.admit {
		if o.maxWait == 0 {
			o.maxWait = 2 * time.Second
		}
		h.tickets = keypool.NewMemoryTickets(time.Hour, nil)
		var tickets keypool.Tickets = h.tickets
		if o.tickets != nil {
			tickets = o.tickets(tickets)
		}
		front.WithAdmission(FrontAdmission{Queue: admission.New(h.pool, nil), Pool: h.pool, Tickets: tickets,
			MaxWait: o.maxWait, Affinity: true})
		upstream.WithTickets(tickets)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(int(o.maxRequestBytes) + 1<<20))
	extprocv3.RegisterExternalProcessorServer(srv, NewServer(front, upstream, log, h.metrics))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	h.client = extprocv3.NewExternalProcessorClient(conn)
	return h
}

// envoyStream is one ext_proc stream as Envoy drives it: one message, one
// response, in the order of the processing mode.
type envoyStream struct {
	t      testing.TB
	s      extprocv3.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
}

func (h *harness) open(t testing.TB, role Role) *envoyStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if role != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, RoleMetadataKey, string(role))
	}
	s, err := h.client.Process(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	es := &envoyStream{t: t, s: s, cancel: cancel}
	t.Cleanup(cancel)
	return es
}

func (e *envoyStream) roundTrip(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	e.t.Helper()
	if err := e.s.Send(req); err != nil {
		e.t.Fatalf("send: %v", err)
	}
	resp, err := e.s.Recv()
	if err != nil {
		e.t.Fatalf("recv: %v", err)
	}
	return resp
}

// close half-closes as Envoy does after the last expected response and
// waits for the server to end the stream.
func (e *envoyStream) close() {
	e.t.Helper()
	if err := e.s.CloseSend(); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.Recv(); err != io.EOF {
		e.t.Fatalf("after CloseSend: %v, want EOF", err)
	}
}

// headers builds an HttpHeaders the way Envoy sends it: lower-case keys,
// values in raw_value.
func headers(eos bool, kv ...string) *extprocv3.HttpHeaders {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.HttpHeaders{Headers: hm, EndOfStream: eos}
}

func reqHeaders(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headers(eos, kv...)}}
}

func reqBody(body string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: eos}}}
}

func respHeaders(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: headers(eos, kv...)}}
}

func respBody(body string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: eos}}}
}

// postMessages is the request_headers of an SDK's POST /v1/messages.
func postMessages(auth ...string) *extprocv3.ProcessingRequest {
	kv := []string{":method", "POST", ":path", "/v1/messages", ":authority", "gateway.local", ":scheme", "http",
		"content-type", "application/json", "anthropic-version", "2026-10-21"}
	return reqHeaders(false, append(kv, auth...)...)
}

// mutation is a header mutation read back as a map (raw_value only, as
// Envoy reads it) plus its removals.
type mutation struct {
	set    map[string]string
	remove []string
}

func readMutation(m *extprocv3.HeaderMutation) mutation {
	out := mutation{set: map[string]string{}}
	if m == nil {
		return out
	}
	for _, o := range m.SetHeaders {
		out.set[o.Header.Key] = string(o.Header.RawValue)
	}
	out.remove = m.RemoveHeaders
	return out
}

func (m mutation) removes(name string) bool {
	for _, r := range m.remove {
		if r == name {
			return true
		}
	}
	return false
}

// anthropicError decodes an immediate response's body as Anthropic's error
// JSON.
type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

func decodeError(t testing.TB, ir *extprocv3.ImmediateResponse) anthropicError {
	t.Helper()
	var e anthropicError
	if err := json.Unmarshal(ir.Body, &e); err != nil {
		t.Fatalf("immediate response body is not JSON: %v: %s", err, ir.Body)
	}
	if e.Type != "error" {
		t.Errorf("body type = %q, want error", e.Type)
	}
	hs := readMutation(ir.Headers)
	if hs.set["content-type"] != "application/json" {
		t.Errorf("content-type = %q", hs.set["content-type"])
	}
	if e.RequestID == "" || hs.set["request-id"] != e.RequestID {
		t.Errorf("request-id header %q vs body %q", hs.set["request-id"], e.RequestID)
	}
	return e
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
