package k8s_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" for database/sql
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/shipyard/shipyard/internal/bay/driver/k8s/k8stest"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
	"github.com/shipyard/shipyard/test/baytest"
)

// bayPodSelector selects Bay's own pods (deploy/k8s/bay.yaml).
const bayPodSelector = "app.kubernetes.io/name=bay"

// TestBayPods runs Bay the way deploy/k8s deploys it: the manifests applied
// with kubectl (kustomize), Bay's own image (bay:latest, images/bay), two
// replicas on one PostgreSQL, the in-cluster credentials of the service
// account "bay". Through each replica's pod IP it creates a sandbox, runs
// python and a shell command and deletes the sandbox, the two replicas taking
// turns on the same sandbox.
//
// A kustomize overlay moves everything into two fresh namespaces, so that
// this test and TestDeployManifests (namespaces shipyard and bay) never meet.
// The overlay changes nothing else in the manifests but what this cluster
// needs, each explained below: where the API server and the database are.
func TestBayPods(t *testing.T) {
	c := k8stest.New(t)
	dsn := os.Getenv("SHIPYARD_TEST_PG_DSN")
	if dsn == "" {
		t.Skip("SHIPYARD_TEST_PG_DSN not set: Bay's replicas share PostgreSQL (SHIPYARD_TEST_PG_DSN=$(scripts/pg.sh))")
	}
	kc := c.Kubectl(t)
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	ctlNS := "baypods-" + hex.EncodeToString(rb[:])
	sbxNS := ctlNS + "-sbx"
	nodeIP := nodeAddress(t, c)

	// The database: a private one on the server of SHIPYARD_TEST_PG_DSN.
	db := storetest.FreshDatabase(t, dsn, "baypods")

	// Pods cannot reach the API server nor the database where they listen:
	// scripts/kube.sh binds the API server to 127.0.0.1 and runs no
	// kube-proxy (so the "kubernetes" Service address routes nowhere), and
	// scripts/pg.sh's PostgreSQL listens on 127.0.0.1 only. Two relays on the
	// node's address stand in, accepting Bay's pods of this test and nobody
	// else. Bay keeps its in-cluster config: KUBERNETES_SERVICE_HOST/PORT
	// (which kube-proxy would make unnecessary) name the relay; the API
	// server's certificate names the node address.
	api, err := url.Parse(c.Rest.Host)
	if err != nil {
		t.Fatal(err)
	}
	apiRelay := startPodRelay(t, c, ctlNS, nodeIP, api.Host)
	dbRelay := startPodRelay(t, c, ctlNS, nodeIP, db.Host)
	podDSN := *db
	podDSN.Host = net.JoinHostPort(nodeIP, fmt.Sprint(dbRelay))

	dir := t.TempDir()
	base, err := filepath.Abs("../../deploy/k8s")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"kustomization.yaml": fmt.Sprintf(bayPodsOverlay, rel, ctlNS, sbxNS, apiRelay),
		"secret.yaml":        fmt.Sprintf(bayPodsSecret, ctlNS, podDSN.String(), baytest.APIKey),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	built := kc(nil, "kustomize", dir)
	checkOverlay(t, built, ctlNS, sbxNS)

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		zero := int64(0)
		_ = c.Client.RbacV1().ClusterRoleBindings().Delete(ctx, ctlNS+"-runtimeclasses", metav1.DeleteOptions{})
		_ = c.Client.RbacV1().ClusterRoles().Delete(ctx, ctlNS+"-runtimeclasses", metav1.DeleteOptions{})
		for _, ns := range []string{sbxNS, ctlNS} {
			_ = c.Client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
			if err := c.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
				t.Errorf("delete namespace %s: %v", ns, err)
			}
		}
	})
	// Runs before the namespaces go: what Bay said, when the test failed.
	t.Cleanup(func() {
		if t.Failed() {
			dumpBayPods(t, c, ctlNS, sbxNS)
		}
	})

	began := time.Now()
	kc([]byte(built), "apply", "-f", "-")
	pods := waitBayReady(t, c, ctlNS, 2, 3*time.Minute)
	t.Logf("kubectl apply → 2 Bay replicas Ready: %s", time.Since(began).Round(time.Millisecond))

	// Each replica by its pod IP (no kube-proxy: the Service's address routes nowhere here).
	bays := make([]*baytest.Bay, len(pods))
	for i, p := range pods {
		bays[i] = &baytest.Bay{URL: "http://" + net.JoinHostPort(p.Status.PodIP, "8114"), Client: &http.Client{Timeout: 3 * time.Minute}}
	}
	a, b := bays[0], bays[1]
	for _, x := range bays {
		if r := x.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes", NoAuth: true}); r.Status != http.StatusUnauthorized {
			t.Errorf("%s without a key: %d, want 401", x.URL, r.Status)
		}
	}

	created := time.Now()
	id := a.CreateSandbox(t, map[string]any{"profile": "python-default", "ttl": 600})
	sb := "/v1/sandboxes/" + id
	if r := b.Python(t, id, "1+1"); r["success"] != true || r["output"] != "2" {
		t.Fatalf("1+1 through %s: %v", b.URL, r)
	}
	t.Logf("create (replica 1) → first 1+1 (replica 2): %s", time.Since(created).Round(time.Millisecond))

	// The replicas share the session: state set through one is read through the other.
	a.Python(t, id, "x = 41")
	if r := b.Python(t, id, "x + 1"); r["output"] != "42" {
		t.Errorf("state across replicas: %v", r)
	}
	var hot []time.Duration
	for i := range 10 {
		x := bays[i%2]
		t0 := time.Now()
		if r := x.Python(t, id, "1+1"); r["output"] != "2" {
			t.Fatalf("1+1 through %s: %v", x.URL, r)
		}
		hot = append(hot, time.Since(t0))
	}
	slices.Sort(hot)
	t.Logf("1+1 through in-cluster Bay, alternating replicas: p50 %s, max %s", hot[len(hot)/2].Round(time.Microsecond), hot[len(hot)-1].Round(time.Microsecond))

	r := a.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{"command": "id -u; pwd"}})
	if out, _ := r["output"].(string); out != "1000\n/workspace" {
		t.Errorf("shell: %q", out)
	}

	// The sandbox's pod is in the sandbox namespace, made by Bay's own client
	// (its user agent names the field manager: no one else acts there).
	sps, err := c.Client.CoreV1().Pods(sbxNS).List(t.Context(), metav1.ListOptions{LabelSelector: "bay.sandbox_id=" + id})
	if err != nil {
		t.Fatal(err)
	}
	if len(sps.Items) != 1 || sps.Items[0].Status.Phase != corev1.PodRunning {
		t.Fatalf("sandbox pods: %d, want 1 running", len(sps.Items))
	}
	// The pod's object (not its status, which the scheduler and kubelet write)
	// was written by Bay's client only. Entries come in no fixed order.
	creators := 0
	for _, f := range sps.Items[0].ManagedFields {
		if f.Subresource == "" {
			creators++
			if f.Manager != "shipyard-bay" {
				t.Errorf("sandbox pod written by %q, want only shipyard-bay", f.Manager)
			}
		}
	}
	if creators == 0 {
		t.Error("sandbox pod: no field manager wrote its object")
	}

	b.Must(t, http.StatusNoContent, baytest.Req{Method: "DELETE", Path: sb})
	if r := a.Do(t, baytest.Req{Method: "GET", Path: sb}); r.Status != http.StatusNotFound {
		t.Errorf("deleted sandbox through the other replica: %d %s", r.Status, r.Body)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		l, err := c.Client.CoreV1().Pods(sbxNS).List(t.Context(), metav1.ListOptions{LabelSelector: "bay.sandbox_id=" + id})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sandbox's pod %s is still there after delete", l.Items[0].Name)
		}
	}
}

// bayPodsOverlay is the test's kustomization over deploy/k8s: %s the base,
// then the Bay namespace, the sandbox namespace and the API relay's port.
const bayPodsOverlay = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %[1]s
  - secret.yaml
patches:
  # Fresh namespaces: every object, and every reference to them.
  - target: {kind: Namespace, name: shipyard}
    patch: '[{"op": "replace", "path": "/metadata/name", "value": "%[2]s"}, {"op": "add", "path": "/metadata/labels/shipyard.test", "value": "true"}]'
  - target: {kind: Namespace, name: bay}
    patch: '[{"op": "replace", "path": "/metadata/name", "value": "%[3]s"}, {"op": "add", "path": "/metadata/labels/shipyard.test", "value": "true"}]'
  - target: {namespace: shipyard}
    patch: '[{"op": "replace", "path": "/metadata/namespace", "value": "%[2]s"}]'
  - target: {namespace: bay}
    patch: '[{"op": "replace", "path": "/metadata/namespace", "value": "%[3]s"}]'
  - target: {kind: RoleBinding, name: bay-driver}
    patch: '[{"op": "replace", "path": "/subjects/0/namespace", "value": "%[2]s"}]'
  # The cluster-scoped RuntimeClass reader gets names of its own (deleted at the end).
  - target: {kind: ClusterRole, name: bay-runtimeclasses}
    patch: '[{"op": "replace", "path": "/metadata/name", "value": "%[2]s-runtimeclasses"}]'
  - target: {kind: ClusterRoleBinding, name: bay-runtimeclasses}
    patch: '[{"op": "replace", "path": "/metadata/name", "value": "%[2]s-runtimeclasses"}, {"op": "replace", "path": "/roleRef/name", "value": "%[2]s-runtimeclasses"}, {"op": "replace", "path": "/subjects/0/namespace", "value": "%[2]s"}]'
  - target: {kind: NetworkPolicy, name: sandboxes}
    patch: '[{"op": "replace", "path": "/spec/ingress/0/from/0/namespaceSelector/matchLabels/kubernetes.io~1metadata.name", "value": "%[2]s"}]'
  # Bay's config (the ConfigMap) stays; the sandbox namespace is set over it
  # (variables win over the file), and the API server is reached through the
  # relay on the node's address.
  - target: {kind: Deployment, name: bay}
    patch: |
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: bay}
      spec:
        template:
          spec:
            containers:
              - name: bay
                env:
                  - name: KUBERNETES_SERVICE_HOST
                    valueFrom: {fieldRef: {fieldPath: status.hostIP}}
                  - {name: KUBERNETES_SERVICE_PORT, value: "%[4]d"}
                  - {name: BAY_DRIVER__K8S__NAMESPACE, value: %[3]s}
`

// bayPodsSecret is secret.example.yaml filled in: namespace, database URL, API key.
const bayPodsSecret = `apiVersion: v1
kind: Secret
metadata:
  name: bay-secrets
  namespace: %s
type: Opaque
stringData:
  database-url: %q
  api-key: %q
`

// checkOverlay fails the test if the rendered manifests would touch the
// namespaces shipyard or bay (where TestDeployManifests runs), or lack the
// test's own.
func checkOverlay(t *testing.T, built, ctlNS, sbxNS string) {
	t.Helper()
	dec := k8syaml.NewYAMLOrJSONDecoder(strings.NewReader(built), 4096)
	seen := map[string]bool{}
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kustomize output: %v", err)
		}
		kind, _ := obj["kind"].(string)
		meta, _ := obj["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		walkNamespaces(obj, func(v string) {
			if v == "shipyard" || v == "bay" {
				t.Errorf("%s %s still refers to namespace %s", kind, name, v)
			}
			seen[v] = true
		})
		if kind == "Namespace" {
			seen[name] = true
			if name != ctlNS && name != sbxNS {
				t.Errorf("kustomize output creates namespace %s", name)
			}
		}
	}
	if !seen[ctlNS] || !seen[sbxNS] {
		t.Errorf("kustomize output lacks the namespaces %s and %s", ctlNS, sbxNS)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// walkNamespaces calls f with every value of a "namespace" key and of a
// namespace selector's kubernetes.io/metadata.name, at any depth.
func walkNamespaces(v any, f func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && (k == "namespace" || k == "kubernetes.io/metadata.name") {
				f(s)
			}
			walkNamespaces(e, f)
		}
	case []any:
		for _, e := range x {
			walkNamespaces(e, f)
		}
	}
}

// nodeAddress is the test node's InternalIP: pods reach it through their
// default route, and the API server's certificate names it.
func nodeAddress(t *testing.T, c *k8stest.Cluster) string {
	t.Helper()
	nodes, err := c.Client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 {
		t.Skipf("%d nodes: the relays need the single-node test cluster of scripts/kube.sh", len(nodes.Items))
	}
	for _, a := range nodes.Items[0].Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	t.Fatal("the node has no InternalIP")
	return ""
}

// startPodRelay forwards TCP connections to target from a port on addr (the
// node's address), for the pods of Bay in namespace ns only: any other peer
// is closed at once. It returns the port and stops (connections included)
// when the test ends.
func startPodRelay(t *testing.T, c *k8stest.Cluster, ns, addr, target string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("relay for %s: %v", target, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	track := func(cn net.Conn, on bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if on && ctx.Err() != nil {
			return false
		}
		if on {
			conns[cn] = struct{}{}
		} else {
			delete(conns, cn)
		}
		return true
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			if !track(in, true) {
				in.Close()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer track(in, false)
				defer in.Close()
				peer, _, _ := net.SplitHostPort(in.RemoteAddr().String())
				if !isBayPod(ctx, c, ns, peer) {
					return
				}
				var d net.Dialer
				out, err := d.DialContext(ctx, "tcp", target)
				if err != nil {
					return
				}
				if !track(out, true) {
					out.Close()
					return
				}
				defer track(out, false)
				defer out.Close()
				done := make(chan struct{}, 2)
				pipe := func(dst, src net.Conn) {
					_, _ = io.Copy(dst, src)
					if tc, ok := dst.(*net.TCPConn); ok {
						_ = tc.CloseWrite()
					}
					done <- struct{}{}
				}
				go pipe(out, in)
				go pipe(in, out)
				<-done
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		cancel()
		ln.Close()
		for cn := range conns {
			cn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// isBayPod reports whether ip is the address of one of Bay's pods in ns. A
// pod's first connection can come before the kubelet has published its
// address, so a miss is retried for a few seconds.
func isBayPod(ctx context.Context, c *k8stest.Cluster, ns, ip string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		l, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: bayPodSelector})
		if err == nil && slices.ContainsFunc(l.Items, func(p corev1.Pod) bool { return p.Status.PodIP == ip }) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// bayPodStuck are the waiting reasons of a Bay container that will not start
// by waiting longer.
var bayPodStuck = []string{"ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
	"CreateContainerConfigError", "CrashLoopBackOff"}

// waitBayReady waits until n of Bay's pods in ns are Ready and returns them;
// a pod that cannot start fails the test at once.
func waitBayReady(t *testing.T, c *k8stest.Cluster, ns string, n int, timeout time.Duration) []corev1.Pod {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(250 * time.Millisecond) {
		l, err := c.Client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: bayPodSelector})
		if err != nil {
			t.Fatal(err)
		}
		var ready []corev1.Pod
		for _, p := range l.Items {
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil && slices.Contains(bayPodStuck, w.Reason) {
					t.Fatalf("Bay pod %s: %s: %s (is bay:latest built and imported? make image-bay; scripts/kube.sh import bay:latest)", p.Name, w.Reason, w.Message)
				}
			}
			for _, cd := range p.Status.Conditions {
				if cd.Type == corev1.PodReady && cd.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil && p.Status.PodIP != "" {
					ready = append(ready, p)
				}
			}
		}
		if len(ready) >= n {
			return ready[:n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Bay pods Ready after %s", len(ready), n, timeout)
		}
	}
}

// dumpBayPods logs Bay's pods (status and last log lines) and the events of
// both namespaces.
func dumpBayPods(t *testing.T, c *k8stest.Cluster, ctlNS, sbxNS string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := c.Client.CoreV1().Pods(ctlNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("list Bay pods: %v", err)
		return
	}
	tail := int64(60)
	for _, p := range l.Items {
		t.Logf("pod %s: phase %s, %+v", p.Name, p.Status.Phase, p.Status.ContainerStatuses)
		for _, previous := range []bool{true, false} {
			raw, err := c.Client.CoreV1().Pods(ctlNS).GetLogs(p.Name, &corev1.PodLogOptions{TailLines: &tail, Previous: previous}).DoRaw(ctx)
			if err == nil && len(raw) > 0 {
				t.Logf("pod %s log (previous=%v):\n%s", p.Name, previous, raw)
			}
		}
	}
	for _, ns := range []string{ctlNS, sbxNS} {
		ev, err := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, e := range ev.Items {
			t.Logf("event %s %s/%s: %s %s", ns, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
}
