package bay_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/shipyard/shipyard/test/baytest"
)

func TestTerminalThroughBay(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, _, err := websocket.Dial(ctx, b.TerminalURL(id), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer sk-bay-wrong"}}}); err == nil {
		t.Fatal("terminal with a wrong key was accepted")
	}
	b.TerminalRoundTrip(t, id, "echo term-$((6*7)) && id -u\n", "term-42", "1000")
}

func TestMultiContainerProfile(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{ConfigYAML: `
profiles:
  - id: duo
    containers:
      - name: ship
        image: ship:latest
        capabilities: [python, filesystem]
      - name: sidecar
        image: ship:latest
        capabilities: [shell]
`})
	id := b.CreateSandbox(t, map[string]any{"profile": "duo"})
	sb := b.Must(t, 201, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"profile": "duo"}})
	if caps := sb["capabilities"].([]any); len(caps) != 3 {
		t.Fatalf("capabilities %v", caps)
	}
	if r := b.Python(t, id, "import socket; socket.gethostname()"); r["output"] != "'ship'" {
		t.Fatalf("python ran on %v", r["output"])
	}
	sh := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec", Body: map[string]any{"command": "hostname"}})
	if sh["output"] != "sidecar" {
		t.Fatalf("shell ran on %v", sh["output"])
	}
	list := containersOf(t, "bay.sandbox_id="+id)
	if len(list) != 2 {
		t.Fatalf("%d containers", len(list))
	}
	sess := list[0].Labels["bay.session_id"]
	cli := baytest.Docker(t)
	nets, err := cli.NetworkList(context.Background(), network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "bay.session_id="+sess))})
	if err != nil || len(nets) != 1 {
		t.Fatalf("session network: %v %v", nets, err)
	}
	got := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id})
	if cs := got["containers"].([]any); len(cs) != 2 {
		t.Fatalf("containers %v", cs)
	}
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: "/v1/sandboxes/" + id})
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("%d containers after delete", n)
	}
	nets, _ = cli.NetworkList(context.Background(), network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "bay.session_id="+sess))})
	if len(nets) != 0 {
		t.Fatalf("session network left: %v", nets)
	}
}

func TestDeadContainerIsReplacedTransparently(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	b.Python(t, id, "x = 1")
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files", Body: map[string]any{"path": "keep", "content": "k"}})
	list := containersOf(t, "bay.sandbox_id="+id)
	if len(list) != 1 {
		t.Fatalf("%d containers", len(list))
	}
	if err := baytest.Docker(t).ContainerKill(context.Background(), list[0].ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	// The very next call, well within the probe interval, must still succeed.
	r := b.Python(t, id, "'x' in globals()")
	if r["success"] != true || r["output"] != "False" {
		t.Fatalf("after the container died: %v", r)
	}
	if f := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id + "/filesystem/files?path=keep"}); f["content"] != "k" {
		t.Fatalf("workspace lost: %v", f)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 1 {
		t.Fatalf("%d containers after replacement", n)
	}
}

func TestDeadKernelIsRestartedAndSaysSo(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	b.Python(t, id, "v = 1")
	died := b.Python(t, id, "import os; os._exit(3)")
	if died["success"] != false {
		t.Fatalf("a dying cell succeeded: %v", died)
	}
	r := b.Python(t, id, "'v' in globals()")
	restarted := died["kernel_restarted"] == true || r["kernel_restarted"] == true
	if !restarted || r["output"] != "False" {
		t.Fatalf("restart not reported: died=%v next=%v", died, r)
	}
	if n, _ := r["notice"].(string); r["kernel_restarted"] == true && !strings.Contains(strings.ToLower(n), "lost") {
		t.Fatalf("notice %q does not say state was lost", n)
	}
	if r2 := b.Python(t, id, "1+1"); r2["output"] != "2" || r2["kernel_restarted"] == true {
		t.Fatalf("after restart: %v", r2)
	}
}

func TestPythonTimeoutThroughBay(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	b.Python(t, id, "keep = 5")
	start := time.Now()
	r := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec",
		Body: map[string]any{"code": "print('before', flush=True)\nimport time; time.sleep(60)", "timeout": 2}})
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if r["success"] != false || r["timed_out"] != true || !strings.Contains(r["output"].(string), "before") ||
		!strings.Contains(r["error"].(string), "timed out") {
		t.Fatalf("timeout response: %v", r)
	}
	if r := b.Python(t, id, "keep * 2"); r["output"] != "10" {
		t.Fatalf("kernel state after timeout: %v", r)
	}
}

func TestMissingImageIsAClearError(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{ConfigYAML: `
profiles:
  - id: python-default
    image: ship:latest
  - id: ghost
    image: shipyard-test/does-not-exist:1
`, Env: map[string]string{"BAY_DRIVER__IMAGE_PULL_POLICY": "never"}})
	id := b.CreateSandbox(t, map[string]any{"profile": "ghost"})
	r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "1"}})
	e, _ := r.JSON()["error"].(map[string]any)
	if r.Status != 503 || r.Code() != "profile_unavailable" || r.Header.Get("Retry-After") != "" || e == nil ||
		!strings.Contains(e["message"].(string), "does-not-exist:1") || e["request_id"] == "" {
		t.Fatalf("missing image: %d %s", r.Status, r.Body)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("%d containers left", n)
	}
}
