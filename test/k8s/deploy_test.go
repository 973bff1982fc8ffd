package k8s_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/driver/drivertest"
	"github.com/shipyard/shipyard/internal/bay/driver/k8s"
	"github.com/shipyard/shipyard/internal/bay/driver/k8s/k8stest"
)

// TestDeployManifests applies deploy/k8s to the test cluster with kubectl
// (kustomize), then runs the driver conformance suite as Bay's service
// account in the sandbox namespace: the Role grants what the driver needs,
// and the namespace's Pod Security level admits its pods (the workspace init
// container included). The namespaces are deleted afterwards.
func TestDeployManifests(t *testing.T) {
	c := k8stest.New(t)
	run := c.Kubectl(t)
	// A previous run's namespaces may still be terminating: objects cannot be created in them until they are gone.
	for _, ns := range []string{"shipyard", "bay"} {
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			cur, err := c.Client.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
			if err != nil || cur.DeletionTimestamp == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("namespace %s still terminating", ns)
			}
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, ns := range []string{"shipyard", "bay"} {
			_ = c.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		}
		_ = c.Client.RbacV1().ClusterRoleBindings().Delete(ctx, "bay-runtimeclasses", metav1.DeleteOptions{})
		_ = c.Client.RbacV1().ClusterRoles().Delete(ctx, "bay-runtimeclasses", metav1.DeleteOptions{})
	})
	built := run(nil, "kustomize", "../../deploy/k8s")
	for _, want := range []string{"kind: Deployment", "replicas: 2", "kind: Role", "kind: NetworkPolicy", "type: k8s"} {
		if !strings.Contains(built, want) {
			t.Errorf("kustomize output lacks %q", want)
		}
	}
	// Server-side validation of every object, then the real thing. Bay's own
	// replicas are scaled to 0: this test checks the manifests and the Role
	// with the conformance suite in namespace bay, and running replicas would
	// need a database and act in that namespace meanwhile (TestBayPods runs
	// bay:latest as deployed, in namespaces of its own).
	run([]byte(built), "apply", "-f", "-")
	run(nil, "-n", "shipyard", "scale", "deployment/bay", "--replicas=0")

	rc := rest.CopyConfig(c.Rest)
	rc.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:shipyard:bay"}
	rc.WarningHandler = rest.NoWarnings{} // Pod Security "warn: restricted" on every sandbox pod
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	// The service account may not act outside the sandbox namespace.
	if _, err := cs.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{}); err == nil {
		t.Error("Bay's service account can list pods in namespace default")
	}
	if _, err := cs.CoreV1().Secrets("bay").List(t.Context(), metav1.ListOptions{}); err == nil {
		t.Error("Bay's service account can list secrets")
	}
	d, err := k8s.NewForConfig(k8s.Config{Namespace: "bay", PullPolicy: k8s.PullNever, StartTimeout: 90 * time.Second}, rc)
	if err != nil {
		t.Fatal(err)
	}
	// The ClusterRole lets it read RuntimeClasses (the profiles' runtimes), and no more.
	if _, err := d.Runtimes(t.Context()); err != nil {
		t.Errorf("Bay's service account cannot list RuntimeClasses: %v", err)
	}
	if err := cs.NodeV1().RuntimeClasses().Delete(t.Context(), "no-such-class", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("deleting a RuntimeClass as Bay's service account: %v, want forbidden", err)
	}
	// A no_network session: the Role may create the egress-denying policy.
	nonet := driver.SessionSpec{ID: "rbac-nonet", NoNetwork: true, Labels: map[string]string{drivertest.LabelRun: "rbac"},
		Containers: []driver.ContainerSpec{{Name: k8s.ContainerName, Image: shipImage(), Port: 8123}}}
	if _, err := d.CreateSession(t.Context(), nonet); err != nil {
		t.Fatalf("no_network create as Bay's service account: %v", err)
	}
	if err := d.DestroySession(t.Context(), nonet.ID); err != nil {
		t.Fatal(err)
	}
	exec := func(ctx context.Context, ct driver.Container, argv ...string) (string, error) {
		pod, name, _ := strings.Cut(ct.ID, "/")
		return c.Exec(ctx, "bay", pod, name, argv...)
	}
	drivertest.Run(t, d, drivertest.Options{
		Image: shipImage(), PortEnv: "SHIP_PORT", HealthPath: "/health", ReadyTimeout: 90 * time.Second,
		WriteFile: func(ctx context.Context, ct driver.Container, path, data string) error {
			_, err := exec(ctx, ct, "sh", "-c", `printf %s "$1" > "$2"`, "sh", data, path)
			return err
		},
		ReadFile: func(ctx context.Context, ct driver.Container, path string) (string, error) {
			return exec(ctx, ct, "cat", path)
		},
		Dial: func(ctx context.Context, ct driver.Container, addr string) error {
			host, port, _ := net.SplitHostPort(addr)
			_, err := exec(ctx, ct, "bash", "-c", `exec 3<>"/dev/tcp/$1/$2"`, "bash", host, port)
			return err
		},
	})
}

func shipImage() string {
	if img := os.Getenv("BAY_TEST_SHIP_IMAGE"); img != "" {
		return img
	}
	return "ship:latest"
}
