package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/shipyard/shipyard/internal/apispec"
	"github.com/shipyard/shipyard/internal/apispec/speccheck"
	"github.com/shipyard/shipyard/internal/apispec/specgen"
	"github.com/shipyard/shipyard/internal/bay/browser"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/pkg/shipyard"
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
	documented := make([]string, 0, len(operations))
	for _, op := range operations {
		documented = append(documented, op.Pattern)
	}
	twice, undocumented, unregistered := speccheck.RouteCoverage(documented, a.patterns)
	for _, p := range twice {
		t.Errorf("operations table: %q listed twice", p)
	}
	for _, p := range undocumented {
		t.Errorf("route %q is registered on Bay's mux but missing from the OpenAPI operations table (internal/bay/api/openapi.go)", p)
	}
	for _, p := range unregistered {
		t.Errorf("route %q is in the OpenAPI operations table but not registered on Bay's mux (internal/bay/api routes())", p)
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
		{"/openapi.json", "application/json", `"openapi": "3.0.3"`},
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

// The Go SDK decodes Bay's answers into its own types: every field it reads
// is one Bay writes and every field Bay writes is one it reads (nested
// objects too), for each route it calls. A field on one side only fails,
// except that the types in sdkPartial may read a subset.
func TestSDKTypesMatchTheDocument(t *testing.T) {
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		status       int
		sdk          any
	}{
		{"POST", "/v1/sandboxes", 201, shipyard.Sandbox{}},
		{"GET", "/v1/sandboxes", 200, shipyard.SandboxPage{}},
		{"POST", "/v1/sandboxes/{id}/extend_ttl", 200, shipyard.Sandbox{}},
		{"GET", "/v1/profiles", 200, struct {
			Items []shipyard.Profile `json:"items"`
		}{}},
		{"POST", "/v1/sandboxes/{id}/python/exec", 200, shipyard.PythonResult{}},
		{"POST", "/v1/sandboxes/{id}/shell/exec", 200, shipyard.ShellResult{}},
		{"POST", "/v1/sandboxes/{id}/browser/exec", 200, shipyard.BrowserResult{}},
		{"POST", "/v1/sandboxes/{id}/browser/exec_batch", 200, shipyard.BrowserBatchResult{}},
		{"POST", "/v1/sandboxes/{id}/filesystem/upload", 200, shipyard.UploadResult{}},
		{"GET", "/v1/sandboxes/{id}/history", 200, shipyard.History{}},
		{"GET", "/v1/sandboxes/{id}/history/{eid}", 200, shipyard.Execution{}},
		{"POST", "/v1/sandboxes/{id}/processes", 201, shipyard.Process{}},
		{"GET", "/v1/sandboxes/{id}/processes/{process_id}/output", 200, shipyard.ProcessOutput{}},
		{"POST", "/v1/cargos", 201, shipyard.Cargo{}},
		{"GET", "/v1/cargos", 200, shipyard.CargoPage{}},
		{"POST", "/v1/skills/candidates", 201, shipyard.Candidate{}},
		{"GET", "/v1/skills/candidates", 200, shipyard.Candidates{}},
		{"POST", "/v1/skills/candidates/{candidate_id}/evaluate", 200, shipyard.Evaluation{}},
		{"POST", "/v1/skills/candidates/{candidate_id}/promote", 200, shipyard.Release{}},
		{"GET", "/v1/skills/releases", 200, shipyard.Releases{}},
		{"DELETE", "/v1/skills/releases/{release_id}", 200, shipyard.Deleted{}},
	} {
		o := doc.Paths.Value(tc.path).GetOperation(tc.method)
		s := o.Responses.Status(tc.status).Value.Content.Get("application/json").Schema
		where, typ := fmt.Sprintf("%s %s %d", tc.method, tc.path, tc.status), reflect.TypeOf(tc.sdk)
		unwritten, unread := speccheck.FieldDrift(s, typ)
		for _, f := range unwritten {
			t.Errorf("%s: the SDK's %v reads %s, which Bay does not write", where, typ, f)
		}
		if why, partial := sdkPartial[typ]; partial && len(unread) > 0 {
			t.Logf("%s: Bay writes %v, which the SDK's %v does not read (%s)", where, unread, typ, why)
		} else if len(unread) > 0 {
			t.Errorf("%s: Bay writes %v, which the SDK's %v does not read", where, unread, typ)
		}
	}
}

// sdkPartial are SDK types that read a subset of Bay's answer on purpose
// (every field they read must still be one Bay writes).
var sdkPartial = map[reflect.Type]string{
	reflect.TypeFor[shipyard.Candidate]():  "skills: the SDK reads the lifecycle fields only",
	reflect.TypeFor[shipyard.Evaluation](): "skills: the SDK reads the lifecycle fields only",
	reflect.TypeFor[shipyard.Release]():    "skills: the SDK reads the lifecycle fields only",
	reflect.TypeFor[shipyard.Candidates](): "skills: the SDK reads the lifecycle fields only",
	reflect.TypeFor[shipyard.Releases]():   "skills: the SDK reads the lifecycle fields only",
}

// OpenAPI builds Bay's document from the operations table.
func OpenAPI() (*openapi3.T, error) {
	ops, err := specOperations()
	if err != nil {
		return nil, err
	}
	return specgen.Build(specInfo(), ops)
}

// docs/openapi/bay.json is the generated document: Bay serves it at
// /openapi.json, readers and client generators read it.
func TestOpenAPIFileIsCurrent(t *testing.T) {
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if err := specgen.Golden(doc, "../../../docs/openapi/bay.json", os.Getenv("SHIPYARD_UPDATE_OPENAPI") != ""); err != nil {
		t.Fatal(err)
	}
}
