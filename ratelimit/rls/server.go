package rls

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/claude-guardian/claude-guardian/ratelimit/rlsconfig"
)

// Reserved descriptor entry keys, stripped from the end of a descriptor
// before matching.
const (
	LeaseEntry  = "guardian_lease"
	AdjustEntry = "guardian_adjust"
	// LeaseMetadataKey names the lease id in the response's dynamic metadata.
	LeaseMetadataKey = "guardian_lease"
)

// Options configures [New].
type Options struct {
	// Store holds the counters; nil means a fresh in-memory store.
	Store   Store
	Logger  *slog.Logger
	Metrics *Metrics
	// Headers adds RateLimit-Limit/-Remaining/-Reset headers (names below,
	// defaults "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")
	// to every response with a current limit.
	Headers                                   bool
	LimitHeader, RemainingHeader, ResetHeader string
	// AnthropicErrors makes OVER_LIMIT responses carry Anthropic's
	// rate_limit_error JSON as raw_body, plus content-type and retry-after.
	AnthropicErrors bool
	// Clock places fixed windows; nil means time.Now.
	Clock func() time.Time
}

// Server implements envoy.service.ratelimit.v3.RateLimitService.
type Server struct {
	rlspb.UnimplementedRateLimitServiceServer
	cfg   atomic.Pointer[rlsconfig.Config]
	opts  Options
	store Store
	log   *slog.Logger
	m     *Metrics
	work  sync.Pool
}

// New returns a server with no config: every call is OK until SetConfig.
func New(opts Options) *Server {
	if opts.Store == nil {
		opts.Store = NewMemoryStore(opts.Clock)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.LimitHeader == "" {
		opts.LimitHeader = "ratelimit-limit"
	}
	if opts.RemainingHeader == "" {
		opts.RemainingHeader = "ratelimit-remaining"
	}
	if opts.ResetHeader == "" {
		opts.ResetHeader = "ratelimit-reset"
	}
	s := &Server{opts: opts, store: opts.Store, log: opts.Logger, m: opts.Metrics}
	s.work.New = func() any { return new(work) }
	return s
}

// SetConfig swaps the rules in use; calls in progress finish on the old ones.
func (s *Server) SetConfig(c *rlsconfig.Config) { s.cfg.Store(c) }

// Config returns the rules in use (nil before SetConfig).
func (s *Server) Config() *rlsconfig.Config { return s.cfg.Load() }

// ShouldRateLimit implements [rlspb.RateLimitServiceServer.ShouldRateLimit].
func (s *Server) ShouldRateLimit(ctx context.Context, req *rlspb.RateLimitRequest) (*rlspb.RateLimitResponse, error) {
	w := s.work.Get().(*work)
	resp, err := s.decide(ctx, w, req)
	w.reset()
	s.work.Put(w)
	return resp, err
}
