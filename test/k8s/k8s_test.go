// Package k8s_test runs Bay with driver.type k8s against the real test
// cluster of scripts/kube.sh (SHIPYARD_E2E=1, SHIPYARD_TEST_KUBECONFIG): the
// client scenario, the pod as the API server stores it, a pod deleted behind
// Bay's back, a Bay restart, GC of orphans, a missing image.
package k8s_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"mime/multipart"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/driver/k8s"
	"github.com/shipyard/shipyard/internal/bay/driver/k8s/k8stest"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/test/baytest"
)

const profiles = `
profiles:
  - id: python-default
    image: ship:latest
    resources: {cpus: 1.0, memory: 512m}
    env: {GREETING: "ahoy"}
  - id: missing-image
    image: shipyard-no-such-image:v0
  - id: warm
    image: ship:latest
    warm_pool_size: 1
    warm_rotate_ttl: 3600
  - id: huge
    image: ship:latest
    resources: {cpus: 1.0, memory: 4096g}
  - id: duo
    idle_timeout: 1
    containers:
      - name: ship
        image: ship:latest
        capabilities: [python, filesystem]
      - name: sidecar
        image: ship:latest
        runtime_port: 8124
        capabilities: [shell]
`

type env struct {
	c  *k8stest.Cluster
	ns string
	b  *baytest.Bay
	o  baytest.Options
}

// start runs a Bay on the test cluster in a namespace of its own; extra is
// more BAY_* variables, as name, value pairs.
func start(t *testing.T, extra ...string) *env { return startWith(t, profiles, extra...) }

// startWith is start with another config file.
func startWith(t *testing.T, configYAML string, extra ...string) *env {
	c := k8stest.New(t)
	ns := c.Namespace(t, "bay-e2e")
	o := baytest.Options{ConfigYAML: configYAML, InstanceID: model.NewID("k8s"), DataDir: t.TempDir(), Env: map[string]string{
		"BAY_DRIVER__TYPE":                     "k8s",
		"BAY_DRIVER__IMAGE_PULL_POLICY":        "never",
		"BAY_DRIVER__K8S__KUBECONFIG":          c.Kubeconfig,
		"BAY_DRIVER__K8S__NAMESPACE":           ns,
		"BAY_DRIVER__K8S__POD_STARTUP_TIMEOUT": "30",
		"BAY_GC__ORPHAN_CONTAINER__ENABLED":    "true",
	}}
	for i := 0; i+1 < len(extra); i += 2 {
		o.Env[extra[i]] = extra[i+1]
	}
	return &env{c: c, ns: ns, b: baytest.Start(t, o), o: o}
}

// pods returns the pods of a sandbox, as the API server has them.
func (e *env) pods(t *testing.T, selector string) []corev1.Pod {
	t.Helper()
	l, err := e.c.Client.CoreV1().Pods(e.ns).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func (e *env) pvcs(t *testing.T) []string {
	t.Helper()
	l, err := e.c.Client.CoreV1().PersistentVolumeClaims(e.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	return out
}

func shell(t *testing.T, b *baytest.Bay, id, cmd string) string {
	t.Helper()
	r := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec", Body: map[string]any{"command": cmd}})
	out, _ := r["output"].(string)
	return out
}

// TestScenario: the whole life of a sandbox through Bay on Kubernetes.
func TestScenario(t *testing.T) {
	e := start(t)
	b := e.b
	begin := time.Now()
	id := b.CreateSandbox(t, map[string]any{"ttl": 3600})
	sb := "/v1/sandboxes/" + id
	r := b.Python(t, id, "x = 41\nprint('hi')")
	t.Logf("create → first python answer: %s", time.Since(begin).Round(time.Millisecond))
	if r["success"] != true || r["output"] != "hi" {
		t.Fatalf("python: %v", r)
	}
	if r = b.Python(t, id, "x + 1"); r["output"] != "42" {
		t.Fatalf("state not kept: %v", r)
	}
	// The profile's env reaches python and the shell.
	if r = b.Python(t, id, "import os; os.environ.get('GREETING')"); r["output"] != "'ahoy'" {
		t.Errorf("profile env in python: %v", r)
	}
	if out := shell(t, b, id, "echo $GREETING; id -u; pwd"); out != "ahoy\n1000\n/workspace" {
		t.Errorf("shell: %q", out)
	}

	// Files, upload and download.
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: sb + "/filesystem/files", Body: map[string]any{"path": "dir/a.txt", "content": "hello"}})
	if f := b.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/filesystem/files?path=dir/a.txt"}); f["content"] != "hello" {
		t.Fatalf("read: %v", f)
	}
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("path", "up/blob.bin")
	fw, _ := mw.CreateFormFile("file", "upload")
	_, _ = fw.Write(data)
	_ = mw.Close()
	b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/filesystem/upload", Body: io.Reader(&buf),
		Headers: map[string]string{"Content-Type": mw.FormDataContentType()}})
	if dl := b.Do(t, baytest.Req{Method: "GET", Path: sb + "/filesystem/download?path=up/blob.bin"}); dl.Status != 200 ||
		sha256.Sum256(dl.Body) != sha256.Sum256(data) {
		t.Fatalf("download: %d, %d bytes", dl.Status, len(dl.Body))
	}

	// One pod, as strict as the Docker container, read back from the API server.
	pods := e.pods(t, "bay.sandbox_id="+id)
	if len(pods) != 1 {
		t.Fatalf("%d pods for the sandbox", len(pods))
	}
	p := pods[0]
	if !strings.HasPrefix(p.Name, "bay-session-") || p.Labels["bay.managed"] != "true" || p.Labels["bay.instance_id"] != b.InstanceID {
		t.Errorf("pod %s labels %v", p.Name, p.Labels)
	}
	psc, csc := p.Spec.SecurityContext, p.Spec.Containers[0].SecurityContext
	if !*psc.RunAsNonRoot || *psc.RunAsUser != 1000 || *psc.FSGroup != 1000 || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		*csc.AllowPrivilegeEscalation || csc.Capabilities.Drop[0] != "ALL" || *p.Spec.EnableServiceLinks || *p.Spec.AutomountServiceAccountToken ||
		p.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("pod security: pod %+v container %+v", psc, csc)
	}
	if got := p.Spec.Containers[0].Resources.Limits.Memory().Value(); got != 512<<20 {
		t.Errorf("memory limit %d", got)
	}

	// Stop: the pod goes, the files stay, the variables do not.
	b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/stop"})
	if n := len(e.pods(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("stop left %d pods", n)
	}
	if r = b.Python(t, id, "'x' in globals()"); r["output"] != "False" {
		t.Fatalf("variables survived a stop: %v", r)
	}
	if out := shell(t, b, id, "cat dir/a.txt; echo; wc -c < up/blob.bin"); out != "hello\n1048576" {
		t.Fatalf("files lost across stop: %q", out)
	}

	// A pod deleted behind Bay's back: the next call builds a new one.
	oldPod := e.pods(t, "bay.sandbox_id="+id)[0]
	old := oldPod.Name
	// A graceful delete: the pod leaves the API only once the kubelet has
	// stopped its containers (a forced one could still answer the next call).
	one := int64(1)
	if err := e.c.Client.CoreV1().Pods(e.ns).Delete(t.Context(), old, metav1.DeleteOptions{GracePeriodSeconds: &one}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := e.c.Client.CoreV1().Pods(e.ns).Get(t.Context(), old, metav1.GetOptions{}); err != nil {
			break
		}
	}
	if out := shell(t, b, id, "cat dir/a.txt"); out != "hello" {
		t.Fatalf("after the pod was deleted: %q", out)
	}
	if now := e.pods(t, "bay.sandbox_id="+id); len(now) != 1 || now[0].UID == oldPod.UID {
		t.Fatalf("%d pods after the rebuild (want a new one)", len(now))
	}

	// Bay restarted: the running sandbox keeps its kernel state.
	b.Python(t, id, "y = 7")
	b.Stop()
	b2 := baytest.Start(t, e.o)
	if r = b2.Python(t, id, "y * 6"); r["output"] != "42" {
		t.Fatalf("kernel state after a Bay restart: %v", r)
	}

	// Delete: pod and PVC go.
	b2.Must(t, 204, baytest.Req{Method: "DELETE", Path: sb})
	if n := len(e.pods(t, "bay.sandbox_id="+id)); n != 0 {
		t.Errorf("delete left %d pods", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(e.pvcs(t)) != 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond) // the pvc-protection finalizer goes when the kubelet confirms the pod gone
	}
	if left := e.pvcs(t); len(left) != 0 {
		t.Errorf("delete left PVCs %v", left)
	}
}

// TestGCOrphans: GC removes a pod and a PVC of this Bay that no record knows,
// and touches nothing unlabelled.
func TestGCOrphans(t *testing.T) {
	e := start(t)
	d, err := k8s.New(k8s.Config{Namespace: e.ns, Kubeconfig: e.c.Kubeconfig, PullPolicy: k8s.PullNever})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	inst := e.b.InstanceID
	gc := func() map[string]any {
		return e.b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/admin/gc/run",
			Body: map[string]any{"tasks": []string{"orphan_cargo", "orphan_container"}}})
	}
	// A GC run waits for the start-up reconcile (which removes orphans too):
	// what is created after it is left to the GC runs below.
	gc()
	mine := map[string]string{driver.LabelManaged: "true", driver.LabelInstanceID: inst, driver.LabelCargoID: "ws-orphan",
		driver.LabelOwner: "default"}
	if err := d.CreateVolume(ctx, "bay-cargo-ws-orphan", mine, 0); err != nil {
		t.Fatal(err)
	}
	podLabels := map[string]string{driver.LabelManaged: "true", driver.LabelInstanceID: inst, driver.LabelCargoID: "ws-orphan",
		driver.LabelSandboxID: "sandbox-orphan"}
	ship := []driver.ContainerSpec{{Name: "ship", Image: "ship:latest", Port: 8123}}
	const orphan = "sess-orphan"
	if _, err := d.CreateSession(ctx, driver.SessionSpec{ID: orphan, Volume: "bay-cargo-ws-orphan", Labels: podLabels,
		Containers: ship}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.StartSession(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	// Unlabelled neighbours: never touched.
	if err := d.CreateVolume(ctx, "someone-elses-claim", map[string]string{"team": "other"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateSession(ctx, driver.SessionSpec{ID: "someone-elses", Labels: map[string]string{"team": "other"},
		Containers: ship}); err != nil {
		t.Fatal(err)
	}

	gc() // the pod goes; its claim is still in use in this pass
	deadline := time.Now().Add(30 * time.Second)
	for {
		gc()
		if pvcs := e.pvcs(t); !contains(pvcs, "bay-cargo-ws-orphan") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if s, err := d.InspectSession(ctx, orphan); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("orphan pod: %+v, %v", s, err)
	}
	if contains(e.pvcs(t), "bay-cargo-ws-orphan") {
		t.Errorf("orphan PVC survived GC: %v", e.pvcs(t))
	}
	if !contains(e.pvcs(t), "someone-elses-claim") {
		t.Error("GC removed an unlabelled PVC")
	}
	if _, err := d.InspectSession(ctx, "someone-elses"); err != nil {
		t.Errorf("GC removed an unlabelled pod: %v", err)
	}
}

// TestMissingImage: a profile whose image the node cannot get fails clearly,
// and leaves no pod behind.
func TestMissingImage(t *testing.T) {
	e := start(t)
	id := e.b.CreateSandbox(t, map[string]any{"profile": "missing-image"})
	begin := time.Now()
	r := e.b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "1"}})
	took := time.Since(begin)
	t.Logf("after %s: %d %s", took.Round(time.Millisecond), r.Status, r.Body)
	if r.Status < 500 || !strings.Contains(string(r.Body), "shipyard-no-such-image") {
		t.Errorf("status %d body %s: want a 5xx naming the image", r.Status, r.Body)
	}
	if took > 20*time.Second {
		t.Errorf("took %s: the image error must not wait for the start timeout", took)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil && len(e.pods(t, "bay.sandbox_id="+id)) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(e.pods(t, "bay.sandbox_id="+id)); n != 0 {
		t.Errorf("%d pods left after the failed start", n)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestTerminal: the WebSocket terminal reaches the pod through Bay.
func TestTerminal(t *testing.T) {
	e := start(t)
	id := e.b.CreateSandbox(t, nil)
	e.b.TerminalRoundTrip(t, id, "echo term-$((6*7)) && id -u\n", "term-42", "1000")
}

// TestIdleReclaimAndMultiContainer: a two-container profile is one pod with
// a container each, on the same claim, each reaching the other by name; GC's
// idle reclaim removes the pod of an idle sandbox and keeps its files; delete
// removes it.
func TestIdleReclaimAndMultiContainer(t *testing.T) {
	e := start(t)
	b := e.b
	id := b.CreateSandbox(t, map[string]any{"profile": "duo"})
	if r := b.Python(t, id, "import os; open('note.txt', 'w').write('kept'); os.environ['BAY_CONTAINER_NAME']"); r["output"] != "'ship'" {
		t.Fatalf("python ran on %v", r["output"])
	}
	if out := shell(t, b, id, "echo $BAY_CONTAINER_NAME; cat note.txt"); out != "sidecar\nkept" {
		t.Fatalf("shell: %q", out)
	}
	// By name, as on Docker's session network: the sidecar reaches Ship's port.
	if out := shell(t, b, id, `exec 3<>/dev/tcp/ship/8123 && echo reached`); out != "reached" {
		t.Fatalf("sidecar → ship:8123: %q", out)
	}
	pods := e.pods(t, "bay.sandbox_id="+id)
	if len(pods) != 1 || len(pods[0].Spec.Containers) != 2 {
		t.Fatalf("%d pods (want 1 of two containers): %+v", len(pods), pods)
	}
	for _, c := range pods[0].Spec.Containers {
		if sc := c.SecurityContext; sc == nil || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: security context %+v", c.Name, sc)
		}
	}
	time.Sleep(1500 * time.Millisecond) // idle_timeout: 1
	r := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/admin/gc/run", Body: map[string]any{"tasks": []string{"idle_session"}}})
	t.Logf("gc: %v", r)
	if n := len(e.pods(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("idle reclaim left %d pods", n)
	}
	if out := shell(t, b, id, "cat note.txt"); out != "kept" {
		t.Fatalf("files after idle reclaim: %q", out)
	}
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: "/v1/sandboxes/" + id})
	if n := len(e.pods(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("%d pods after delete", n)
	}
}

// TestUnschedulableAndExpiry: a profile no node can fit fails with the
// scheduler's reason within pod_startup_timeout and leaves no pod; a
// sandbox past its TTL is removed by GC with its pod and its claim.
func TestUnschedulableAndExpiry(t *testing.T) {
	e := start(t, "BAY_DRIVER__K8S__POD_STARTUP_TIMEOUT", "4")
	b := e.b
	id := b.CreateSandbox(t, map[string]any{"profile": "huge"})
	begin := time.Now()
	r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "1"}})
	took := time.Since(begin)
	t.Logf("after %s: %d %s", took.Round(time.Millisecond), r.Status, r.Body)
	if r.Status != 503 || r.Code() != "session_not_ready" || !strings.Contains(string(r.Body), "could not be scheduled") ||
		took > 20*time.Second {
		t.Errorf("status %d after %s: want 503 session_not_ready saying it could not be scheduled, within the start timeout", r.Status, took)
	}
	if n := len(e.pods(t, "bay.sandbox_id="+id)); n != 0 {
		t.Errorf("%d pods left after the failed start", n)
	}
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: "/v1/sandboxes/" + id})

	// The rest on a Bay with the usual start timeout: 4 s is too short for a pod
	// that does get scheduled when the machine is busy (then a clear 503
	// session_not_ready, which this 1-second TTL leaves no time to retry).
	e = start(t)
	b = e.b
	id = b.CreateSandbox(t, map[string]any{"ttl": 1})
	if r := b.Python(t, id, "1+1"); r["output"] != "2" {
		t.Fatalf("1+1: %v", r)
	}
	time.Sleep(1500 * time.Millisecond)
	b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/admin/gc/run", Body: map[string]any{"tasks": []string{"expired_sandbox"}}})
	if n := len(e.pods(t, "bay.sandbox_id="+id)); n != 0 {
		t.Errorf("expiry left %d pods", n)
	}
	if r := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id}); r.Status != 404 {
		t.Errorf("expired sandbox: %d", r.Status)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(e.pvcs(t)) != 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if left := e.pvcs(t); len(left) != 0 {
		t.Errorf("expiry left PVCs %v", left)
	}

	// A namespace quota that admits no more pods: refused at once, as unschedulable.
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-pods"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}
	if _, err := e.c.Client.CoreV1().ResourceQuotas(e.ns).Create(t.Context(), q, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		cur, err := e.c.Client.CoreV1().ResourceQuotas(e.ns).Get(t.Context(), "no-pods", metav1.GetOptions{})
		if err == nil && cur.Status.Hard != nil {
			break // the quota controller has counted: admission now decides on it
		}
	}
	id = b.CreateSandbox(t, nil)
	r = b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "1"}})
	if r.Status != 503 || !strings.Contains(string(r.Body), "quota") {
		t.Errorf("under a full quota: %d %s", r.Status, r.Body)
	}
}

// TestWarmPool: the warm pool keeps a started pod ready; a create claims it
// (status ready, the same pod) and answers at once.
func TestWarmPool(t *testing.T) {
	e := start(t, "BAY_WARM_POOL__ENABLED", "true", "BAY_WARM_POOL__INTERVAL_SECONDS", "3600")
	b := e.b
	deadline := time.Now().Add(90 * time.Second)
	for {
		avail, err := b.App.Store.WarmSandboxes(t.Context(), "warm", model.WarmAvailable)
		if err != nil {
			t.Fatal(err)
		}
		if len(avail) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the warm pool did not fill")
		}
		time.Sleep(200 * time.Millisecond)
	}
	before := e.pods(t, "bay.profile_id=warm")
	if len(before) != 1 {
		t.Fatalf("%d warm pods", len(before))
	}
	begin := time.Now()
	sb := b.Must(t, 201, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"profile": "warm"}})
	id := sb["id"].(string)
	if r := b.Python(t, id, "1+1"); r["output"] != "2" {
		t.Fatalf("1+1: %v", r)
	}
	t.Logf("claim → first 1+1: %s", time.Since(begin).Round(time.Millisecond))
	if sb["status"] != "ready" {
		t.Errorf("claimed sandbox status %v, want ready", sb["status"])
	}
	if p := e.pods(t, "bay.sandbox_id="+id); len(p) != 1 || p[0].UID != before[0].UID {
		t.Errorf("the claimed sandbox does not run on the warm pod")
	}
}
