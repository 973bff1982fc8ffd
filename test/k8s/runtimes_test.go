package k8s_test

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipyard/shipyard/internal/bay/driver/k8s/k8stest"
	"github.com/shipyard/shipyard/test/baytest"
)

// TestRuntimeClasses: a profile's runtime is a RuntimeClass name. One that
// the cluster has starts pods with it; one it lacks makes the profile
// unavailable with the reason, and a create on it answers 503
// profile_unavailable (nothing is made).
func TestRuntimeClasses(t *testing.T) {
	c := k8stest.New(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	class := "bay-e2e-runc-" + hex.EncodeToString(b[:])
	rcs := c.Client.NodeV1().RuntimeClasses()
	if _, err := rcs.Create(t.Context(), &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: class}, Handler: "runc"},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rcs.Delete(t.Context(), class, metav1.DeleteOptions{}) })

	e := startWith(t, `
profiles:
  - id: python-default
    image: ship:latest
  - id: classy
    image: ship:latest
    runtime: `+class+`
  - id: gvisor
    image: ship:latest
    runtime: bay-e2e-no-such-class
`)
	r := e.b.Do(t, baytest.Req{Method: "GET", Path: "/v1/profiles"})
	if r.Status != 200 {
		t.Fatalf("profiles: %d %s", r.Status, r.Body)
	}
	items, _ := r.JSON()["items"].([]any)
	got := map[string]map[string]any{}
	for _, it := range items {
		p, _ := it.(map[string]any)
		id, _ := p["id"].(string)
		got[id] = p
	}
	if p := got["classy"]; p["available"] != true || p["runtime"] != class {
		t.Errorf("profile with an existing RuntimeClass: %v", p)
	}
	why, _ := got["gvisor"]["unavailable_reason"].(string)
	if got["gvisor"]["available"] != false || !strings.Contains(why, `runtime "bay-e2e-no-such-class" is not a RuntimeClass of the cluster`) ||
		!strings.Contains(why, class) {
		t.Errorf("profile with a missing RuntimeClass: %v", got["gvisor"])
	}

	cr := e.b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"profile": "gvisor"}})
	if cr.Status != 503 || !strings.Contains(string(cr.Body), `"profile_unavailable"`) {
		t.Errorf("create on the missing RuntimeClass: %d %s", cr.Status, cr.Body)
	}
	if n := len(e.pods(t, "")); n != 0 {
		t.Errorf("the refused create left %d pods", n)
	}

	id := e.b.CreateSandbox(t, map[string]any{"profile": "classy"})
	if r := e.b.Python(t, id, "1+1"); r["output"] != "2" {
		t.Fatalf("python on the RuntimeClass: %v", r)
	}
	if pods := e.pods(t, "bay.sandbox_id="+id); len(pods) != 1 || pods[0].Spec.RuntimeClassName == nil || *pods[0].Spec.RuntimeClassName != class {
		t.Errorf("pod's runtime class: %+v", pods)
	}
}
