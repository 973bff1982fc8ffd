package server

import (
	"context"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/shipyard/shipyard/docs/openapi"
	"github.com/shipyard/shipyard/internal/apispec"
	"github.com/shipyard/shipyard/internal/apispec/speccheck"
	"github.com/shipyard/shipyard/internal/apispec/specgen"
	"github.com/shipyard/shipyard/internal/bay/runtime"
)

// Every pattern routes() registers is in the OpenAPI table and vice versa.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	e := setup(t, nil) // with a terminal: every route registered
	documented := make([]string, 0, len(shipOperations))
	for _, op := range shipOperations {
		documented = append(documented, op.Pattern)
	}
	twice, undocumented, unregistered := speccheck.RouteCoverage(documented, e.srv.patterns)
	for _, p := range twice {
		t.Errorf("shipOperations: %q listed twice", p)
	}
	for _, p := range undocumented {
		t.Errorf("route %q is registered on Ship's mux but missing from the OpenAPI table (internal/ship/server/openapi.go)", p)
	}
	for _, p := range unregistered {
		t.Errorf("route %q is in Ship's OpenAPI table but not registered on its mux (routes() in server.go)", p)
	}
}

func TestOpenAPIDocumentValidatesAndIsServed(t *testing.T) {
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, op := range shipOperations {
		_, p := apispec.SpecPath(op.Pattern)
		for _, name := range apispec.PathParams(op.Pattern) {
			for m, o := range doc.Paths.Value(p).Operations() {
				if prm := o.Parameters.GetByInAndName("path", name); prm == nil {
					t.Errorf("%s %s: path parameter %s not declared", m, p, name)
				}
			}
		}
	}
	e := setup(t, nil)
	r := e.do(t, http.MethodGet, "/openapi.json", nil, nil)
	if r.status != 200 || string(r.body) != openapi.Ship() || !strings.Contains(string(r.body), `"title": "Shipyard Ship"`) {
		t.Errorf("/openapi.json: %d %.200s", r.status, r.body)
	}
	if r := e.do(t, http.MethodGet, "/docs", nil, nil); r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("/docs: %d", r.status)
	}
	if r := e.do(t, http.MethodGet, "/openapi.json", nil, map[string]string{"Authorization": ""}); r.status != 401 {
		t.Errorf("/openapi.json without the token: %d", r.status)
	}
}

var (
	checkerOnce sync.Once
	checker     *speccheck.Checker
	checkerErr  error
)

// checkAnswer holds an answer of the tests' client (env.do) to the document.
func checkAnswer(t *testing.T, req *http.Request, res *http.Response, body []byte) {
	t.Helper()
	checkerOnce.Do(func() {
		doc, err := OpenAPI()
		if err != nil {
			checkerErr = err
			return
		}
		checker, checkerErr = speccheck.NewChecker(doc)
	})
	if checkerErr != nil {
		t.Fatal(checkerErr)
	}
	if res.Request != nil {
		req = res.Request
	}
	if err := checker.Check(req, res.StatusCode, res.Header, body); err != nil {
		t.Error(err)
	}
}

// Bay's runtime client decodes Ship's answers into its own types: every field
// it reads is one Ship writes, and every field Ship writes is one it reads
// (unless the type reads a subset on purpose: partial).
func TestBayRuntimeTypesMatchShipsDocument(t *testing.T) {
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		status       int
		bay          any
		partial      bool
	}{
		{"POST", "/shell/exec", 200, runtime.ShellResult{}, false},
		{"POST", "/shell/processes", 201, runtime.Process{}, false},
		// (…/signal answers the same Process without notice, which only a start sets.)
		{"GET", "/shell/processes/{id}/output", 200, runtime.ProcessOutput{}, false},
		{"GET", "/health", 200, runtime.Health{}, true}, // Bay reads status and processes_running
	} {
		s := doc.Paths.Value(tc.path).GetOperation(tc.method).Responses.Status(tc.status).Value.Content.Get("application/json").Schema
		where, typ := tc.method+" "+tc.path, reflect.TypeOf(tc.bay)
		unwritten, unread := speccheck.FieldDrift(s, typ)
		for _, f := range unwritten {
			t.Errorf("%s: Bay's %v reads %s, which Ship does not write", where, typ, f)
		}
		if len(unread) > 0 && !tc.partial {
			t.Errorf("%s: Ship writes %v, which Bay's %v does not read", where, unread, typ)
		}
	}
}

// OpenAPI builds Ship's document from its route table.
func OpenAPI() (*openapi3.T, error) { return specgen.Build(specInfo(), specOperations()) }

// docs/openapi/ship.json is the generated document of Ship's API: Ship serves
// it at /openapi.json.
func TestOpenAPIFileIsCurrent(t *testing.T) {
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if err := specgen.Golden(doc, "../../../docs/openapi/ship.json", os.Getenv("SHIPYARD_UPDATE_OPENAPI") != ""); err != nil {
		t.Fatal(err)
	}
}
