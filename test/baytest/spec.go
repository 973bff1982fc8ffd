package baytest

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/shipyard/shipyard/docs/openapi"
	"github.com/shipyard/shipyard/internal/apispec/speccheck"
)

var (
	specOnce    sync.Once
	specChecker *speccheck.Checker
	specErr     error
)

// Spec returns the checker of Bay's OpenAPI document (the one served at
// /openapi.json, kept current by api's TestOpenAPIFileIsCurrent), built once
// per test binary.
func Spec() (*speccheck.Checker, error) {
	specOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData([]byte(openapi.Bay()))
		if err != nil {
			specErr = err
			return
		}
		specChecker, specErr = speccheck.NewChecker(doc)
	})
	return specChecker, specErr
}

// CheckedClient is an HTTP client whose answers are checked against Bay's
// OpenAPI document like those of Do (for clients such as the SDK that make
// their own requests): JSON answers are read whole and checked, others
// (streams, files, WebSocket upgrades) only for status and media type and
// passed on unread. Not for latency measurements: the check costs time.
func (b *Bay) CheckedClient(t testing.TB) *http.Client {
	t.Helper()
	c, err := Spec()
	if err != nil {
		t.Fatalf("openapi: %v", err)
	}
	return &http.Client{Transport: &checkingTransport{spec: c, next: http.DefaultTransport,
		report: func(err error) { t.Error(err) }}}
}

type checkingTransport struct {
	spec   *speccheck.Checker
	next   http.RoundTripper
	report func(error)
}

func (ct *checkingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := ct.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		if err := ct.spec.Check(req, resp.StatusCode, resp.Header, nil); err != nil {
			ct.report(err)
		}
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if err := ct.spec.Check(req, resp.StatusCode, resp.Header, body); err != nil {
		ct.report(err)
	}
	return resp, nil
}
