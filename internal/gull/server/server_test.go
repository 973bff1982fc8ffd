package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/gull/browser"
)

// fakeBrowser answers from a table and records calls.
type fakeBrowser struct {
	mu      sync.Mutex
	calls   []string
	timeout []time.Duration
	closed  int
	delay   time.Duration
}

func (f *fakeBrowser) Exec(ctx context.Context, line, sandboxID string, timeout time.Duration) browser.Result {
	f.mu.Lock()
	f.calls = append(f.calls, line)
	f.timeout = append(f.timeout, timeout)
	f.mu.Unlock()
	time.Sleep(f.delay)
	if strings.HasPrefix(line, "fail") {
		return browser.Result{Stderr: "Error: failed", ExitCode: 1}
	}
	return browser.Result{Stdout: "ok " + line}
}

func (f *fakeBrowser) Status() browser.Status { return browser.Status{Ready: true, Session: "sbx"} }

func (f *fakeBrowser) Close(ctx context.Context) error { f.closed++; return nil }

func do(t *testing.T, h http.Handler, method, path, body, token string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var v map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &v)
	return rec.Code, v
}

func TestAPI(t *testing.T) {
	fb := &fakeBrowser{}
	h := New(Options{Browser: fb, Workspace: "/workspace", Token: "tok", MaxBatch: 3}).Handler()

	if code, _ := do(t, h, "POST", "/exec", `{"cmd":"get title"}`, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code, _ := do(t, h, "POST", "/exec", `{"cmd":"get title"}`, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", code)
	}
	if code, v := do(t, h, "GET", "/health", "", ""); code != http.StatusOK || v["status"] != "healthy" || v["browser_ready"] != true || v["session"] != "sbx" {
		t.Errorf("health without a token: %d %v", code, v)
	}
	code, v := do(t, h, "GET", "/meta", "", "tok")
	rt, _ := v["runtime"].(map[string]any)
	caps, _ := v["capabilities"].(map[string]any)
	if code != http.StatusOK || rt["name"] != "gull" || caps["browser"] == nil || v["built_in_skills"] == nil {
		t.Errorf("meta: %d %v", code, v)
	}
	code, v = do(t, h, "POST", "/exec", `{"cmd":"get title","timeout":5,"sandbox_id":"s","cargo_id":"c"}`, "tok")
	if code != http.StatusOK || v["stdout"] != "ok get title" || v["exit_code"] != 0.0 || v["stderr"] != "" {
		t.Errorf("exec: %d %v", code, v)
	}
	if fb.timeout[len(fb.timeout)-1] != 5*time.Second {
		t.Errorf("timeout passed as %v", fb.timeout[len(fb.timeout)-1])
	}
	do(t, h, "POST", "/exec", `{"cmd":"x"}`, "tok")
	if fb.timeout[len(fb.timeout)-1] != 30*time.Second {
		t.Errorf("default timeout %v", fb.timeout[len(fb.timeout)-1])
	}
	for _, body := range []string{`{}`, `{"cmd":null}`, `{"cmd":"x","timeout":0}`, `{"cmd":"x","timeout":-1}`, `{"cmd":"x","timeout":601}`,
		`{"cmd":5}`, `not json`, `[]`, `{"commands":[]}`} {
		if code, _ := do(t, h, "POST", "/exec", body, "tok"); code != http.StatusUnprocessableEntity {
			t.Errorf("exec %s: %d, want 422", body, code)
		}
	}
	for _, body := range []string{`{}`, `{"commands":[]}`, `{"commands":["a","b","c","d"]}`, `{"commands":["a"],"timeout":0}`} {
		if code, _ := do(t, h, "POST", "/exec_batch", body, "tok"); code != http.StatusUnprocessableEntity {
			t.Errorf("batch %s: %d, want 422", body, code)
		}
	}
	big := `{"cmd":"` + strings.Repeat("a", 5<<20) + `"}`
	if code, _ := do(t, h, "POST", "/exec", big, "tok"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("big body: %d", code)
	}
	code, v = do(t, h, "DELETE", "/sessions/sbx-1", "", "tok")
	if code != http.StatusOK || v["sandbox_id"] != "sbx-1" || v["destroyed"] != true || fb.closed != 1 {
		t.Errorf("delete session: %d %v", code, v)
	}
}

func TestBatch(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		steps     int
		completed float64
		success   bool
	}{
		{"all succeed", `{"commands":["a","b"]}`, 2, 2, true},
		{"stop on error by default", `{"commands":["a","fail","c"]}`, 2, 2, false},
		{"stop_on_error false runs all", `{"commands":["a","fail","c"],"stop_on_error":false}`, 3, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(Options{Browser: &fakeBrowser{}}).Handler()
			code, v := do(t, h, "POST", "/exec_batch", tt.body, "")
			res, _ := v["results"].([]any)
			if code != http.StatusOK || len(res) != tt.steps || v["completed_steps"] != tt.completed || v["success"] != tt.success || v["duration_ms"] == nil {
				t.Fatalf("%d %v", code, v)
			}
			last := res[len(res)-1].(map[string]any)
			for _, k := range []string{"cmd", "stdout", "stderr", "exit_code", "step_index", "duration_ms"} {
				if _, ok := last[k]; !ok {
					t.Errorf("step lacks %s: %v", k, last)
				}
			}
			if last["step_index"] != float64(tt.steps-1) {
				t.Errorf("step_index %v", last["step_index"])
			}
		})
	}
	// The timeout is the whole batch's: a command that starts after it ran
	// out fails with a clear error without running.
	fb := &fakeBrowser{delay: 600 * time.Millisecond}
	h := New(Options{Browser: fb}).Handler()
	_, v := do(t, h, "POST", "/exec_batch", `{"commands":["a","b","c"],"timeout":1,"stop_on_error":false}`, "")
	res := v["results"].([]any)
	if len(fb.calls) != 2 || len(res) != 3 {
		t.Fatalf("calls %v, results %v", fb.calls, res)
	}
	last := res[2].(map[string]any)
	if last["exit_code"] != 124.0 || !strings.Contains(last["stderr"].(string), "ran out") {
		t.Errorf("third step: %v", last)
	}
	if fb.timeout[1] >= time.Second || fb.timeout[1] <= 0 {
		t.Errorf("second step got %v, want what was left of the batch's second", fb.timeout[1])
	}
}

// TestTokenHeader: the token passes in X-Ship-Token where a proxy (the
// Kubernetes API server's) takes Authorization for itself.
func TestTokenHeader(t *testing.T) {
	h := New(Options{Browser: &fakeBrowser{}, Workspace: "/workspace", Token: "tok", MaxBatch: 3}).Handler()
	tests := []struct {
		token string
		want  int
	}{{"tok", http.StatusOK}, {"nope", http.StatusUnauthorized}}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "/meta", nil)
		req.Header.Set("X-Ship-Token", tt.token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("token %q: %d %s", tt.token, rec.Code, rec.Body)
		}
	}
}
