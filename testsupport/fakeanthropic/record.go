package fakeanthropic

import (
	"net/http"
	"sync"
	"time"
)

// RecordedRequest is one request the fake received, with its outcome.
type RecordedRequest struct {
	Time     time.Time // by Config.Now, at arrival
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	// Credential is the key the fake authenticated with and CredentialHeader
	// the header it came from ("x-api-key" or "authorization"); both empty
	// when no credential was sent.
	Credential       string
	CredentialHeader string
	Account          string // "" when authentication failed
	Body             []byte
	Parsed           *MessagesRequest // nil when the body was not validated
	Status           int              // status sent; 0 when the connection was dropped before headers
	ErrorType        string           // error.type of an error answer, "" on success
	RequestID        string
	Fault            FaultKind // injected fault applied, 0 if none
	// LimitHit names the rate limit a 429 was for, as in its message
	// ("requests per minute", "input tokens per minute", "output tokens
	// per minute"); "" otherwise.
	LimitHit string
	// Usage as reported to the client (zero for errors).
	InputTokens, OutputTokens, CacheCreationInputTokens, CacheReadInputTokens int
	Completed                                                                 bool // the response ended normally (message_stop sent / JSON written)
}

type recorder struct {
	mu   sync.Mutex
	reqs []RecordedRequest
}

func (r *recorder) add(rr RecordedRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, rr)
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = nil
}

// Requests returns a copy of the recorded requests, in completion order.
func (s *Server) Requests() []RecordedRequest {
	s.recorder.mu.Lock()
	defer s.recorder.mu.Unlock()
	return append([]RecordedRequest(nil), s.recorder.reqs...)
}
