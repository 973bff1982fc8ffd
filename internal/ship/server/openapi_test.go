package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/shipyard/shipyard/internal/apispec"
)

// Every pattern routes() registers is in the OpenAPI table and vice versa.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	e := setup(t, nil) // with a terminal: every route registered
	documented := map[string]bool{}
	for _, op := range shipOperations {
		if documented[op.Pattern] {
			t.Errorf("shipOperations: %q listed twice", op.Pattern)
		}
		documented[op.Pattern] = true
	}
	registered := map[string]bool{}
	for _, p := range e.srv.patterns {
		registered[p] = true
		if !documented[p] {
			t.Errorf("route %q is registered on Ship's mux but missing from the OpenAPI table (internal/ship/server/openapi.go)", p)
		}
	}
	for p := range documented {
		if !registered[p] {
			t.Errorf("route %q is in Ship's OpenAPI table but not registered on its mux (routes() in server.go)", p)
		}
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
	if r.status != 200 || !strings.Contains(string(r.body), `"title":"Shipyard Ship"`) {
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
	checker     *apispec.Checker
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
		checker, checkerErr = apispec.NewChecker(doc)
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
