package k8s_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipyard/shipyard/internal/bay/driver/k8s/k8stest"
	"github.com/shipyard/shipyard/test/baytest"
)

// browserProfile is the default browser-python profile's shape (Ship and a
// Gull browser in one session), sized for the one-node test cluster.
const browserProfile = `
profiles:
  - id: browser-python
    browser: isolated
    containers:
      - name: ship
        image: ship:latest
        runtime_type: ship
        resources: {cpus: 0.5, memory: 512m}
        capabilities: [python, shell, filesystem]
        primary_for: [python, shell, filesystem]
      - name: browser
        image: gull:latest
        runtime_type: gull
        runtime_port: 8115
        resources: {cpus: 1.0, memory: 1g}
        capabilities: [browser]
        primary_for: [browser]
`

const page = `<!doctype html><html><head><title>Harbour</title></head><body>
<h1>Moored</h1><button>Cast off</button></body></html>`

// TestBrowserPython: a browser-python sandbox through Bay on Kubernetes is
// one pod of two containers; the browser opens a page that python's
// http.server serves from the Ship container by the name "ship", as on
// Docker, and its snapshot and screenshot work on the shared claim.
func TestBrowserPython(t *testing.T) {
	requireImage(t, "gull:latest")
	e := startWith(t, browserProfile)
	b := e.b
	id := b.CreateSandbox(t, map[string]any{"profile": "browser-python"})
	path := func(p string) string { return "/v1/sandboxes/" + id + "/" + p }
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: path("filesystem/files"), Body: map[string]any{"path": "site/index.html", "content": page}})
	out := shell(t, b, id, "cd /workspace/site && (setsid nohup python3 -m http.server 8000 --bind 0.0.0.0 >/tmp/http.log 2>&1 </dev/null &) && "+
		"for i in $(seq 50); do python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:8000/\")' 2>/dev/null && echo up && break; sleep 0.1; done")
	if !strings.Contains(out, "up") {
		t.Fatalf("fixture server: %q", out)
	}
	exec := func(cmd string) string {
		t.Helper()
		r := b.Must(t, 200, baytest.Req{Method: "POST", Path: path("browser/exec"), Body: map[string]any{"cmd": cmd, "timeout": 60}})
		if r["success"] != true {
			t.Fatalf("%s: %v", cmd, r)
		}
		s, _ := r["output"].(string)
		return s
	}
	begin := time.Now()
	if got := exec("open http://ship:8000/index.html"); !strings.Contains(got, "Harbour") {
		t.Fatalf("open: %q", got)
	}
	t.Logf("MEASURE cold open through Bay on Kubernetes (Chromium start included): %v", time.Since(begin).Round(time.Millisecond))
	snap := exec("snapshot -i")
	if !strings.Contains(snap, `[button] "Cast off"`) {
		t.Fatalf("snapshot: %s", snap)
	}
	exec("screenshot /workspace/shot.png")
	got := b.Do(t, baytest.Req{Method: "GET", Path: path("filesystem/download?path=shot.png")})
	if got.Status != 200 || !bytes.HasPrefix(got.Body, []byte("\x89PNG")) {
		t.Fatalf("screenshot through the shared claim: %d %q", got.Status, got.Body[:min(len(got.Body), 16)])
	}
	pods := e.pods(t, "bay.sandbox_id="+id)
	if len(pods) != 1 || len(pods[0].Spec.Containers) != 2 {
		t.Fatalf("%d pods, want one of two containers", len(pods))
	}
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: "/v1/sandboxes/" + id})
	if n := len(e.pods(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("%d pods after delete", n)
	}
}

// requireImage skips unless the cluster's node has img: scripts/kube.sh up
// imports it from Docker when Docker has it, and the node reports it within
// its next status update.
func requireImage(t *testing.T, img string) {
	t.Helper()
	c := k8stest.New(t)
	if _, err := baytest.Docker(t).ImageInspect(t.Context(), img); err != nil {
		t.Skipf("%s is not built (make image builds it; scripts/kube.sh up imports it): %v", img, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for {
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			for _, im := range n.Status.Images {
				for _, name := range im.Names {
					if name == img || strings.HasSuffix(name, "/"+img) {
						return
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Skipf("%s is in Docker but not in the test cluster (scripts/kube.sh up imports it)", img)
		case <-time.After(time.Second):
		}
	}
}
