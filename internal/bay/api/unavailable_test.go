package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/errs"
)

// A database or engine that cannot be reached is a 503 the client may retry,
// with a JSON error that names the dependency and no driver message.
func TestUnavailableDependencies(t *testing.T) {
	pgDown := &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}
	tests := []struct {
		name       string
		err        error
		status     int
		code       errs.Code
		retryAfter string
	}{
		{"postgres shutting down", fmt.Errorf("store: insert session: %w", pgDown), 503, errs.DatabaseUnavailable, "2"},
		{"postgres refused, wrapped as internal", errs.New(errs.Internal, "x").Wrap(fmt.Errorf("store: %w", pgDown)), 503, errs.DatabaseUnavailable, "2"},
		{"engine unreachable", fmt.Errorf("session: create: %w", fmt.Errorf("%w: dial unix /var/run/docker.sock", driver.ErrUnavailable)), 503, errs.DriverUnavailable, "2"},
		{"a query error stays internal", fmt.Errorf("store: %w", &pgconn.PgError{Code: "42P01", Message: "relation does not exist"}), 500, errs.Internal, ""},
		{"a domain error keeps its code", errs.New(errs.NotFound, "Resource not found").Wrap(pgDown), 404, errs.NotFound, ""},
		{"a deadline is not an outage", fmt.Errorf("store: %w", context.DeadlineExceeded), 504, errs.Timeout, ""},
	}
	a := &API{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			a.writeError(w, httptest.NewRequest(http.MethodGet, "/v1/sandboxes", nil), tt.err)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if got := w.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body.Error.Code != tt.code {
				t.Errorf("code %q, want %q", body.Error.Code, tt.code)
			}
			for _, leak := range []string{"SQLSTATE", "administrator", "docker.sock", "relation"} {
				if strings.Contains(w.Body.String(), leak) {
					t.Errorf("body leaks %q: %s", leak, w.Body)
				}
			}
		})
	}
}
