package anthropic

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
)

// ErrorType is the error.type field of Anthropic's error JSON.
type ErrorType string

// The error types Anthropic documents, with the status each comes with.
const (
	InvalidRequestError ErrorType = "invalid_request_error" // 400
	AuthenticationError ErrorType = "authentication_error"  // 401
	BillingError        ErrorType = "billing_error"         // 402
	PermissionError     ErrorType = "permission_error"      // 403
	NotFoundError       ErrorType = "not_found_error"       // 404
	RequestTooLarge     ErrorType = "request_too_large"     // 413
	RateLimitError      ErrorType = "rate_limit_error"      // 429
	APIError            ErrorType = "api_error"             // 500
	TimeoutError        ErrorType = "timeout_error"         // 504
	OverloadedError     ErrorType = "overloaded_error"      // 529
)

// Status returns the HTTP status Anthropic pairs with t.
func (t ErrorType) Status() int {
	switch t {
	case InvalidRequestError:
		return http.StatusBadRequest
	case AuthenticationError:
		return http.StatusUnauthorized
	case BillingError:
		return http.StatusPaymentRequired
	case PermissionError:
		return http.StatusForbidden
	case NotFoundError:
		return http.StatusNotFound
	case RequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case RateLimitError:
		return http.StatusTooManyRequests
	case TimeoutError:
		return http.StatusGatewayTimeout
	case OverloadedError:
		return 529
	default:
		return http.StatusInternalServerError
	}
}

// ErrorTypeFor is the inverse of Status: the error type Anthropic sends
// with an HTTP status (400 for other 4xx, api_error for other 5xx).
func ErrorTypeFor(status int) ErrorType {
	switch status {
	case http.StatusBadRequest:
		return InvalidRequestError
	case http.StatusUnauthorized:
		return AuthenticationError
	case http.StatusPaymentRequired:
		return BillingError
	case http.StatusForbidden:
		return PermissionError
	case http.StatusNotFound:
		return NotFoundError
	case http.StatusRequestEntityTooLarge:
		return RequestTooLarge
	case http.StatusTooManyRequests:
		return RateLimitError
	case http.StatusGatewayTimeout:
		return TimeoutError
	case http.StatusServiceUnavailable, 529:
		return OverloadedError
	}
	if status < 500 {
		return InvalidRequestError
	}
	return APIError
}

// Error is an API error as Anthropic reports it.
type Error struct {
	Type    ErrorType `json:"type"`
	Message string    `json:"message"`
}

func (e *Error) Error() string { return string(e.Type) + ": " + e.Message }

type errorEnvelope struct {
	Type      string `json:"type"`
	Error     Error  `json:"error"`
	RequestID string `json:"request_id,omitempty"`
}

// ErrorBody renders Anthropic's error JSON:
// {"type":"error","error":{"type":…,"message":…},"request_id":…}.
func ErrorBody(t ErrorType, message, requestID string) []byte {
	b, err := json.Marshal(errorEnvelope{Type: "error", Error: Error{Type: t, Message: message}, RequestID: requestID})
	if err != nil { // cannot happen for strings; keep a valid body anyway
		return []byte(`{"type":"error","error":{"type":"api_error","message":"internal error"}}`)
	}
	return b
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewRequestID returns an id shaped like Anthropic's: "req_" and 24
// base-62 characters. It identifies a request in logs; it is not a secret.
func NewRequestID() string {
	var b [28]byte
	copy(b[:], "req_")
	for i := 4; i < len(b); i += 8 {
		r := rand.Uint64()
		for j := i; j < i+8 && j < len(b); j++ {
			b[j] = base62[r%62]
			r /= 62
		}
	}
	return string(b[:])
}
