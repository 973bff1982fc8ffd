package k8s

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
)

func TestRuntimes(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/apis/node.k8s.io/v1/runtimeclasses" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		// Out of order, and one being deleted: left out.
		fmt.Fprint(w, `{"kind":"RuntimeClassList","apiVersion":"node.k8s.io/v1","metadata":{},"items":[
			{"metadata":{"name":"kata"},"handler":"kata"},
			{"metadata":{"name":"old","deletionTimestamp":"2026-01-01T00:00:00Z"},"handler":"old"},
			{"metadata":{"name":"gvisor"},"handler":"runsc"}]}`)
	}))
	defer api.Close()
	d, err := NewForConfig(Config{}, &rest.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Runtimes(t.Context())
	if err != nil || !slices.Equal(got, []string{"gvisor", "kata"}) {
		t.Fatalf("Runtimes = %v, %v", got, err)
	}
	if why := d.MissingRuntime("p", "runsc", got); !strings.Contains(why, `"runsc" is not a RuntimeClass`) || !strings.Contains(why, "[gvisor kata]") {
		t.Errorf("reason %q", why)
	}
}
