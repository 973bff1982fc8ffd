package apispec

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestSpecPathAndParams(t *testing.T) {
	for _, tc := range []struct {
		pattern, method, path string
		params                []string
	}{
		{"GET /v1/x/{id}", "GET", "/v1/x/{id}", []string{"id"}},
		{"/v1/p/{id}/ports/{port}/{path...}", "", "/v1/p/{id}/ports/{port}/{path}", []string{"id", "port", "path"}},
		{"GET /{$}", "GET", "/", nil},
	} {
		m, p := SpecPath(tc.pattern)
		if m != tc.method || p != tc.path || !slices.Equal(PathParams(tc.pattern), tc.params) {
			t.Errorf("%s: %q %q %v", tc.pattern, m, p, PathParams(tc.pattern))
		}
	}
}

func TestDocsPageIsSelfContained(t *testing.T) {
	rec := httptest.NewRecorder()
	ServeDocs(rec, httptest.NewRequest("GET", "/docs", nil))
	b := rec.Body.String()
	if !strings.Contains(b, `fetch("openapi.json")`) || strings.Contains(b, "http://") || strings.Contains(b, "https://") ||
		strings.Contains(b, "<script src") || strings.Contains(b, "<link") {
		t.Errorf("docs page refers outside itself or does not load the document")
	}
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Error("no CSP")
	}
}
