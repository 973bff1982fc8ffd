package shipyard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// Bay's error codes (APIError.Code).
const (
	CodeNotFound               = wire.CodeNotFound
	CodeUnauthorized           = wire.CodeUnauthorized
	CodeForbidden              = wire.CodeForbidden
	CodeQuotaExceeded          = wire.CodeQuotaExceeded
	CodeSessionNotReady        = wire.CodeSessionNotReady
	CodeTimeout                = wire.CodeTimeout
	CodeShipError              = wire.CodeShipError
	CodeConflict               = wire.CodeConflict
	CodeSandboxExpired         = wire.CodeSandboxExpired
	CodeSandboxTTLInfinite     = wire.CodeSandboxTTLInfinite
	CodeValidation             = wire.CodeValidation
	CodeFileNotFound           = wire.CodeFileNotFound
	CodeCapabilityNotSupported = wire.CodeCapabilityNotSupported
	CodeInvalidPath            = wire.CodeInvalidPath
	CodeInternal               = wire.CodeInternal
	CodePayloadTooLarge        = wire.CodePayloadTooLarge
	CodeProcessNotFound        = wire.CodeProcessNotFound
	CodeProfileUnavailable     = wire.CodeProfileUnavailable
	CodeDatabaseUnavailable    = wire.CodeDatabaseUnavailable
	CodeDriverUnavailable      = wire.CodeDriverUnavailable
)

// Sentinels for errors.Is: errors.Is(err, shipyard.ErrNotFound) holds for
// any *APIError whose Code is not_found. Use errors.As for the details.
var (
	ErrNotFound        error = &APIError{Code: CodeNotFound}
	ErrUnauthorized    error = &APIError{Code: CodeUnauthorized}
	ErrForbidden       error = &APIError{Code: CodeForbidden}
	ErrQuotaExceeded   error = &APIError{Code: CodeQuotaExceeded}
	ErrSessionNotReady error = &APIError{Code: CodeSessionNotReady}
	ErrTimeout         error = &APIError{Code: CodeTimeout}
	ErrShip            error = &APIError{Code: CodeShipError}
	ErrConflict        error = &APIError{Code: CodeConflict}
	ErrSandboxExpired  error = &APIError{Code: CodeSandboxExpired}
	ErrValidation      error = &APIError{Code: CodeValidation}
	ErrFileNotFound    error = &APIError{Code: CodeFileNotFound}
	ErrInvalidPath     error = &APIError{Code: CodeInvalidPath}
	ErrProcessNotFound error = &APIError{Code: CodeProcessNotFound}
)

// APIError is an error answer of Bay (also the error event of a stream).
type APIError struct {
	Status     int            // HTTP status (of the stream's response for an error event)
	Code       string         // Bay's error code ("" for non-Bay bodies such as 404 {"detail":"Not Found"})
	Message    string         // Bay's message, or FastAPI's detail
	RequestID  string         // X-Request-Id (or the body's request_id)
	RetryAfter time.Duration  // Retry-After, when Bay sent one
	Details    map[string]any // Bay's details, if any
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = "http_" + strconv.Itoa(e.Status)
	}
	return fmt.Sprintf("bay: %s: %s", code, e.Message)
}

// Is matches the sentinels above by code.
func (e *APIError) Is(target error) bool {
	t, ok := target.(*APIError)
	return ok && t.Code != "" && t.Code == e.Code && t.Status == 0
}

// IsStatus reports whether err is an *APIError with the given HTTP status.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// IsCode reports whether err is an *APIError with the given Bay code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	ae := &APIError{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ae.RetryAfter = time.Duration(s) * time.Second
	}
	var body struct {
		Error  *wire.ErrorInfo `json:"error"`
		Detail json.RawMessage `json:"detail"`
	}
	switch {
	case json.Unmarshal(raw, &body) != nil:
		ae.Message = fmt.Sprintf("HTTP %d returned non-JSON error response: %.200s", resp.StatusCode, raw)
	case body.Error != nil:
		ae.fill(body.Error)
	case len(body.Detail) > 0:
		var s string
		if json.Unmarshal(body.Detail, &s) == nil {
			ae.Message = s
		} else {
			ae.Message = string(body.Detail) // FastAPI's validation list
		}
		if resp.StatusCode == http.StatusUnprocessableEntity {
			ae.Code = CodeValidation
		}
	default:
		ae.Message = http.StatusText(resp.StatusCode)
	}
	return ae
}

func (e *APIError) fill(in *wire.ErrorInfo) {
	e.Code, e.Message, e.Details = in.Code, in.Message, in.Details
	if e.RequestID == "" {
		e.RequestID = in.RequestID
	}
}
