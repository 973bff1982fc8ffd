package shipyard

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

// Every code Bay's errs package has is one the SDK names, spelled the same.
func TestCodesMatchBay(t *testing.T) {
	for _, c := range []struct {
		sdk string
		bay errs.Code
	}{
		{CodeNotFound, errs.NotFound}, {CodeUnauthorized, errs.Unauthorized}, {CodeForbidden, errs.Forbidden},
		{CodeQuotaExceeded, errs.QuotaExceeded}, {CodeSessionNotReady, errs.SessionNotReady},
		{CodeTimeout, errs.Timeout}, {CodeShipError, errs.ShipError}, {CodeConflict, errs.Conflict},
		{CodeSandboxExpired, errs.SandboxExpired}, {CodeSandboxTTLInfinite, errs.SandboxTTLInfinite},
		{CodeValidation, errs.Validation}, {CodeFileNotFound, errs.FileNotFound},
		{CodeCapabilityNotSupported, errs.CapabilityNotSupported}, {CodeInvalidPath, errs.InvalidPath},
		{CodeInternal, errs.Internal}, {CodePayloadTooLarge, errs.TooLarge},
		{CodeProfileUnavailable, errs.ProfileUnavailable},
		{CodeDatabaseUnavailable, errs.DatabaseUnavailable}, {CodeDriverUnavailable, errs.DriverUnavailable},
	} {
		if c.sdk != string(c.bay) {
			t.Errorf("SDK code %q, Bay's %q", c.sdk, c.bay)
		}
	}
}

func TestTypedErrors(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		sentinel   error
		code       string
		rid        string
		retryAfter time.Duration
		message    string
	}{
		{"not found", 404, map[string]string{"X-Request-Id": "r1"},
			`{"error":{"code":"not_found","message":"Sandbox not found","request_id":"r1"}}`,
			ErrNotFound, CodeNotFound, "r1", 0, "Sandbox not found"},
		{"session not ready with Retry-After", 503, map[string]string{"Retry-After": "2"},
			`{"error":{"code":"session_not_ready","message":"starting","request_id":"r2"}}`,
			ErrSessionNotReady, CodeSessionNotReady, "r2", 2 * time.Second, "starting"},
		{"quota", 429, nil, `{"error":{"code":"quota_exceeded","message":"too many","request_id":"r3","details":{"limit":2}}}`,
			ErrQuotaExceeded, CodeQuotaExceeded, "r3", 0, "too many"},
		{"process not found", 404, nil, `{"error":{"code":"process_not_found","message":"no such process","request_id":"r4"}}`,
			ErrProcessNotFound, CodeProcessNotFound, "r4", 0, "no such process"},
		{"fastapi validation", 422, nil, `{"detail":[{"type":"missing","loc":["body","code"]}]}`,
			ErrValidation, CodeValidation, "", 0, `[{"type":"missing","loc":["body","code"]}]`},
		{"non-json", 500, nil, `Internal Server Error`, nil, "", "", 0, "HTTP 500 returned non-JSON error response: Internal Server Error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer hs.Close()
			c, _ := New(hs.URL, "", WithRetries(1, 0))
			_, err := c.ExecPython(context.Background(), "sandbox-1", PythonExecRequest{Code: "1"})
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, not an *APIError", err)
			}
			if ae.Status != tc.status || ae.Code != tc.code || ae.RequestID != tc.rid || ae.RetryAfter != tc.retryAfter || ae.Message != tc.message {
				t.Fatalf("got %+v", ae)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tc.sentinel)
			}
			if errors.Is(err, ErrConflict) {
				t.Fatal("matched the wrong sentinel")
			}
			if !IsStatus(err, tc.status) || IsCode(err, "nope") {
				t.Fatal("IsStatus/IsCode")
			}
		})
	}
}

// Safe requests are retried (a create under one idempotency key); executions never.
func TestRetries(t *testing.T) {
	var n atomic.Int32
	keys := make(chan string, 10)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/sandboxes" {
			keys <- r.Header.Get("Idempotency-Key")
		}
		if n.Add(1)%2 == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
			io.WriteString(w, `{"error":{"code":"session_not_ready","message":"wait","request_id":"x"}}`)
			return
		}
		io.WriteString(w, `{"id":"sandbox-1","status":"ready"}`)
	}))
	defer hs.Close()
	c, _ := New(hs.URL, "", WithRetries(3, 20*time.Millisecond))
	ctx := context.Background()
	start := time.Now()
	sb, err := c.CreateSandbox(ctx, CreateSandboxRequest{})
	if err != nil || sb.ID != "sandbox-1" {
		t.Fatalf("create = %+v, %v", sb, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Retry-After not capped by maxWait: %v", d)
	}
	k1, k2 := <-keys, <-keys
	if k1 == "" || k1 != k2 {
		t.Fatalf("idempotency keys %q %q", k1, k2)
	}
	if _, err := c.GetSandbox(ctx, "sandbox-1"); err != nil {
		t.Fatalf("get not retried: %v", err)
	}
	before := n.Load()
	_, err = c.ExecShell(ctx, "sandbox-1", ShellExecRequest{Command: "true"})
	if !errors.Is(err, ErrSessionNotReady) || n.Load() != before+1 {
		t.Fatalf("exec retried or wrong error: %v (%d calls)", err, n.Load()-before)
	}
	// A cancelled context stops the retries.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.GetSandbox(cctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled get: %v", err)
	}
}
