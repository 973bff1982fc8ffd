package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/shipyard/shipyard/internal/apispec"
	"github.com/shipyard/shipyard/internal/bay/browser"
	"github.com/shipyard/shipyard/internal/bay/config"
)

type nopMetrics struct{}

func (nopMetrics) ObserveHTTP(string, string, int, time.Duration) {}
func (nopMetrics) Handler() http.Handler                          { return http.NotFoundHandler() }

// fullAPI registers every route (optional ones included).
func fullAPI(t *testing.T) *API {
	t.Helper()
	cfg := &config.Config{}
	return New(Deps{Config: cfg, Browser: &browser.Service{}, Metrics: nopMetrics{}}).(*API)
}

// Every pattern registered on the mux is documented, and every documented
// pattern is registered.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	a := fullAPI(t)
	documented := map[string]bool{}
	for _, op := range operations {
		if documented[op.Pattern] {
			t.Errorf("operations table: %q listed twice", op.Pattern)
		}
		documented[op.Pattern] = true
	}
	registered := map[string]bool{}
	for _, p := range a.patterns {
		registered[p] = true
		if !documented[p] {
			t.Errorf("route %q is registered on Bay's mux but missing from the OpenAPI operations table (internal/bay/api/openapi.go)", p)
		}
	}
	for p := range documented {
		if !registered[p] {
			t.Errorf("route %q is in the OpenAPI operations table but not registered on Bay's mux (internal/bay/api routes())", p)
		}
	}
}

func TestOpenAPIDocumentValidates(t *testing.T) {
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("document does not validate: %v", err)
	}
	// Every wildcard of every pattern is a declared path parameter, and
	// every operation documents a success and the common error body.
	for _, op := range operations {
		method, p := apispec.SpecPath(op.Pattern)
		item := doc.Paths.Value(p)
		if item == nil {
			t.Errorf("%s: path %s missing", op.Pattern, p)
			continue
		}
		methods := op.Methods
		if method != "" {
			methods = []string{method}
		}
		for _, m := range methods {
			o := item.GetOperation(m)
			if o == nil {
				t.Errorf("%s: %s %s missing", op.Pattern, m, p)
				continue
			}
			for _, name := range apispec.PathParams(op.Pattern) {
				if prm := o.Parameters.GetByInAndName("path", name); prm == nil || !prm.Required {
					t.Errorf("%s %s: path parameter %q not declared", m, p, name)
				}
			}
			if o.Responses.Status(500) == nil && !op.Passthrough {
				t.Errorf("%s %s: no 500 error answer", m, p)
			}
			if o.Extensions[PatternExtension] != op.Pattern {
				t.Errorf("%s %s: %s = %v", m, p, PatternExtension, o.Extensions[PatternExtension])
			}
		}
	}
}

// Error statuses come from statusOf: a sandbox route's 404 and 409 carry the
// error body with the codes that map to them.
func TestOpenAPIErrorStatusesFromStatusOf(t *testing.T) {
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	o := doc.Paths.Value("/v1/sandboxes/{id}/extend_ttl").Post
	for st, code := range map[int]string{404: "not_found", 409: "sandbox_ttl_infinite", 401: "unauthorized", 429: "rate_limited"} {
		r := o.Responses.Status(st)
		if r == nil || !strings.Contains(*r.Value.Description, code) {
			t.Errorf("extend_ttl %d: %v, want a description naming %s", st, r, code)
			continue
		}
		if ref := r.Value.Content.Get("application/json").Schema.Ref; ref != "#/components/schemas/ErrorBody" {
			t.Errorf("extend_ttl %d body: %q", st, ref)
		}
	}
}

// Schemas follow the Go types: omitempty → optional, pointers → nullable,
// response objects closed.
func TestOpenAPISchemasFollowGoTypes(t *testing.T) {
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	sb := doc.Components.Schemas["Sandbox"].Value
	if !slices.Contains(sb.Required, "id") || !slices.Contains(sb.Required, "expires_at") {
		t.Errorf("Sandbox required = %v", sb.Required)
	}
	if !sb.Properties["expires_at"].Value.Nullable || sb.Properties["id"].Value.Nullable {
		t.Errorf("nullable: expires_at %v, id %v", sb.Properties["expires_at"].Value.Nullable, sb.Properties["id"].Value.Nullable)
	}
	if sb.AdditionalProperties.Has == nil || *sb.AdditionalProperties.Has {
		t.Error("Sandbox is not closed")
	}
	key := doc.Components.Schemas["Key"].Value
	if slices.Contains(key.Required, "key") || !slices.Contains(key.Required, "prefix") {
		t.Errorf("Key required = %v (key is omitempty)", key.Required)
	}
	// A response that does not match fails validation (the e2e hook relies on it).
	bad := map[string]any{"id": "x"}
	if err := sb.VisitJSON(bad); err == nil {
		t.Error("a sandbox without most fields validated")
	}
}

func TestOpenAPIServedWithoutAuth(t *testing.T) {
	a := fullAPI(t)
	for _, tc := range []struct{ path, ctype, want string }{
		{"/openapi.json", "application/json", `"openapi":"3.0.3"`},
		{"/docs", "text/html; charset=utf-8", "fetch(\"openapi.json\")"},
	} {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != tc.ctype || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %q %.200s", tc.path, rec.Code, rec.Header().Get("Content-Type"), body)
		}
		if tc.path == "/docs" && (strings.Contains(string(body), "http://") || strings.Contains(string(body), "https://")) {
			t.Error("/docs refers to an outside address")
		}
		if tc.path == "/openapi.json" {
			var loaded openapi3.T
			if err := json.Unmarshal(body, &loaded); err != nil || loaded.Paths.Value("/v1/sandboxes") == nil {
				t.Errorf("served document: %v", err)
			}
		}
	}
}
