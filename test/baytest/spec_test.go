package baytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The checker catches field and status drift, and leaves unrouted paths alone.
func TestSpecCheckerCatchesDrift(t *testing.T) {
	c, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	sandbox := `{"id":"sandbox-1","status":"idle","profile":"python-default","cargo_id":"ws-1","capabilities":["python"],` +
		`"created_at":"2026-01-01T00:00:00Z","expires_at":null,"idle_expires_at":null,"containers":[]}`
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		name, method, path string
		status             int
		header             http.Header
		body               string
		wantErr            string // "" = valid
	}{
		{"sandbox", "GET", "/v1/sandboxes/sandbox-1", 200, jsonHdr, sandbox, ""},
		{"extra field", "GET", "/v1/sandboxes/sandbox-1", 200, jsonHdr,
			strings.Replace(sandbox, `"id"`, `"surprise":1,"id"`, 1), "surprise"},
		{"missing field", "GET", "/v1/sandboxes/sandbox-1", 200, jsonHdr,
			strings.Replace(sandbox, `"profile":"python-default",`, "", 1), "profile"},
		{"null where not nullable", "GET", "/v1/sandboxes/sandbox-1", 200, jsonHdr,
			strings.Replace(sandbox, `"status":"idle"`, `"status":null`, 1), "status"},
		{"undeclared status", "GET", "/v1/sandboxes/sandbox-1", 418, jsonHdr, `{}`, "status is not supported"},
		{"error body", "GET", "/v1/sandboxes/nope", 404, jsonHdr,
			`{"error":{"code":"not_found","message":"Resource not found","request_id":"r"}}`, ""},
		{"error body drift", "GET", "/v1/sandboxes/nope", 404, jsonHdr, `{"detail":"Not Found"}`, "error"},
		{"422", "GET", "/v1/sandboxes?limit=0", 422, jsonHdr,
			`{"detail":[{"type":"greater_than_equal","loc":["query","limit"],"msg":"m","input":"0","ctx":{"ge":1}}]}`, ""},
		{"no body", "DELETE", "/v1/sandboxes/sandbox-1", 204, http.Header{}, ``, ""},
		{"download", "GET", "/v1/sandboxes/s/filesystem/download?path=a", 200,
			http.Header{"Content-Type": {"application/octet-stream"}}, "bytes", ""},
		{"stream", "POST", "/v1/sandboxes/s/shell/exec", 200,
			http.Header{"Content-Type": {"text/event-stream"}}, "event: result\ndata: {}\n\n", ""},
		{"wildcard path", "GET", "/v1/skills/payloads/a/b/c", 200, jsonHdr, `{"payload_ref":"a/b/c","kind":"k","payload":{"x":1}}`, ""},
		{"unrouted path", "GET", "/v2/nothing", 404, jsonHdr, `{"detail":"Not Found"}`, ""},
		{"method-less route", "POST", "/mcp", 401, jsonHdr,
			`{"error":{"code":"unauthorized","message":"m","request_id":"r"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			err := c.Check(req, tc.status, tc.header, []byte(tc.body))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("want valid: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("want an error naming %q, got %v", tc.wantErr, err)
			}
		})
	}
}

// The checking transport reports drift in a JSON answer and passes a stream
// on unread.
func TestCheckingTransport(t *testing.T) {
	c, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/sandboxes/s/shell/exec" {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("event: result\ndata: {}\n\n"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"s"}`))
	}))
	defer srv.Close()
	var got []error
	client := &http.Client{Transport: &checkingTransport{spec: c, next: http.DefaultTransport,
		report: func(err error) { got = append(got, err) }}}
	resp, err := client.Get(srv.URL + "/v1/sandboxes/s")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != `{"id":"s"}` || len(got) != 1 || !strings.Contains(got[0].Error(), "does not match") {
		t.Errorf("body %q, reports %v", body, got)
	}
	resp, err = client.Post(srv.URL+"/v1/sandboxes/s/shell/exec", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(body), "event: result") || len(got) != 1 {
		t.Errorf("stream: %q, reports %v", body, got)
	}
}
