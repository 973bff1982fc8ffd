package speccheck

import (
	"slices"
	"testing"
)

func TestRouteCoverage(t *testing.T) {
	twice, undoc, unreg := RouteCoverage(
		[]string{"GET /a", "POST /b", "GET /a", "DELETE /d", "PUT /c"},
		[]string{"GET /a", "POST /b", "GET /e"})
	if !slices.Equal(twice, []string{"GET /a"}) || !slices.Equal(undoc, []string{"GET /e"}) ||
		!slices.Equal(unreg, []string{"DELETE /d", "PUT /c"}) {
		t.Fatalf("twice %v, undocumented %v, unregistered %v", twice, undoc, unreg)
	}
	if a, b, c := RouteCoverage([]string{"GET /a"}, []string{"GET /a"}); a != nil || b != nil || c != nil {
		t.Fatalf("a full match reported %v %v %v", a, b, c)
	}
}
