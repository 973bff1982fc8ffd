package k8s_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shipyard/shipyard/internal/bay/driver/k8s/k8stest"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/test/baytest"
)

// logBuffer collects Bay's log lines; Bay writes from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startEndpoint runs a Bay whose driver reaches Ship by the given
// driver.k8s.endpoint, logging at debug level into the returned buffer.
// With asRole, Bay acts as a service account holding only the rules of
// deploy/k8s/rbac.yaml's Role and extra (impersonated through its kubeconfig).
func startEndpoint(t *testing.T, endpoint string, asRole bool, extra ...rbacv1.PolicyRule) (*env, *logBuffer) {
	c := k8stest.New(t)
	ns := c.Namespace(t, "bay-e2e")
	kubeconfig := c.Kubeconfig
	if asRole {
		kubeconfig = roleKubeconfig(t, c, ns, extra)
	}
	logs := &logBuffer{}
	o := baytest.Options{ConfigYAML: profiles, InstanceID: model.NewID("k8s"), DataDir: t.TempDir(), LogWriter: logs,
		Env: map[string]string{
			"BAY_DRIVER__TYPE":                     "k8s",
			"BAY_DRIVER__IMAGE_PULL_POLICY":        "never",
			"BAY_DRIVER__K8S__KUBECONFIG":          kubeconfig,
			"BAY_DRIVER__K8S__NAMESPACE":           ns,
			"BAY_DRIVER__K8S__POD_STARTUP_TIMEOUT": "30",
			"BAY_DRIVER__K8S__ENDPOINT":            endpoint,
			"BAY_LOG__LEVEL":                       "debug",
		}}
	return &env{c: c, ns: ns, b: baytest.Start(t, o), o: o}, logs
}

// endpoints returns the runtime endpoints the driver logged for started pods.
func endpoints(t *testing.T, logs *logBuffer) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, `"msg":"session started"`) {
			continue
		}
		_, after, _ := strings.Cut(line, `"endpoint":"`)
		ep, _, _ := strings.Cut(after, `"`)
		out = append(out, ep)
	}
	if len(out) == 0 {
		t.Fatalf("no pod started in the log:\n%s", logs.String())
	}
	return out
}

// podsProxyRule is the rule deploy/k8s/rbac.yaml documents (commented) for a
// Bay outside the cluster network.
var podsProxyRule = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/proxy"},
	Verbs: []string{"get", "create", "update", "delete"}}

// roleKubeconfig writes a kubeconfig that acts as a fresh service account of
// ns bound to the sandbox-namespace Role of deploy/k8s/rbac.yaml plus extra.
func roleKubeconfig(t *testing.T, c *k8stest.Cluster, ns string, extra []rbacv1.PolicyRule) string {
	t.Helper()
	data, err := os.ReadFile("../../deploy/k8s/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role *rbacv1.Role
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var r rbacv1.Role
		if err := dec.Decode(&r); err != nil {
			break
		}
		if r.Kind == "Role" && r.Name == "bay-driver" {
			role = &r
			break
		}
	}
	if role == nil {
		t.Fatal("deploy/k8s/rbac.yaml has no Role bay-driver")
	}
	ctx := t.Context()
	rb := c.Client.RbacV1()
	role = &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "bay-driver"}, Rules: append(role.Rules, extra...)}
	if _, err := rb.Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "bay"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bay-driver"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "bay-driver"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "bay", Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range cfg.AuthInfos {
		u.Impersonate = "system:serviceaccount:" + ns + ":bay"
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAPIProxyEndpoint: with driver.k8s.endpoint api_proxy every call to Ship
// goes through the API server's pod proxy with Bay's kube credentials (Ship's
// token in X-Ship-Token, since the API server consumes Authorization): python
// with state, shell, files, the terminal's WebSocket, and a pod deleted
// behind Bay's back (the proxy's "not found" is no answer from the runtime,
// so the next call rebuilds it). Bay holds only the Role of deploy/k8s and
// the pods/proxy rule the docs give.
func TestAPIProxyEndpoint(t *testing.T) {
	e, logs := startEndpoint(t, "api_proxy", true, podsProxyRule)
	b := e.b
	id := b.CreateSandbox(t, nil)
	sb := "/v1/sandboxes/" + id
	if r := b.Python(t, id, "x = 41\nprint('hi')"); r["success"] != true || r["output"] != "hi" {
		t.Fatalf("python: %v", r)
	}
	if r := b.Python(t, id, "x + 1"); r["output"] != "42" {
		t.Fatalf("state not kept: %v", r)
	}
	if out := shell(t, b, id, "echo $GREETING; id -u"); out != "ahoy\n1000" {
		t.Errorf("shell: %q", out)
	}
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: sb + "/filesystem/files", Body: map[string]any{"path": "p/a.txt", "content": "via proxy"}})
	if f := b.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/filesystem/files?path=p/a.txt"}); f["content"] != "via proxy" {
		t.Fatalf("read: %v", f)
	}
	// Ship's 404 passes the proxy as Ship's answer, not as the API server's.
	if r := b.Do(t, baytest.Req{Method: "GET", Path: sb + "/filesystem/files?path=p/none.txt"}); r.Status != 404 ||
		!strings.Contains(string(r.Body), "file_not_found") {
		t.Errorf("missing file: %d %s", r.Status, r.Body)
	}
	b.TerminalRoundTrip(t, id, "echo term-$((6*7)) && id -u\n", "term-42", "1000")
	logOnePlusOne(t, b, id, "the API server's pod proxy")
	// Port preview would dial the endpoint's host, here the API server: refused.
	if r := b.Do(t, baytest.Req{Method: "GET", Path: sb + "/ports"}); r.Status != 400 || !strings.Contains(string(r.Body), "pod proxy") {
		t.Errorf("port preview through the proxy: %d %s", r.Status, r.Body)
	}

	pod := e.pods(t, "bay.sandbox_id="+id)[0]
	want := "/api/v1/namespaces/" + e.ns + "/pods/" + pod.Name + ":8123/proxy"
	if eps := endpoints(t, logs); !strings.HasPrefix(eps[0], "https://") || !strings.HasSuffix(eps[0], want) {
		t.Fatalf("endpoint %q, want https://<api server>%s", eps[0], want)
	}

	one := int64(1)
	if err := e.c.Client.CoreV1().Pods(e.ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &one}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := e.c.Client.CoreV1().Pods(e.ns).Get(t.Context(), pod.Name, metav1.GetOptions{}); err != nil {
			break
		}
	}
	if out := shell(t, b, id, "cat p/a.txt"); out != "via proxy" {
		t.Fatalf("after the pod was deleted: %q", out)
	}
	if n := len(endpoints(t, logs)); n != 2 {
		t.Errorf("%d pod starts, want 2 (the first and the rebuild)", n)
	}
}

// logOnePlusOne measures 1+1 through Bay, 20 times, and logs the median.
func logOnePlusOne(t *testing.T, b *baytest.Bay, id, how string) {
	t.Helper()
	var d []time.Duration
	for range 20 {
		start := time.Now()
		if r := b.Python(t, id, "1+1"); r["output"] != "2" {
			t.Fatalf("python: %v", r)
		}
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	t.Logf("MEASURE 1+1 through Bay, %s: p50 %s, max %s", how, d[len(d)/2].Round(10*time.Microsecond), d[len(d)-1].Round(10*time.Microsecond))
}

// TestPodIPEndpoint: with endpoint pod_ip Bay dials the pod's IP (this host
// is on the test cluster's pod network).
func TestPodIPEndpoint(t *testing.T) {
	e, logs := startEndpoint(t, "pod_ip", false)
	id := e.b.CreateSandbox(t, nil)
	e.b.Python(t, id, "0") // the kernel's start, not measured
	logOnePlusOne(t, e.b, id, "the pod IP")
	pod := e.pods(t, "bay.sandbox_id="+id)[0]
	if ep := endpoints(t, logs)[0]; ep != "http://"+pod.Status.PodIP+":8123" {
		t.Fatalf("endpoint %q, want the pod IP %s\n%s", ep, pod.Status.PodIP, logs)
	}
}
