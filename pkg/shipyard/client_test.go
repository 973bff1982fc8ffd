package shipyard

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestClient(t *testing.T) {
	var got []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery+" "+r.Header.Get("Authorization"))
		switch {
		case r.URL.Path == "/v1/sandboxes/sandbox-1/filesystem/files" && r.Method == http.MethodGet:
			w.Header().Set("X-Request-Id", "rid")
			w.WriteHeader(404)
			io.WriteString(w, `{"error":{"code":"file_not_found","message":"File not found: a b","request_id":"rid","details":{"path":"a b"}}}`)
		case r.URL.Path == "/v1/sandboxes/sandbox-1/filesystem/upload":
			f, _, err := r.FormFile("file")
			if err != nil || r.FormValue("path") != "x/y.bin" {
				w.WriteHeader(422)
				return
			}
			b, _ := io.ReadAll(f)
			io.WriteString(w, `{"status":"ok","path":"x/y.bin","size":`+strconv.Itoa(len(b))+`}`)
		case r.URL.Path == "/v1/skills/payloads":
			w.WriteHeader(404)
			io.WriteString(w, `{"detail":"Not Found"}`)
		case r.URL.Path == "/v1/sandboxes/sandbox-1" && r.Method == http.MethodDelete:
			w.WriteHeader(204)
		default:
			w.WriteHeader(500)
			io.WriteString(w, "Internal Server Error")
		}
	}))
	defer hs.Close()
	c, err := New(hs.URL+"/", "tok")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = c.ReadFile(ctx, "sandbox-1", "a b")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != "file_not_found" || ae.RequestID != "rid" || ae.Details["path"] != "a b" {
		t.Fatalf("read error = %#v", err)
	}
	up, err := c.Upload(ctx, "sandbox-1", "x/y.bin", strings.NewReader("12345"))
	if err != nil || up.Size != 5 {
		t.Fatalf("upload = %+v, %v", up, err)
	}
	if err := c.DeleteSandbox(ctx, "sandbox-1"); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreatePayload(ctx, []byte(`{}`), "")
	if !IsStatus(err, 404) || !errors.As(err, &ae) || ae.Code != "" || ae.Message != "Not Found" {
		t.Fatalf("payload error = %v", err)
	}
	_, err = c.GetSandbox(ctx, "sandbox-1")
	if !errors.As(err, &ae) || ae.Status != 500 || !strings.Contains(ae.Message, "non-JSON") {
		t.Fatalf("500 error = %v", err)
	}
	if got[0] != "GET /v1/sandboxes/sandbox-1/filesystem/files?path=a+b Bearer tok" {
		t.Fatalf("first request = %q", got[0])
	}
	// Ids are escaped as one path segment.
	_, _ = c.GetSandbox(ctx, "a/b")
	if last := got[len(got)-1]; !strings.HasPrefix(last, "GET /v1/sandboxes/a%2Fb?") {
		t.Fatalf("escaped request = %q", last)
	}
	if _, err := New("ftp://x", ""); err == nil {
		t.Fatal("ftp endpoint accepted")
	}
}
