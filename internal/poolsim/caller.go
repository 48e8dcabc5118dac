package poolsim

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Outcome is what the caller finally saw for one request.
type Outcome struct {
	Status    int // 0: transport error
	Attempts  int
	QueueWait time.Duration // x-guardian-queue-wait-ms, when present
	Latency   time.Duration
}

// caller behaves like the official SDKs (reference §3): up to 2 retries on
// 408, 409, 429, 5xx and connection errors, honouring retry-after-ms and
// retry-after, else min(0.5 s × 2^n, 8 s) minus up to 25 % jitter.
type caller struct {
	client     *http.Client
	url        string
	key        string
	maxRetries int
}

func (c *caller) do(ctx context.Context, r Request) Outcome {
	start := time.Now()
	var out Outcome
	for attempt := 0; ; attempt++ {
		out.Attempts = attempt + 1
		status, header := c.once(ctx, r)
		out.Status = status
		if header != nil {
			if ms, err := strconv.ParseFloat(header.Get("x-guardian-queue-wait-ms"), 64); err == nil {
				out.QueueWait = time.Duration(ms * float64(time.Millisecond))
			}
		}
		if !retryable(status) || attempt >= c.maxRetries {
			break
		}
		wait := backoff(attempt, header)
		select {
		case <-ctx.Done():
			out.Latency = time.Since(start)
			return out
		case <-time.After(wait):
		}
	}
	out.Latency = time.Since(start)
	return out
}

func (c *caller) once(ctx context.Context, r Request) (int, http.Header) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/v1/messages", bytes.NewReader(r.Body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("x-api-key", c.key)
	req.Header.Set("x-fake-output-tokens", strconv.Itoa(r.Output))
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, resp.Header // cut short: the SDK would raise a connection error
	}
	return resp.StatusCode, resp.Header
}

func retryable(status int) bool {
	return status == 0 || status == 408 || status == 409 || status == 429 || status >= 500
}

func backoff(attempt int, h http.Header) time.Duration {
	if h != nil {
		if ms, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
		if s, err := strconv.ParseFloat(h.Get("retry-after"), 64); err == nil && s >= 0 {
			return time.Duration(s * float64(time.Second))
		}
	}
	d := min(500*time.Millisecond<<attempt, 8*time.Second)
	return time.Duration(float64(d) * (1 - 0.25*rand.Float64()))
}
