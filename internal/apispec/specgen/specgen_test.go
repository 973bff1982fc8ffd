package specgen

import (
	"context"
	"slices"
	"testing"

	"github.com/shipyard/shipyard/internal/apispec"
)

type item struct {
	Name  string   `json:"name"`
	Note  *string  `json:"note"`
	Tags  []string `json:"tags,omitempty"`
	Count int      `json:"count"`
}

// A built document validates; omitempty is optional, pointers nullable.
func TestBuild(t *testing.T) {
	doc, err := Build(apispec.Info{Title: "t", Version: "1", Bearer: "key"}, []apispec.Operation{
		{Pattern: "GET /items/{id}", Responses: map[int]any{200: item{}, 404: apispec.NoBody("none")}},
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
}
