package extproc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/claude-guardian/claude-guardian/config"
)

// body2KB is a realistic 2 KB Messages request: a system prompt and a short
// conversation.
var body2KB = func() string {
	user := strings.Repeat("Please summarise the following paragraph in one sentence. ", 12)
	b := fmt.Sprintf(`{"model":"claude-sonnet-4-6","max_tokens":1024,"system":[{"type":"text","text":"You are a careful assistant for an online shop. Answer briefly."}],"messages":[{"role":"user","content":%q},{"role":"assistant","content":"Sure - here is the summary you asked for, in one sentence."},{"role":"user","content":[{"type":"text","text":%q}]}]}`, user, user+user[:len(user)/2])
	return b
}()

// BenchmarkFrontRequest measures the front processor's own work for one
// client request with a 2 KB body and a JSON response, without gRPC: the
// four phases Envoy sends and the stream's close.
//
//	go test ./extproc -run '^$' -bench 'Front' -benchtime 2s -count 3 | benchstat -
func BenchmarkFrontRequest(b *testing.B) {
	h := newHarness(b, harnessOpts{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tenants := NewTenants([]config.Client{{Name: "shop", Key: shopKey}, {Name: "search", Key: searchKey}})
	front := NewFront(FrontConfig{MaxRequestBytes: 32 << 20, MaxResponseScanBytes: 1 << 20}, tenants, h.pool, log, h.metrics)
	ctx := context.Background()
	rh := postMessages("x-api-key", shopKey).GetRequestHeaders()
	rb := reqBody(body2KB, true).GetRequestBody()
	sh := respHeaders(false, ":status", "200", "content-type", "application/json", HeaderAccount, "org-a").GetResponseHeaders()
	sb := respBody(jsonResponse, true).GetResponseBody()
	if len(body2KB) < 2000 || len(body2KB) > 2100 {
		b.Fatalf("body is %d bytes", len(body2KB))
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body2KB)))
	for b.Loop() {
		s := front.NewStream(ctx).(*frontStream)
		if _, err := s.ProcessRequestHeaders(ctx, rh); err != nil {
			b.Fatal(err)
		}
		r, err := s.ProcessRequestBody(ctx, rb)
		if err != nil || r.GetRequestBody() == nil {
			b.Fatal(err, r)
		}
		s.ProcessResponseHeaders(ctx, sh)
		s.ProcessResponseBody(ctx, sb)
		s.Close(EndComplete)
	}
}

// BenchmarkFrontRequestGRPC is the same request over a real loopback gRPC
// stream: one stream per request as Envoy opens it, client (the Envoy side)
// and server in this process, so times and allocations include both sides.
func BenchmarkFrontRequestGRPC(b *testing.B) {
	h := newHarness(b, harnessOpts{})
	msgs := []*extprocv3.ProcessingRequest{
		postMessages("x-api-key", shopKey),
		reqBody(body2KB, true),
		respHeaders(false, ":status", "200", "content-type", "application/json", HeaderAccount, "org-a"),
		respBody(jsonResponse, true),
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body2KB)))
	for b.Loop() {
		s, err := h.client.Process(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if err := s.Send(m); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				b.Fatal(err)
			}
		}
		s.CloseSend()
		s.Recv()
	}
}
