package fakeanthropic

import (
	"encoding/json"
	"net/http"
)

// Error types of the Messages API (reference §1, Errors).
const (
	ErrInvalidRequest  = "invalid_request_error"
	ErrAuthentication  = "authentication_error"
	ErrPermission      = "permission_error"
	ErrNotFound        = "not_found_error"
	ErrRequestTooLarge = "request_too_large"
	ErrRateLimit       = "rate_limit_error"
	ErrAPI             = "api_error"
	ErrOverloaded      = "overloaded_error"
)

// ErrorBody is the JSON body of an error response.
type ErrorBody struct {
	Type      string      `json:"type"` // always "error"
	Error     ErrorDetail `json:"error"`
	RequestID string      `json:"request_id,omitempty"`
}

// ErrorDetail is the "error" member of [ErrorBody].
type ErrorDetail struct {
	Type    string        `json:"type"`
	Message string        `json:"message"`
	Details *ErrorDetails `json:"details,omitempty"`
}

// ErrorDetails carries error.details (the spend-cap 429).
type ErrorDetails struct {
	ErrorCode string `json:"error_code"`
}

// apiError is an error answer being built.
type apiError struct {
	status  int
	typ     string
	message string
	details *ErrorDetails
}

func errf(status int, typ, message string) *apiError {
	return &apiError{status: status, typ: typ, message: message}
}

func invalid(message string) *apiError {
	return errf(http.StatusBadRequest, ErrInvalidRequest, message)
}

// writeError writes e as JSON. request-id must already be set in w's headers.
func writeError(w http.ResponseWriter, e *apiError) {
	body := ErrorBody{
		Type:      "error",
		Error:     ErrorDetail{Type: e.typ, Message: e.message, Details: e.details},
		RequestID: w.Header().Get("request-id"),
	}
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen with the fake's own types
		status = http.StatusInternalServerError
		b = []byte(`{"type":"error","error":{"type":"api_error","message":"fake: marshal failed"}}`)
	}
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
