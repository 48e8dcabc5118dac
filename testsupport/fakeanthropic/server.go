package fakeanthropic

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Default Tier-1 Sonnet limits (reference §1).
const (
	DefaultRPM  = 50
	DefaultITPM = 30_000
	DefaultOTPM = 8_000
)

// DefaultKey is the key of the account created when [Config.Accounts] is empty.
const DefaultKey = "sk-ant-fake-default"

// Limits are per-minute limits of one account.
type Limits struct{ RPM, ITPM, OTPM int64 }

// Account is an organization with its keys. All keys share its buckets.
type Account struct {
	Name   string
	OrgID  string // defaults to a UUID derived from Name
	Keys   []string
	Limits Limits // zero fields take the Tier-1 Sonnet defaults
}

// Config configures a [Server].
type Config struct {
	Accounts []Account
	// Now is the clock of the buckets, caches and reset headers. Default time.Now.
	Now func() time.Time
	// OTPMAtStart reserves max_tokens on the output bucket at the start of a
	// request and refunds the unused part at the end (mid-2025 docs). When
	// false (current docs) output tokens are charged as they are produced.
	OTPMAtStart bool
	// PingEvery adds a ping after every N content deltas. A ping right after
	// content_block_start is always sent unless PingEvery is negative, which
	// disables pings.
	PingEvery int
	// MessageDeltas is the number of message_delta events of a stream
	// (default 1). All but the last carry stop_reason null and a partial,
	// cumulative output_tokens.
	MessageDeltas int
	// TokensPerDelta is the number of output tokens per text_delta (default 4).
	TokensPerDelta int
	// DefaultOutputTokens, when positive, is the output target of requests
	// without an x-fake-output-tokens header.
	DefaultOutputTokens int
	// MinCacheableTokens is the smallest prefix that prompt caching writes
	// (default 0; the real API uses 1,024 for Sonnet).
	MinCacheableTokens int
}

// Server is the fake API. It implements [http.Handler] and is safe for
// concurrent use.
type Server struct {
	cfg Config
	now func() time.Time

	mu       sync.Mutex
	accounts map[string]*accountState // by name
	order    []string                 // account names in config order
	keys     map[string]*accountState // by key
	revoked  map[string]bool

	faults   faultQueue
	recorder recorder
}

// NewServer returns a Server for cfg. It returns an error for an invalid
// config (unnamed or duplicate accounts, empty or duplicate keys, negative
// limits).
func NewServer(cfg Config) (*Server, error) {
	s := &Server{
		cfg:      cfg,
		now:      cfg.Now,
		accounts: make(map[string]*accountState),
		keys:     make(map[string]*accountState),
		revoked:  make(map[string]bool),
	}
	if s.now == nil {
		s.now = time.Now
	}
	accts := cfg.Accounts
	if len(accts) == 0 {
		accts = []Account{{Name: "default", Keys: []string{DefaultKey}}}
	}
	now := s.now()
	for _, a := range accts {
		if a.Name == "" {
			return nil, errors.New("fakeanthropic: account without a name")
		}
		if _, dup := s.accounts[a.Name]; dup {
			return nil, fmt.Errorf("fakeanthropic: duplicate account %q", a.Name)
		}
		if a.Limits.RPM < 0 || a.Limits.ITPM < 0 || a.Limits.OTPM < 0 {
			return nil, fmt.Errorf("fakeanthropic: account %q: negative limit", a.Name)
		}
		st := newAccountState(a, now)
		s.accounts[a.Name] = st
		s.order = append(s.order, a.Name)
		for _, k := range a.Keys {
			if k == "" {
				return nil, fmt.Errorf("fakeanthropic: account %q: empty key", a.Name)
			}
			if _, dup := s.keys[k]; dup {
				return nil, fmt.Errorf("fakeanthropic: key used twice: %q", k)
			}
			s.keys[k] = st
		}
	}
	return s, nil
}

// New is [NewServer] for tests and benchmarks, where the config is a
// literal: like regexp.MustCompile it panics on an invalid config.
func New(cfg Config) *Server {
	s, err := NewServer(cfg)
	if err != nil {
		panic(err)
	}
	return s
}

// ServeHTTP implements [http.Handler].
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handle(w, r)
}

// RevokeKey makes key answer 401 from now on.
func (s *Server) RevokeKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[key] = true
}

// RestoreKey undoes [Server.RevokeKey].
func (s *Server) RestoreKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.revoked, key)
}

// SetForbidden makes every request of the account answer 403
// permission_error (on) or not (off). It reports whether the account exists.
func (s *Server) SetForbidden(account string, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[account]
	if ok {
		a.forbidden = on
	}
	return ok
}

// SetSpendCapReached makes every Messages request of the account answer the
// spend-cap 429 (on) or not (off). It reports whether the account exists.
func (s *Server) SetSpendCapReached(account string, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[account]
	if ok {
		a.spendCapped = on
	}
	return ok
}

// OrgID returns the organization id of the account ("" if unknown).
func (s *Server) OrgID(account string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[account]; ok {
		return a.orgID
	}
	return ""
}

// Reset refills every bucket, empties the prompt caches, zeroes the usage
// counters, forgets recorded requests and pending faults. Revocations,
// forbidden and spend-cap switches are cleared too.
func (s *Server) Reset() {
	now := s.now()
	s.mu.Lock()
	for _, a := range s.accounts {
		a.reset(now)
	}
	clear(s.revoked)
	s.mu.Unlock()
	s.faults.clear()
	s.recorder.reset()
}
