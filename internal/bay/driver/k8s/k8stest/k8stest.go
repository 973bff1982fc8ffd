// Package k8stest gives tests a real cluster: the kubeconfig that
// `scripts/kube.sh up` printed (SHIPYARD_TEST_KUBECONFIG), a namespace of
// their own that is deleted when they end, and a command runner inside pods.
package k8stest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
)

// Env is the variable holding the test cluster's kubeconfig path.
const Env = "SHIPYARD_TEST_KUBECONFIG"

// Cluster is a connection to the test cluster.
type Cluster struct {
	Kubeconfig string
	Rest       *rest.Config
	Client     kubernetes.Interface
}

// New returns the test cluster, or skips t when the end-to-end tests are off
// (SHIPYARD_E2E != 1) or no cluster was given.
func New(t testing.TB) *Cluster {
	t.Helper()
	if os.Getenv("SHIPYARD_E2E") != "1" {
		t.Skip("SHIPYARD_E2E=1 not set: skipping the Kubernetes tests")
	}
	kc := os.Getenv(Env)
	if kc == "" {
		t.Skipf("%s not set: skipping the Kubernetes tests (KUBECONFIG=$(scripts/kube.sh up); export %s=$KUBECONFIG)", Env, Env)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", kc, err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return &Cluster{Kubeconfig: kc, Rest: rc, Client: cs}
}

// Namespace creates a namespace named prefix-<random> with the given labels
// and deletes it (and so everything in it) when the test ends.
func (c *Cluster) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := prefix + "-" + hex.EncodeToString(b[:])
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"shipyard.test": "true"}}}
	if _, err := c.Client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		zero := int64(0)
		// Pods first and at once, so the namespace's deletion does not wait for grace periods.
		_ = c.Client.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		if err := c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return name
}

// Exec runs argv in container of pod and returns its stdout; stderr goes
// into the error.
func (c *Cluster) Exec(ctx context.Context, namespace, pod, container string, argv ...string) (string, error) {
	req := c.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(c.Rest, "GET", req.URL().String())
	if err != nil {
		return "", err
	}
	var out, errb bytes.Buffer
	if err := ws.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errb}); err != nil {
		return out.String(), &ExecError{Err: err, Stderr: strings.TrimSpace(errb.String())}
	}
	return out.String(), nil
}

// ExecError is a failed Exec with the command's stderr.
type ExecError struct {
	Err    error
	Stderr string
}

func (e *ExecError) Error() string { return e.Err.Error() + ": " + e.Stderr }
func (e *ExecError) Unwrap() error { return e.Err }

// Kubectl returns a runner of the cluster's kubectl (SHIPYARD_TEST_KUBECTL,
// else the one scripts/kube.sh puts beside the kubeconfig) that feeds it stdin
// and returns its output, failing the test when it fails; the test is skipped
// when there is no kubectl.
func (c *Cluster) Kubectl(t testing.TB) func(stdin []byte, args ...string) string {
	t.Helper()
	kubectl := os.Getenv("SHIPYARD_TEST_KUBECTL")
	if kubectl == "" {
		kubectl = filepath.Join(filepath.Dir(c.Kubeconfig), "kubectl")
	}
	if _, err := os.Stat(kubectl); err != nil {
		t.Skipf("no kubectl (%v): set SHIPYARD_TEST_KUBECTL", err)
	}
	return func(stdin []byte, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String()
	}
}
