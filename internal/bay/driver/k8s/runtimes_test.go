package k8s

import (
	"slices"
	"strings"
	"testing"

	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestRuntimes(t *testing.T) {
	cs := fake.NewClientset(
		&nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "gvisor"}, Handler: "runsc"},
		&nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "kata"}, Handler: "kata"},
	)
	d := NewWithClient(Config{}, cs, nil)
	got, err := d.Runtimes(t.Context())
	if err != nil || !slices.Equal(got, []string{"gvisor", "kata"}) {
		t.Fatalf("Runtimes = %v, %v", got, err)
	}
	if why := d.MissingRuntime("p", "runsc", got); !strings.Contains(why, `"runsc" is not a RuntimeClass`) || !strings.Contains(why, "[gvisor kata]") {
		t.Errorf("reason %q", why)
	}
}
