package bay_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/shipyard/shipyard/test/baytest"
)

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.buf.String() }

func shipLogs(t *testing.T, sandboxID string) (logs, token string) {
	t.Helper()
	cli := baytest.Docker(t)
	list := containersOf(t, "bay.sandbox_id="+sandboxID)
	if len(list) != 1 {
		t.Fatalf("%d containers", len(list))
	}
	in, err := cli.ContainerInspect(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range in.Config.Env {
		if v, ok := strings.CutPrefix(e, "SHIP_TOKEN="); ok {
			token = v
		}
	}
	rc, err := cli.ContainerLogs(context.Background(), list[0].ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, rc)
	return out.String(), token
}

func TestRequestIDFollowsACallAndNoSecretsAreLogged(t *testing.T) {
	baytest.Skip(t)
	logs := &syncBuffer{}
	b := baytest.Start(t, baytest.Options{LogWriter: logs})
	id := b.CreateSandbox(t, nil)
	const rid = "trace-me-4242"
	r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "print(1)"},
		Headers: map[string]string{"X-Request-Id": rid}})
	if r.Status != 200 || r.Header.Get("X-Request-Id") != rid {
		t.Fatalf("exec: %d, X-Request-Id %q", r.Status, r.Header.Get("X-Request-Id"))
	}
	// The rest of a full scenario, for the secrets check.
	b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec", Body: map[string]any{"command": "echo hi"}})
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files", Body: map[string]any{"path": "a", "content": "b"}})
	b.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes", Key: "sk-bay-wrong-key-should-not-be-logged"})
	bayLog := logs.String()
	var line string
	for _, l := range strings.Split(bayLog, "\n") {
		if strings.Contains(l, rid) {
			line = l
			break
		}
	}
	if line == "" {
		t.Fatalf("request id not in Bay's log:\n%s", bayLog)
	}
	if !strings.Contains(line, `"sandbox_id":"`+id+`"`) {
		t.Errorf("Bay's line lacks the sandbox id: %s", line)
	}
	sl, token := shipLogs(t, id)
	if !strings.Contains(sl, rid) {
		t.Errorf("request id not in Ship's log:\n%s", sl)
	}
	if token == "" {
		t.Fatal("no SHIP_TOKEN in the container env")
	}
	for name, secret := range map[string]string{"api key": baytest.APIKey, "wrong key": "sk-bay-wrong-key-should-not-be-logged", "ship token": token} {
		if strings.Contains(bayLog, secret) {
			t.Errorf("%s in Bay's log", name)
		}
		if strings.Contains(sl, secret) {
			t.Errorf("%s in Ship's log", name)
		}
	}
}

func TestMetricsMoveAfterAScenario(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	b.Python(t, id, "1+1")
	b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec", Body: map[string]any{"command": "true"}})
	gcRun(t, b)
	r := b.Do(t, baytest.Req{Method: "GET", Path: "/metrics", NoAuth: true})
	if r.Status != 200 {
		t.Fatalf("/metrics: %d", r.Status)
	}
	text := string(r.Body)
	for _, want := range []string{
		`bay_http_requests_total{method="POST",route="/v1/sandboxes/{id}/python/exec",status="200"} 1`,
		`bay_session_starts_total 1`,
		`bay_exec_duration_seconds_count{capability="python"} 1`,
		`bay_exec_duration_seconds_count{capability="shell"} 1`,
		`bay_gc_passes_total{result="ok"} 1`,
		`bay_sandboxes{status="ready"} 1`,
		`bay_driver_call_duration_seconds_count{op="create"} 1`,
		`go_goroutines`,
		`bay_warm_pool_claims_total`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, id) {
		t.Error("a sandbox id leaked into metric labels")
	}
}

func TestHealthTurns503WhenDockerIsGone(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{Env: map[string]string{"BAY_DRIVER__DOCKER__SOCKET": "unix:///nonexistent/docker.sock"}})
	r := b.Do(t, baytest.Req{Method: "GET", Path: "/health", NoAuth: true})
	m := r.JSON()
	if r.Status != 503 || m["status"] != "degraded" || m["checks"].(map[string]any)["driver"] == "ok" {
		t.Fatalf("health with no Docker: %d %s", r.Status, r.Body)
	}
	if strings.Contains(string(r.Body), "nonexistent") {
		t.Fatalf("health leaks the socket path: %s", r.Body)
	}
	if r := b.Do(t, baytest.Req{Method: "GET", Path: "/healthz", NoAuth: true}); r.Status != 200 {
		t.Fatalf("liveness: %d", r.Status)
	}
	ok := baytest.Start(t, baytest.Options{})
	if r := ok.Do(t, baytest.Req{Method: "GET", Path: "/health", NoAuth: true}); r.Status != 200 {
		t.Fatalf("healthy Bay: %d %s", r.Status, r.Body)
	}
}
