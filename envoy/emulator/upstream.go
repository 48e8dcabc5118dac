package emulator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// addr is the cluster's dial address (override or load_assignment).
func (e *Envoy) addr(c *cluster) string {
	if a, ok := e.opts.Clusters[c.name]; ok {
		return a
	}
	return c.address
}

func (e *Envoy) tlsConfig(c *cluster) (*tls.Config, error) {
	t := c.tls
	cfg := &tls.Config{ServerName: t.GetSni(), NextProtos: t.GetCommonTlsContext().GetAlpnProtocols(), MinVersion: tls.VersionTLS12}
	switch {
	case e.opts.RootCAs != nil:
		cfg.RootCAs = e.opts.RootCAs
	case t.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename() != "":
		pem, err := os.ReadFile(t.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename())
		if err != nil {
			return nil, fmt.Errorf("emulator: cluster %s trusted_ca: %w", c.name, err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// transport returns the cluster's HTTP transport (one per cluster).
func (e *Envoy) transport(c *cluster) (*http.Transport, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.transports[c.name]; ok {
		return t, nil
	}
	d := &net.Dialer{Timeout: c.connectTimeout}
	addr := e.addr(c)
	t := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 64,
	}
	if c.tls != nil {
		cfg, err := e.tlsConfig(c)
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = cfg
		t.ForceAttemptHTTP2 = contains(cfg.NextProtos, "h2")
	}
	e.transports[c.name] = t
	return t, nil
}

// grpcConn returns the (lazily dialled) gRPC connection of a cluster.
func (e *Envoy) grpcConn(name string) (*grpc.ClientConn, error) {
	c, ok := e.cfg.clusters[name]
	if !ok {
		return nil, fmt.Errorf("emulator: unknown cluster %q", name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cc, ok := e.conns[name]; ok {
		return cc, nil
	}
	creds := insecure.NewCredentials()
	if c.tls != nil {
		cfg, err := e.tlsConfig(c)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	cc, err := grpc.NewClient("passthrough:///"+e.addr(c), grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("emulator: grpc client for %s: %w", name, err)
	}
	e.conns[name] = cc
	return cc, nil
}

// upstreamResult is one attempt's outcome.
type upstreamResult struct {
	resp           *http.Response
	connectFailure bool
	err            error
}

// send performs one upstream attempt with headers h and body.
func (e *Envoy) send(ctx context.Context, c *cluster, h *headerMap, body io.Reader, length int64) upstreamResult {
	t, err := e.transport(c)
	if err != nil {
		return upstreamResult{err: err, connectFailure: true}
	}
	scheme := "http"
	if c.tls != nil {
		scheme = "https"
	}
	u, err := url.ParseRequestURI(h.value(":path"))
	if err != nil {
		return upstreamResult{err: fmt.Errorf("emulator: bad :path: %w", err)}
	}
	u.Scheme, u.Host = scheme, h.value(":authority")
	req, err := http.NewRequestWithContext(ctx, h.value(":method"), u.String(), body)
	if err != nil {
		return upstreamResult{err: err}
	}
	req.Host = h.value(":authority")
	h.toHTTP(req.Header)
	req.ContentLength = length
	if cl, ok := h.get("content-length"); ok && length < 0 {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			req.ContentLength = n
		}
	}
	if req.ContentLength == 0 {
		req.Body = http.NoBody
	}
	req.Header.Del("Content-Length")
	resp, err := t.RoundTrip(req)
	if err != nil {
		var op *net.OpError
		return upstreamResult{err: err, connectFailure: errors.As(err, &op) && op.Op == "dial"}
	}
	return upstreamResult{resp: resp}
}

// replayBody buffers the request body as it is read so a retry can resend
// it (the router's retry buffering, capped at the buffer limit).
type replayBody struct {
	mu       sync.Mutex
	src      io.Reader
	buf      []byte
	eof      bool
	overflow bool
	limit    int
}

type replayReader struct {
	b   *replayBody
	pos int
}

func (b *replayBody) reader() io.Reader { return &replayReader{b: b} }

func (r *replayReader) Read(p []byte) (int, error) {
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.pos < len(b.buf) {
		n := copy(p, b.buf[r.pos:])
		r.pos += n
		return n, nil
	}
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.src.Read(p)
	if n > 0 {
		if !b.overflow && len(b.buf)+n <= b.limit {
			b.buf = append(b.buf, p[:n]...)
			r.pos += n
		} else {
			b.overflow = true
		}
	}
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
