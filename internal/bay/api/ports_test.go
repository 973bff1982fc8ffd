package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/preview"
)

// Requests refused before any sandbox is looked up: bad ids and ports, bad
// tokens; every answer is the JSON error body.
func TestPortProxyRefusals(t *testing.T) {
	svc := preview.NewService(nil, []byte("0123456789abcdef0123456789abcdef"), preview.NewProxy(time.Second, nil), time.Hour, 24*time.Hour, 1<<20)
	defer svc.Proxy.Close()
	h := New(Deps{Config: config.Default(), Preview: svc})
	valid := preview.NewSigner([]byte("0123456789abcdef0123456789abcdef")).Sign(preview.Claims{SandboxID: "sandbox-aaa", Port: 8000,
		Expires: time.Now().Add(-time.Minute).Truncate(time.Second)})
	cases := []struct {
		path   string
		status int
		code   errs.Code
	}{
		{"/v1/sandboxes/sandbox-aaa/ports/0/", 400, errs.Validation},
		{"/v1/sandboxes/sandbox-aaa/ports/65536/", 400, errs.Validation},
		{"/v1/sandboxes/sandbox-aaa/ports/08000/", 400, errs.Validation},
		{"/v1/sandboxes/sandbox-aaa/ports/http/", 400, errs.Validation},
		{"/v1/sandboxes/sandbox-aaa/ports/8000/?token=", 401, errs.Unauthorized},
		{"/v1/sandboxes/sandbox-aaa/ports/8000/?token=pv1.garbage", 401, errs.Unauthorized},
		{"/v1/sandboxes/sandbox-aaa/ports/8000/?token=" + valid, 401, errs.Unauthorized}, // expired
		{"/v1/sandboxes/sandbox-bbb/ports/8000/?token=" + valid, 403, errs.Forbidden},
		{"/v1/sandboxes/sandbox-aaa/ports/8001/x?token=" + valid, 403, errs.Forbidden},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		var body errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != c.status || body.Error.Code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.path, rec.Code, rec.Body, c.status, c.code)
		}
		if rec.Header().Get("Set-Cookie") != "" {
			t.Errorf("%s: a refused token must not be set as a cookie", c.path)
		}
	}
	// No slash: a redirect to the prefix, query kept.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/sandboxes/sandbox-aaa/ports/8000?token=x", nil))
	if rec.Code != http.StatusPermanentRedirect || rec.Header().Get("Location") != "/v1/sandboxes/sandbox-aaa/ports/8000/?token=x" {
		t.Errorf("no slash: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}

func TestPreviewErrorMapping(t *testing.T) {
	for _, c := range []struct {
		err  error
		want errs.Code
	}{
		{preview.ErrExpired, errs.Unauthorized},
		{preview.ErrMalformed, errs.Unauthorized},
		{preview.ErrBadSignature, errs.Unauthorized},
		{preview.ErrRevoked, errs.Forbidden},
		{preview.ErrWrongTarget, errs.Forbidden},
	} {
		if e, ok := errs.As(tokenError(c.err)); !ok || e.Code != c.want {
			t.Errorf("%v → %v, want %s", c.err, tokenError(c.err), c.want)
		}
	}
	if e, _ := errs.As(upstreamError(8000, &http.MaxBytesError{Limit: 10})); e == nil || e.Code != errs.TooLarge {
		t.Errorf("body too large → %v", e)
	}
	if e, _ := errs.As(upstreamError(8000, errors.Join(preview.ErrUpstream, syscall.ECONNREFUSED))); e == nil || e.Code != errs.ShipError {
		t.Errorf("refused → %v", e)
	}
}
