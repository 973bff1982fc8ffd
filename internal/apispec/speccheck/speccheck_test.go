package speccheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/shipyard/shipyard/internal/apispec"
	"github.com/shipyard/shipyard/internal/apispec/specgen"
)

type item struct {
	Name  string   `json:"name"`
	Note  *string  `json:"note"`
	Tags  []string `json:"tags,omitempty"`
	Count int      `json:"count"`
}

type itemRequest struct {
	Name string `json:"name"`
}

// A built document validates, and the checker holds answers to it.
func TestBuildAndCheck(t *testing.T) {
	doc, err := specgen.Build(apispec.Info{Title: "t", Version: "1", Bearer: "key"}, []apispec.Operation{
		{Pattern: "POST /items", Request: itemRequest{}, Responses: map[int]any{201: item{}, 400: apispec.FreeForm("an error")}},
		{Pattern: "GET /items/{id}", Responses: map[int]any{200: item{}, 404: apispec.NoBody("none")}},
		{Pattern: "/raw/{rest...}", Methods: []string{"GET", "PUT"}, Responses: map[int]any{0: apispec.Raw{Type: "*/*", Desc: "any"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := doc.Components.Schemas["Item"].Value
	if !slices.Equal(s.Required, []string{"name", "note", "count"}) || !s.Properties["note"].Value.Nullable {
		t.Errorf("Item: required %v", s.Required)
	}
	c, err := NewChecker(doc)
	if err != nil {
		t.Fatal(err)
	}
	json := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		method, path string
		status       int
		body, err    string
	}{
		{"POST", "/items", 201, `{"name":"a","note":null,"count":1}`, ""},
		{"POST", "/items", 201, `{"name":"a","note":null}`, "count"},
		{"POST", "/items", 201, `{"name":"a","note":null,"count":1,"extra":2}`, "extra"},
		{"POST", "/items", 500, `{}`, "status is not supported"},
		{"GET", "/items/1", 404, ``, ""},
		{"PUT", "/raw/a/b", 418, `{"anything":1}`, ""},
		{"GET", "/elsewhere", 404, `{}`, ""},
	} {
		err := c.Check(httptest.NewRequest(tc.method, tc.path, nil), tc.status, json, []byte(tc.body))
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s %s %d %s: %v, want %q", tc.method, tc.path, tc.status, tc.body, err, tc.err)
		}
	}
}

func TestFieldDrift(t *testing.T) {
	doc, err := specgen.Build(apispec.Info{Title: "t", Version: "1"}, []apispec.Operation{
		{Pattern: "GET /items", Responses: map[int]any{200: struct {
			Items []item `json:"items"`
		}{}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := doc.Paths.Value("/items").Get.Responses.Status(200).Value.Content.Get("application/json").Schema
	type clientItem struct {
		Name  string `json:"name"`
		Color string `json:"color"` // never written
	}
	type clientPage struct {
		Items []clientItem `json:"items"`
	}
	onlyType, onlySchema := FieldDrift(s, reflect.TypeFor[clientPage]())
	if !slices.Equal(onlyType, []string{".items.color"}) || !slices.Equal(onlySchema, []string{".items.count", ".items.note", ".items.tags"}) {
		t.Errorf("drift: %v / %v", onlyType, onlySchema)
	}
}
