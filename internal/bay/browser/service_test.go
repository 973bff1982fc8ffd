package browser_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/api"
	"github.com/shipyard/shipyard/internal/bay/auth"
	"github.com/shipyard/shipyard/internal/bay/browser"
	"github.com/shipyard/shipyard/internal/bay/capability"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/idempotency"
	"github.com/shipyard/shipyard/internal/bay/keylock"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/sandbox"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/session/sessiontest"
	"github.com/shipyard/shipyard/internal/bay/skills"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

// fakeGull is a Gull runtime: "echo <words>" prints them, "fail" exits 1,
// "huge" prints more than Bay accepts, "crash" answers HTTP 500; /exec_batch
// runs the same commands and honours stop_on_error.
type fakeGull struct {
	srv *httptest.Server

	mu   sync.Mutex
	reqs []gullReq
}

type gullReq struct {
	Path, Auth string
	Body       map[string]any
}

func newFakeGull(t *testing.T) *fakeGull {
	g := &fakeGull{}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func run(cmd string) (stdout, stderr string, code int) {
	switch {
	case strings.HasPrefix(cmd, "echo "):
		return strings.TrimPrefix(cmd, "echo "), "", 0
	case cmd == "fail":
		return "", "boom: element @e9 not found; run snapshot -i", 1
	case cmd == "huge":
		return strings.Repeat("x", 2<<20), "", 0
	}
	return "", "unknown command: " + cmd, 2
}

func (g *fakeGull) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/health":
		_, _ = w.Write([]byte(`{"status":"healthy","browser_active":false,"browser_ready":true,"session":null,"version":"fake"}`))
		return
	case "/meta":
		_, _ = w.Write([]byte(`{"runtime":{"name":"gull","version":"fake"},"workspace":{"mount_path":"/workspace"},"capabilities":{"browser":{"version":"1.0"}}}`))
		return
	}
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	g.mu.Lock()
	g.reqs = append(g.reqs, gullReq{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Body: body})
	g.mu.Unlock()
	switch r.URL.Path {
	case "/exec":
		cmd, _ := body["cmd"].(string)
		if cmd == "crash" {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"detail":"chromium crashed"}`))
			return
		}
		out, errText, code := run(cmd)
		_ = json.NewEncoder(w).Encode(map[string]any{"stdout": out, "stderr": errText, "exit_code": code})
	case "/exec_batch":
		stop, _ := body["stop_on_error"].(bool)
		cmds, _ := body["commands"].([]any)
		results := []map[string]any{}
		ok := true
		for i, c := range cmds {
			out, errText, code := run(c.(string))
			results = append(results, map[string]any{"cmd": c, "stdout": out, "stderr": errText, "exit_code": code, "step_index": i, "duration_ms": 3})
			if code != 0 {
				ok = false
				if stop {
					break
				}
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"results": results, "total_steps": len(cmds),
			"completed_steps": len(results), "success": ok, "duration_ms": 9})
	case "/sessions/" + strings.TrimPrefix(r.URL.Path, "/sessions/"):
		_ = json.NewEncoder(w).Encode(map[string]any{"sandbox_id": strings.TrimPrefix(r.URL.Path, "/sessions/"), "destroyed": true})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (g *fakeGull) requests() []gullReq {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gullReq(nil), g.reqs...)
}

// gullDriver starts fake Ships, except that containers of runtime type gull
// answer at the fake Gull.
type gullDriver struct {
	*sessiontest.Driver
}

func newGullDriver(gull string) *gullDriver {
	d := &gullDriver{Driver: sessiontest.NewDriver()}
	d.Endpoint = func(c driver.ContainerSpec) string {
		if c.Labels[driver.LabelRuntimeType] == config.RuntimeGull {
			return gull
		}
		return ""
	}
	return d
}

type env struct {
	h    http.Handler
	gull *fakeGull
	drv  *gullDriver
	st   *store.Store
	cfg  *config.Config
}

// newEnv wires the real API, capability and browser services over a real
// SQLite store and a fake driver whose browser containers answer at a fake Gull.
func newEnv(t *testing.T, edit func(*config.Config)) *env {
	t.Helper()
	return newEnvOn(t, store.SQLite, ":memory:", edit)
}

func newEnvOn(t *testing.T, dialect, dsn string, edit func(*config.Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dialect, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := newFakeGull(t)
	drv := newGullDriver(g.srv.URL)
	t.Cleanup(drv.Close)
	rt := runtime.New(runtime.Config{})
	t.Cleanup(rt.Close)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	sm := session.New(st, drv, rt, keylock.New(), session.Config{InstanceID: "test", ReadyTimeout: 5 * time.Second,
		HealthTimeout: time.Second, ProbeInterval: time.Minute, SingleInstance: true}, log, session.Hooks{})
	cfg := config.Default()
	if edit != nil {
		edit(cfg)
	}
	profiles := map[string]*session.Profile{}
	for id, p := range cfg.Profiles {
		profiles[id] = sandbox.SessionProfile(cfg, p)
	}
	caps := &capability.Service{Store: st, Sessions: sm, Runtime: rt, Config: cfg, Profiles: profiles, Log: log,
		WatchInterval: time.Second}
	gc := browser.NewClient(browser.ClientConfig{MaxResponseBytes: 1 << 20})
	t.Cleanup(gc.Close)
	bs := &browser.Service{Caps: caps, Store: st, Gull: gc, Config: cfg, Log: log}
	h := api.New(api.Deps{Config: cfg, Store: st, Auth: auth.New(st, auth.Policy{AllowAnonymous: true, AllowAnonymousRemote: true}),
		Sandboxes:    &sandbox.Service{Store: st, Sessions: sm, Driver: drv, Config: cfg, Profiles: profiles, Log: log},
		Capabilities: caps, Browser: bs, Skills: &skills.Service{Store: st}, Idempotency: &idempotency.Guard{Store: st}, Log: log})
	return &env{h: h, gull: g, drv: drv, st: st, cfg: cfg}
}

func (e *env) do(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, r)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return w.Code, m
}

func (e *env) must(t *testing.T, want int, method, path string, body any) map[string]any {
	t.Helper()
	code, m := e.do(t, method, path, body)
	if code != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, code, m, want)
	}
	return m
}

func (e *env) sandbox(t *testing.T, profile string) string {
	t.Helper()
	return e.must(t, 201, "POST", "/v1/sandboxes", map[string]any{"profile": profile})["id"].(string)
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func errMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["message"].(string)
	return c
}

func history(t *testing.T, e *env, id, execID string) map[string]any {
	t.Helper()
	return e.must(t, 200, "GET", "/v1/sandboxes/"+id+"/history/"+execID, nil)
}

func TestExecHistoryAndTraces(t *testing.T) { execHistoryAndTraces(t, newEnv(t, nil)) }

func execHistoryAndTraces(t *testing.T, e *env) {
	id := e.sandbox(t, "browser-python")
	base := "/v1/sandboxes/" + id + "/browser/"

	r := e.must(t, 200, "POST", base+"exec", map[string]any{"cmd": "echo <hi> & bye", "include_trace": true, "learn": true,
		"tags": "b, a,b", "description": "greet"})
	ref, _ := r["trace_ref"].(string)
	if r["success"] != true || r["output"] != "<hi> & bye" || r["error"] != nil || r["exit_code"] != 0.0 ||
		!strings.HasPrefix(ref, "blob:blob-") || !strings.HasPrefix(r["execution_id"].(string), "exec-") {
		t.Fatalf("exec: %v", r)
	}
	reqs := e.gull.requests()
	last := reqs[len(reqs)-1]
	if last.Path != "/exec" || last.Body["sandbox_id"] != id || last.Body["timeout"] != 30.0 || !strings.HasPrefix(last.Auth, "Bearer ") {
		t.Fatalf("gull saw %+v", last)
	}
	h := history(t, e, id, r["execution_id"].(string))
	for k, want := range map[string]any{"exec_type": "browser", "code": "echo <hi> & bye", "output": "<hi> & bye", "error": nil,
		"success": true, "payload_ref": ref, "learn_enabled": true, "learn_status": "pending", "tags": "a,b", "description": "greet"} {
		if h[k] != want {
			t.Errorf("history %s = %v, want %v", k, h[k], want)
		}
	}
	if s, _ := h["session_id"].(string); !strings.HasPrefix(s, "sess-") {
		t.Errorf("history session_id %v", h["session_id"])
	}
	tr := e.must(t, 200, "GET", base+"traces/"+ref, nil)
	steps, _ := tr["trace"].(map[string]any)["steps"].([]any)
	if tr["trace_ref"] != ref || tr["trace"].(map[string]any)["kind"] != "browser_exec_trace" || len(steps) != 1 ||
		steps[0].(map[string]any)["cmd"] != "echo <hi> & bye" || steps[0].(map[string]any)["kind"] != "individual_action" {
		t.Fatalf("trace: %v", tr)
	}

	// learn alone stores a trace for the learner but returns no ref.
	r = e.must(t, 200, "POST", base+"exec", map[string]any{"cmd": "fail", "learn": true})
	if r["success"] != false || r["exit_code"] != 1.0 || !strings.Contains(r["error"].(string), "run snapshot -i") || r["trace_ref"] != nil {
		t.Fatalf("failing exec: %v", r)
	}
	h = history(t, e, id, r["execution_id"].(string))
	if p, _ := h["payload_ref"].(string); !strings.HasPrefix(p, "blob:") || h["success"] != false || h["learn_status"] != "pending" {
		t.Fatalf("learn-only history: %v", h)
	}
	r = e.must(t, 200, "POST", base+"exec", map[string]any{"cmd": "echo plain", "timeout": 7})
	h = history(t, e, id, r["execution_id"].(string))
	if h["payload_ref"] != nil || h["learn_status"] != "skipped" || h["learn_enabled"] != false || r["trace_ref"] != nil {
		t.Fatalf("plain history: %v / %v", h, r)
	}
	list := e.must(t, 200, "GET", "/v1/sandboxes/"+id+"/history?exec_type=browser", nil)
	if list["total"] != 3.0 {
		t.Fatalf("browser history: %v", list)
	}

	for _, tc := range []struct {
		ref  string
		code int
		err  string
	}{
		{"not-a-blob", 400, "validation_error"},
		{"blob:blob-000000000000", 404, "not_found"},
		{"blob:", 400, "validation_error"},
	} {
		code, m := e.do(t, "GET", base+"traces/"+tc.ref, nil)
		if code != tc.code || errCode(m) != tc.err {
			t.Errorf("trace %q: %d %v", tc.ref, code, m)
		}
	}
}

func TestBatchStopOnError(t *testing.T) { batchStopOnError(t, newEnv(t, nil)) }

func batchStopOnError(t *testing.T, e *env) {
	id := e.sandbox(t, "browser-python")
	path := "/v1/sandboxes/" + id + "/browser/exec_batch"
	cmds := []string{"echo a", "fail", "echo b"}

	r := e.must(t, 200, "POST", path, map[string]any{"commands": cmds, "include_trace": true})
	res := r["results"].([]any)
	if r["success"] != false || r["total_steps"] != 3.0 || r["completed_steps"] != 2.0 || len(res) != 2 || r["duration_ms"] != 9.0 {
		t.Fatalf("stop_on_error (default true): %v", r)
	}
	if s := res[1].(map[string]any); s["cmd"] != "fail" || s["exit_code"] != 1.0 || s["step_index"] != 1.0 {
		t.Fatalf("step 1: %v", s)
	}
	h := history(t, e, id, r["execution_id"].(string))
	if h["exec_type"] != "browser_batch" || h["code"] != "echo a\nfail\necho b" || h["output"] != "a" ||
		!strings.HasPrefix(h["error"].(string), "boom") || h["success"] != false || h["payload_ref"] != r["trace_ref"] {
		t.Fatalf("batch history: %v", h)
	}
	tr := e.must(t, 200, "GET", "/v1/sandboxes/"+id+"/browser/traces/"+r["trace_ref"].(string), nil)["trace"].(map[string]any)
	if tr["kind"] != "browser_batch_trace" || tr["completed_steps"] != 2.0 || tr["total_steps"] != 3.0 || len(tr["steps"].([]any)) != 2 {
		t.Fatalf("batch trace: %v", tr)
	}

	r = e.must(t, 200, "POST", path, map[string]any{"commands": cmds, "stop_on_error": false, "timeout": 600})
	if len(r["results"].([]any)) != 3 || r["completed_steps"] != 3.0 || r["success"] != false || r["trace_ref"] != nil {
		t.Fatalf("stop_on_error false: %v", r)
	}
	reqs := e.gull.requests()
	if b := reqs[len(reqs)-1].Body; b["stop_on_error"] != false || b["timeout"] != 600.0 {
		t.Fatalf("gull batch body: %v", b)
	}
	r = e.must(t, 200, "POST", path, map[string]any{"commands": []string{"echo x", "echo y"}})
	if r["success"] != true || r["completed_steps"] != 2.0 {
		t.Fatalf("all ok: %v", r)
	}
}

func TestSkillRun(t *testing.T) { skillRun(t, newEnv(t, nil)) }

func skillRun(t *testing.T, e *env) {
	id := e.sandbox(t, "browser-python")
	ex := e.must(t, 200, "POST", "/v1/sandboxes/"+id+"/browser/exec", map[string]any{"cmd": "echo seed"})
	release := func(key string, payload any) string {
		p := e.must(t, 201, "POST", "/v1/skills/payloads", map[string]any{"payload": payload, "kind": "browser"})
		c := e.must(t, 201, "POST", "/v1/skills/candidates", map[string]any{"skill_key": key,
			"source_execution_ids": []any{ex["execution_id"]}, "payload_ref": p["payload_ref"]})
		e.must(t, 200, "POST", "/v1/skills/candidates/"+c["id"].(string)+"/evaluate", map[string]any{"passed": true})
		return e.must(t, 200, "POST", "/v1/skills/candidates/"+c["id"].(string)+"/promote", map[string]any{"stage": "canary"})["id"].(string)
	}
	rid := release("login", map[string]any{"commands": []any{"echo open", "echo fill", "echo click"}})

	r := e.must(t, 200, "POST", "/v1/sandboxes/"+id+"/browser/skills/login/run", map[string]any{"tags": "mine", "include_trace": true})
	if r["skill_key"] != "login" || r["release_id"] != rid || r["success"] != true || r["completed_steps"] != 3.0 ||
		len(r["results"].([]any)) != 3 || r["trace_ref"] == nil {
		t.Fatalf("run: %v", r)
	}
	h := history(t, e, id, r["execution_id"].(string))
	if h["exec_type"] != "browser_batch" || h["tags"] != "mine,release:"+rid+",skill:login,stage:canary" || h["code"] != "echo open\necho fill\necho click" {
		t.Fatalf("skill history: %v", h)
	}
	// An empty body takes the defaults.
	if code, m := e.do(t, "POST", "/v1/sandboxes/"+id+"/browser/skills/login/run", ""); code != 200 || m["success"] != true {
		t.Fatalf("empty body: %d %v", code, m)
	}

	code, m := e.do(t, "POST", "/v1/sandboxes/"+id+"/browser/skills/nope/run", map[string]any{})
	if code != 404 || errMessage(m) != "No active release found for skill_key: nope" {
		t.Fatalf("unknown skill: %d %v", code, m)
	}
	for key, payload := range map[string]any{"no-commands": map[string]any{"steps": []any{"x"}},
		"empty-commands": map[string]any{"commands": []any{}}, "not-strings": map[string]any{"commands": []any{1}},
		"array": []any{"echo a"}} {
		release(key, payload)
		code, m := e.do(t, "POST", "/v1/sandboxes/"+id+"/browser/skills/"+key+"/run", map[string]any{})
		if code != 400 || errCode(m) != "validation_error" || !strings.Contains(errMessage(m), "commands") {
			t.Errorf("%s: %d %v", key, code, m)
		}
	}
	// The sandbox is checked before the skill.
	if code, m := e.do(t, "POST", "/v1/sandboxes/sandbox-000000000000/browser/skills/login/run", map[string]any{}); code != 404 || errCode(m) != "not_found" {
		t.Fatalf("unknown sandbox: %d %v", code, m)
	}
}

func TestNoBrowserCapability(t *testing.T) {
	e := newEnv(t, nil)
	id := e.sandbox(t, "python-default")
	for _, c := range []struct{ method, path string }{
		{"POST", "browser/exec"}, {"POST", "browser/exec_batch"}, {"POST", "browser/skills/k/run"}, {"GET", "browser/traces/blob:blob-1"},
	} {
		body := map[string]any{"cmd": "echo x", "commands": []any{"echo x"}}
		code, m := e.do(t, c.method, "/v1/sandboxes/"+id+"/"+c.path, body)
		d, _ := m["error"].(map[string]any)["details"].(map[string]any)
		if code != 400 || errCode(m) != "capability_not_supported" ||
			errMessage(m) != "Profile 'python-default' does not support capability: browser" || d["capability"] != "browser" {
			t.Errorf("%s: %d %v", c.path, code, m)
		}
	}
	if n := len(e.gull.requests()); n != 0 {
		t.Fatalf("gull called %d times", n)
	}
}

func TestMalformedInput(t *testing.T) {
	e := newEnv(t, nil)
	id := e.sandbox(t, "browser-python")
	base := "/v1/sandboxes/" + id + "/browser/"
	many := make([]string, 501)
	for i := range many {
		many[i] = "echo x"
	}
	for _, tc := range []struct {
		name, path string
		body       any
		typ        string
		loc        string
	}{
		{"no body", "exec", "", "missing", "body"},
		{"not JSON", "exec", "{", "json_invalid", "body.0"},
		{"not an object", "exec", "[]", "model_attributes_type", "body"},
		{"missing cmd", "exec", map[string]any{}, "missing", "body.cmd"},
		{"cmd not a string", "exec", map[string]any{"cmd": 5}, "string_type", "body.cmd"},
		{"blank cmd", "exec", map[string]any{"cmd": "  "}, "string_too_short", "body.cmd"},
		{"NUL in cmd", "exec", map[string]any{"cmd": "open \u0000"}, "string_pattern_mismatch", "body.cmd"},
		{"timeout 0", "exec", map[string]any{"cmd": "x", "timeout": 0}, "greater_than_equal", "body.timeout"},
		{"timeout 301", "exec", map[string]any{"cmd": "x", "timeout": 301}, "less_than_equal", "body.timeout"},
		{"learn not a bool", "exec", map[string]any{"cmd": "x", "learn": "maybe"}, "bool_type", "body.learn"},
		{"missing commands", "exec_batch", map[string]any{}, "missing", "body.commands"},
		{"commands not a list", "exec_batch", map[string]any{"commands": "open x"}, "list_type", "body.commands"},
		{"no commands", "exec_batch", map[string]any{"commands": []any{}}, "too_short", "body.commands"},
		{"command not a string", "exec_batch", map[string]any{"commands": []any{"x", 1}}, "string_type", "body.commands.1"},
		{"blank command", "exec_batch", map[string]any{"commands": []any{"x", ""}}, "string_too_short", "body.commands.1"},
		{"too many commands", "exec_batch", map[string]any{"commands": many}, "too_long", "body.commands"},
		{"batch timeout 601", "exec_batch", map[string]any{"commands": []any{"x"}, "timeout": 601}, "less_than_equal", "body.timeout"},
		{"skill timeout 601", "skills/k/run", map[string]any{"timeout": 601}, "less_than_equal", "body.timeout"},
		{"skill stop_on_error", "skills/k/run", map[string]any{"stop_on_error": []any{}}, "bool_type", "body.stop_on_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := e.do(t, "POST", base+tc.path, tc.body)
			detail, _ := m["detail"].([]any)
			if code != 422 || len(detail) == 0 {
				t.Fatalf("%d %v", code, m)
			}
			d := detail[0].(map[string]any)
			var loc []string
			for _, l := range d["loc"].([]any) {
				j, _ := json.Marshal(l)
				loc = append(loc, strings.Trim(string(j), `"`))
			}
			if d["type"] != tc.typ || strings.Join(loc, ".") != tc.loc || d["msg"] == "" {
				t.Fatalf("detail %v, want %s at %s", d, tc.typ, tc.loc)
			}
		})
	}
	if n := len(e.gull.requests()); n != 0 {
		t.Fatalf("gull called %d times for refused requests", n)
	}
}

func TestGullErrors(t *testing.T) {
	e := newEnv(t, nil)
	id := e.sandbox(t, "browser-python")
	path := "/v1/sandboxes/" + id + "/browser/exec"
	code, m := e.do(t, "POST", path, map[string]any{"cmd": "crash"})
	d, _ := m["error"].(map[string]any)["details"].(map[string]any)
	if code != 502 || errCode(m) != "ship_error" || errMessage(m) != "Gull request failed: 500" || d["detail"] != "chromium crashed" {
		t.Fatalf("gull 500: %d %v", code, m)
	}
	code, m = e.do(t, "POST", path, map[string]any{"cmd": "huge"})
	if code != 502 || errCode(m) != "ship_error" || !strings.Contains(errMessage(m), "too large") {
		t.Fatalf("huge answer: %d %v", code, m)
	}
	// Neither failure recorded history; the session survived them.
	list := e.must(t, 200, "GET", "/v1/sandboxes/"+id+"/history", nil)
	if list["total"] != 0.0 {
		t.Fatalf("history after failures: %v", list)
	}
	if r := e.must(t, 200, "POST", path, map[string]any{"cmd": "echo still here"}); r["output"] != "still here" {
		t.Fatalf("after failures: %v", r)
	}
	if n := e.drv.Creates.Load(); n != 2 {
		t.Fatalf("containers created: %d, want 2 (one session of ship + browser)", n)
	}
}

// The client maps transport failures as upstream does and marks them as no
// answer (so the capability layer re-checks the session).
func TestClientTimeoutAndDefaults(t *testing.T) {
	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/exec_batch" {
			_, _ = w.Write([]byte(`{"results":[{"cmd":"a","stdout":"x"},{"cmd":"b","exit_code":3}]}`))
			return
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer slow.Close()
	defer close(stop)
	c := browser.NewClient(browser.ClientConfig{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Exec(ctx, runtime.Target{Endpoint: slow.URL}, browser.ExecRequest{Cmd: "wait 600000", Timeout: 1})
	if !errs.Is(err, errs.Timeout) || !runtime.NoAnswer(err) || !strings.Contains(err.Error(), "Gull request timed out: /exec") {
		t.Fatalf("timeout: %v", err)
	}
	_, err = c.Exec(context.Background(), runtime.Target{Endpoint: "http://127.0.0.1:1"}, browser.ExecRequest{Cmd: "x", Timeout: 1})
	if !errs.Is(err, errs.ShipError) || !runtime.Unreachable(err) {
		t.Fatalf("refused: %v", err)
	}
	br, err := c.ExecBatch(context.Background(), runtime.Target{Endpoint: slow.URL}, browser.BatchRequest{Commands: []string{"a", "b", "c"}, Timeout: 5})
	if err != nil {
		t.Fatal(err)
	}
	if br.TotalSteps != 3 || br.CompletedSteps != 2 || br.Success || br.Results[0].ExitCode != -1 || br.Results[1].ExitCode != 3 ||
		br.Results[1].StepIndex != 1 {
		t.Fatalf("defaults: %+v", br)
	}
}

// With browser_service enabled, a profile without a browser container of its
// own sends its commands to the shared service: no container is started.
func TestSharedService(t *testing.T) {
	var shared *httptest.Server
	e := newEnv(t, func(c *config.Config) {
		p := *c.Profiles["python-default"]
		p.ID, p.Browser = "browser-shared", config.BrowserShared
		p.Capabilities = append([]string{"browser"}, p.Capabilities...)
		c.Profiles[p.ID] = &p
		c.ProfileOrder = append(c.ProfileOrder, p.ID)
		c.BrowserService.Enabled = true
	})
	shared = e.gull.srv
	e.cfg.BrowserService.Endpoint = shared.URL + "/"
	id := e.sandbox(t, "browser-shared")
	r := e.must(t, 200, "POST", "/v1/sandboxes/"+id+"/browser/exec", map[string]any{"cmd": "echo shared"})
	if r["output"] != "shared" || r["success"] != true {
		t.Fatalf("shared exec: %v", r)
	}
	reqs := e.gull.requests()
	sb, _ := e.st.SandboxByID(context.Background(), id)
	if b := reqs[0].Body; b["sandbox_id"] != id || b["cargo_id"] != sb.CargoID || reqs[0].Auth != "" {
		t.Fatalf("shared request: %+v", reqs[0])
	}
	r = e.must(t, 200, "POST", "/v1/sandboxes/"+id+"/browser/exec", map[string]any{"cmd": "crash"})
	if r["success"] != false || r["error"] != "Gull returned HTTP 500" {
		t.Fatalf("shared HTTP error: %v", r)
	}
	r = e.must(t, 200, "POST", "/v1/sandboxes/"+id+"/browser/exec_batch", map[string]any{"commands": []any{"echo 1", "fail", "echo 2"}})
	if r["completed_steps"] != 2.0 || r["total_steps"] != 3.0 || r["success"] != false {
		t.Fatalf("shared batch: %v", r)
	}
	if n := e.drv.Creates.Load(); n != 0 {
		t.Fatalf("shared mode started %d containers", n)
	}
	// browser-python runs its own browser: it still does, service or not.
	own := e.sandbox(t, "browser-python")
	e.must(t, 200, "POST", "/v1/sandboxes/"+own+"/browser/exec", map[string]any{"cmd": "echo own"})
	if n := e.drv.Creates.Load(); n != 2 {
		t.Fatalf("own browser: %d containers", n)
	}
	// Deleting the sandbox ends its session in the shared service.
	e.must(t, 204, "DELETE", "/v1/sandboxes/"+id, nil)
	reqs = e.gull.requests()
	if last := reqs[len(reqs)-1]; last.Path != "/sessions/"+id {
		t.Fatalf("delete did not end the shared session: %+v", last)
	}
}

// The history rows, trace blobs and skill lookups hold on PostgreSQL too
// (SHIPYARD_TEST_PG_DSN; make test sets it).
func TestOnPostgres(t *testing.T) {
	if storetest.PostgresDSN() == "" {
		t.Skip("set SHIPYARD_TEST_PG_DSN (make test does, from scripts/pg.sh)")
	}
	for name, fn := range map[string]func(*testing.T, *env){
		"exec history and traces": execHistoryAndTraces, "batch": batchStopOnError, "skill run": skillRun,
	} {
		t.Run(name, func(t *testing.T) { fn(t, newEnvOn(t, store.Postgres, storetest.FreshDSN(t, store.Postgres), nil)) })
	}
}
