package policy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// OllamaHealth polls Ollama's GET / (which answers 200 "Ollama is
// running") and remembers whether it is healthy. A failed /v1/messages seen
// by the gateway marks it unhealthy at once ([OllamaHealth.ReportFailure]);
// the next successful poll marks it healthy again. It implements
// [HealthSource].
type OllamaHealth struct {
	url      string
	client   *http.Client
	interval time.Duration
	log      *slog.Logger
	healthy  atomic.Bool
}

// NewOllamaHealth returns a checker of baseURL polling every interval
// (default 5 s). It starts unhealthy until the first check succeeds.
func NewOllamaHealth(baseURL string, interval time.Duration, log *slog.Logger) *OllamaHealth {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &OllamaHealth{
		url:      strings.TrimSuffix(baseURL, "/") + "/",
		client:   &http.Client{Timeout: 2 * time.Second},
		interval: interval,
		log:      log,
	}
}

// Healthy implements [HealthSource].
func (h *OllamaHealth) Healthy() bool { return h.healthy.Load() }

// ReportFailure marks Ollama unhealthy until the next successful check.
func (h *OllamaHealth) ReportFailure() {
	if h.healthy.Swap(false) {
		h.log.Warn("ollama marked unhealthy after a failed request")
	}
}

// Check probes Ollama once and records the result.
func (h *OllamaHealth) Check(ctx context.Context) error {
	err := h.probe(ctx)
	was := h.healthy.Swap(err == nil)
	switch {
	case err != nil && was:
		h.log.Warn("ollama unhealthy", "url", h.url, "err", err)
	case err == nil && !was:
		h.log.Info("ollama healthy", "url", h.url)
	}
	return err
}

func (h *OllamaHealth) probe(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return fmt.Errorf("policy: ollama health: %w", err)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("policy: ollama health: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("policy: ollama health: GET / answered %d", resp.StatusCode)
	}
	return nil
}

// Run checks at once and then every interval until ctx ends.
func (h *OllamaHealth) Run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		_ = h.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
