package fakeollama

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Models served by default.
const (
	DefaultChatModel  = "llama3.1:8b-instruct-q4_K_M"
	DefaultEmbedModel = "all-minilm"
)

// EmbeddingDims is the length of every embedding (all-minilm's 384).
const EmbeddingDims = 384

// OutputTokensHeader overrides the output target of one request.
const OutputTokensHeader = "x-fake-output-tokens"

// Config configures a [Server].
type Config struct {
	// Models are the served model names; a name without a tag means
	// ":latest". Default: DefaultChatModel and DefaultEmbedModel.
	Models []string
	// DefaultOutputTokens is the output target without an
	// x-fake-output-tokens header (default 16).
	DefaultOutputTokens int
	// TokensPerDelta is the number of words per text_delta (default 1, as
	// Ollama streams token by token).
	TokensPerDelta int
}

// Server is the fake. It implements [http.Handler] and is safe for
// concurrent use.
type Server struct {
	cfg    Config
	models []string        // normalized, in config order
	served map[string]bool // normalized names

	mu          sync.Mutex
	unhealthy   bool
	delay       time.Duration
	streamDelay time.Duration
	reqs        []RecordedRequest
}

// RecordedRequest is one request the fake received.
type RecordedRequest struct {
	Method, Path string
	Header       http.Header
	Body         []byte
	Status       int
	Completed    bool // the response ended normally
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if len(cfg.Models) == 0 {
		cfg.Models = []string{DefaultChatModel, DefaultEmbedModel}
	}
	if cfg.DefaultOutputTokens <= 0 {
		cfg.DefaultOutputTokens = 16
	}
	if cfg.TokensPerDelta <= 0 {
		cfg.TokensPerDelta = 1
	}
	s := &Server{cfg: cfg, served: make(map[string]bool)}
	for _, m := range cfg.Models {
		n := normalize(m)
		if !s.served[n] {
			s.served[n] = true
			s.models = append(s.models, n)
		}
	}
	return s
}

// normalize adds the default ":latest" tag.
func normalize(model string) string {
	if i := strings.LastIndex(model, ":"); i < 0 || strings.Contains(model[i:], "/") {
		return model + ":latest"
	}
	return model
}

// SetUnhealthy makes /v1/messages answer 503 overloaded_error (on) or not.
func (s *Server) SetUnhealthy(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unhealthy = on
}

// SetDelay delays the response headers of /v1/messages and /api/embed.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetStreamDelay waits d before every SSE event.
func (s *Server) SetStreamDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streamDelay = d
}

// Requests returns a copy of the recorded requests, in completion order.
func (s *Server) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RecordedRequest(nil), s.reqs...)
}

// Reset forgets recorded requests and clears faults.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs, s.unhealthy, s.delay, s.streamDelay = nil, false, 0, 0
}

func (s *Server) faults() (unhealthy bool, delay, streamDelay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unhealthy, s.delay, s.streamDelay
}

// statusWriter remembers the status sent.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP implements [http.Handler].
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	sw := &statusWriter{ResponseWriter: w}
	rec := RecordedRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	completed := s.route(sw, r, body)
	rec.Status, rec.Completed = sw.status, completed
	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	s.mu.Unlock()
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) bool {
	switch {
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, "Ollama is running")
		}
		return true
	case r.URL.Path == "/api/tags" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.tags())
		return true
	case r.URL.Path == "/v1/messages" && r.Method == http.MethodPost:
		return s.messages(w, r, body)
	case r.URL.Path == "/api/embed" && r.Method == http.MethodPost:
		return s.embed(w, r, body)
	default:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "404 page not found")
		return true
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"fake: marshal failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
