package k8s

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBayLinksNoClientset: Bay's binary must not link client-go's generated
// clientset (nor its apply configurations, scheme or generic clients): their
// package initialisation registers every API group of Kubernetes and costs
// every Bay ~8 MiB of idle RSS and start time, Docker-only ones too. The
// driver's own client (client.go) is the way in.
func TestBayLinksNoClientset(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", "github.com/shipyard/shipyard/cmd/bay").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	banned := []string{"k8s.io/client-go/kubernetes", "k8s.io/client-go/applyconfigurations", "k8s.io/client-go/gentype",
		"k8s.io/client-go/testing", "github.com/shipyard/shipyard/internal/bay/driver/k8s/k8stest"}
	var k8s int
	for _, p := range strings.Fields(string(out)) {
		for _, b := range banned {
			if p == b || strings.HasPrefix(p, b+"/") {
				t.Errorf("cmd/bay links %s", p)
			}
		}
		if strings.HasPrefix(p, "k8s.io/") {
			k8s++
		}
	}
	if k8s == 0 {
		t.Error("cmd/bay links no k8s.io package: is the Kubernetes driver still wired in?")
	}
	t.Logf("cmd/bay links %d k8s.io packages", k8s)
}
