package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/logctx"
)

// statusOf is the one place domain error codes become HTTP statuses.
var statusOf = map[errs.Code]int{
	errs.NotFound:               http.StatusNotFound,
	errs.Unauthorized:           http.StatusUnauthorized,
	errs.Forbidden:              http.StatusForbidden,
	errs.QuotaExceeded:          http.StatusTooManyRequests,
	errs.SessionNotReady:        http.StatusServiceUnavailable,
	errs.Timeout:                http.StatusGatewayTimeout,
	errs.ShipError:              http.StatusBadGateway,
	errs.Conflict:               http.StatusConflict,
	errs.SandboxExpired:         http.StatusConflict,
	errs.SandboxTTLInfinite:     http.StatusConflict,
	errs.Validation:             http.StatusBadRequest,
	errs.FileNotFound:           http.StatusNotFound,
	errs.CapabilityNotSupported: http.StatusBadRequest,
	errs.InvalidPath:            http.StatusBadRequest,
	errs.Internal:               http.StatusInternalServerError,
	errs.TooLarge:               http.StatusRequestEntityTooLarge,
	errs.DatabaseUnavailable:    http.StatusServiceUnavailable,
	errs.DriverUnavailable:      http.StatusServiceUnavailable,
	errs.RateLimited:            http.StatusTooManyRequests,
	errs.AdminRequired:          http.StatusForbidden,
	errs.ProcessNotFound:        http.StatusNotFound,
	errs.ProfileUnavailable:     http.StatusServiceUnavailable,
}

// encode marshals without HTML escaping (upstream emits raw <, >, &).
func encode(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte(`{"error":{"code":"internal_error","message":"response encoding failed"}}`)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeRaw(w, status, encode(v))
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errorBody is upstream's {"error":{code,message,request_id,details}}.
type errorBody struct {
	Error errorInner `json:"error"`
}

type errorInner struct {
	Code      errs.Code      `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id"`
	Details   map[string]any `json:"details,omitempty"`
}

// writeError maps any error to the upstream body. Unknown errors become a JSON
// internal_error carrying the request id; their text is logged, never sent.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	e, ok := errs.As(err)
	if u := unavailable(err); u != nil && (!ok || e.Code == errs.Internal) {
		e, ok = u, true // a dependency is away: "retry later", not "internal error"
	}
	if qe, over := errors.AsType[*store.QuotaError](err); over && !ok {
		e, ok = a.quotaError(qe), true
	}
	if !ok {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return // the client went away
		}
		if errors.Is(err, context.DeadlineExceeded) {
			e = errs.New(errs.Timeout, "Operation timed out")
		} else {
			e = errs.New(errs.Internal, "Internal server error")
		}
		a.log.ErrorContext(ctx, "request failed", "err", err)
	} else if e.Err != nil {
		a.log.WarnContext(ctx, "request error", "code", e.Code, "err", e.Err)
	}
	status, known := statusOf[e.Code]
	if !known {
		status = http.StatusInternalServerError
	}
	if e.RetryAfter > 0 {
		secs := (e.RetryAfter.Milliseconds() + 999) / 1000
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	writeJSON(w, status, errorBody{Error: errorInner{Code: e.Code, Message: e.Message,
		RequestID: logctx.RequestID(ctx), Details: e.Details}})
}

// detail writes FastAPI's {"detail": ...} shape.
func writeDetail(w http.ResponseWriter, status int, detail any) {
	writeJSON(w, status, map[string]any{"detail": detail})
}

func logAttrs(r *http.Request) []any {
	return []any{slog.String("method", r.Method), slog.String("path", r.URL.Path)}
}
