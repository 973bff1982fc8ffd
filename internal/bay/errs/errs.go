// Package errs holds Bay's domain errors. Services return them (wrapped with %w
// where useful); the API layer maps them to the upstream error body and HTTP
// status in exactly one place.
package errs

import (
	"errors"
	"fmt"
	"time"
)

// Code is an upstream error code (spec: upstream-contract §0).
type Code string

// The upstream codes.
const (
	NotFound               Code = "not_found"
	Unauthorized           Code = "unauthorized"
	Forbidden              Code = "forbidden"
	QuotaExceeded          Code = "quota_exceeded"
	SessionNotReady        Code = "session_not_ready"
	Timeout                Code = "timeout"
	ShipError              Code = "ship_error"
	Conflict               Code = "conflict"
	SandboxExpired         Code = "sandbox_expired"
	SandboxTTLInfinite     Code = "sandbox_ttl_infinite"
	Validation             Code = "validation_error"
	FileNotFound           Code = "file_not_found"
	CapabilityNotSupported Code = "capability_not_supported"
	InvalidPath            Code = "invalid_path"
	Internal               Code = "internal_error"
)

// Codes of ours (additive; upstream has no equivalent).
const (
	// TooLarge: the runtime refused a file or body over its size limit (HTTP 413).
	TooLarge Code = "payload_too_large"
	// DatabaseUnavailable / DriverUnavailable: the database or the container
	// engine cannot be reached right now, e.g. while it restarts (HTTP 503 with
	// Retry-After; the same request succeeds once it is back).
	DatabaseUnavailable Code = "database_unavailable"
	DriverUnavailable   Code = "driver_unavailable"
	// RateLimited: the owner sent requests faster than rate_limit allows (HTTP 429, Retry-After).
	RateLimited Code = "rate_limited"
	// AdminRequired: an /v1/admin route called with a tenant key (HTTP 403).
	AdminRequired Code = "admin_required"
	// ProcessNotFound: no background process with that id in the sandbox (HTTP 404).
	ProcessNotFound Code = "process_not_found"
	// ProfileUnavailable: the profile cannot start on this deployment: its OCI
	// runtime is not installed, its image is missing, or the driver cannot
	// enforce its network policy (HTTP 503, no Retry-After: an operator must act).
	ProfileUnavailable Code = "profile_unavailable"
)

// Error is a client-visible failure. Message and Details are sent to the client,
// so they never hold secrets or host paths; Err (the cause) is only logged.
type Error struct {
	Code       Code
	Message    string
	Details    map[string]any
	RetryAfter time.Duration // sent as Retry-After (and details.retry_after_ms) when set
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error with the given code and message.
func New(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Newf is New with formatting.
func Newf(code Code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// With returns a copy carrying details.
func (e *Error) With(details map[string]any) *Error {
	c := *e
	c.Details = details
	return &c
}

// Wrap returns a copy carrying a cause (logged, never sent).
func (e *Error) Wrap(err error) *Error {
	c := *e
	c.Err = err
	return &c
}

// As extracts an *Error from err.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Is reports whether err carries the given code.
func Is(err error, code Code) bool {
	e, ok := As(err)
	return ok && e.Code == code
}
