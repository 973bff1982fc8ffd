package bay_test

import (
	"net/http"
	"testing"

	"github.com/shipyard/shipyard/test/baytest"
)

func TestListPagesThrough120Sandboxes(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	want := map[string]bool{}
	for i := 0; i < 120; i++ {
		want[b.CreateSandbox(t, nil)] = true
	}
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		path := "/v1/sandboxes?limit=25"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		m := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: path})
		items := m["items"].([]any)
		last := ""
		for _, it := range items {
			id := it.(map[string]any)["id"].(string)
			if seen[id] {
				t.Fatalf("duplicate %s", id)
			}
			if id <= last {
				t.Fatalf("not ordered by id: %s after %s", id, last)
			}
			last = id
			seen[id] = true
		}
		pages++
		next, _ := m["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 120 || pages != 5 {
		t.Fatalf("saw %d sandboxes in %d pages, want 120 in 5", len(seen), pages)
	}
	for id := range want {
		if !seen[id] {
			t.Fatalf("lost %s", id)
		}
	}
	// Status filter: all are idle.
	m := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes?status=idle&limit=200"})
	if n := len(m["items"].([]any)); n != 120 {
		t.Fatalf("status=idle: %d items", n)
	}
	m = b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes?status=ready"})
	if n := len(m["items"].([]any)); n != 0 {
		t.Fatalf("status=ready: %d items", n)
	}
	if r := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes?status=bogus"}); r.Status != 422 {
		t.Fatalf("status=bogus: %d", r.Status)
	}
	for _, bad := range []string{"0", "201", "x"} {
		if r := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes?limit=" + bad}); r.Status != 422 {
			t.Fatalf("limit=%s: %d", bad, r.Status)
		}
	}
}
