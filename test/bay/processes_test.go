package bay_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/app"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/test/baytest"
)

// readUntil polls a process's output from offset until it contains want;
// returns everything read and the next offset.
func readUntil(t *testing.T, b *baytest.Bay, path string, offset int64, want string) (string, int64) {
	t.Helper()
	var got strings.Builder
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		o := b.Must(t, 200, baytest.Req{Method: "GET", Path: fmt.Sprintf("%s/output?offset=%d", path, offset)})
		if o["offset"].(float64) != float64(offset) || o["truncated"] != false {
			t.Fatalf("read from %d: %v", offset, o)
		}
		got.WriteString(o["output"].(string))
		offset = int64(o["next_offset"].(float64))
		if strings.Contains(got.String(), want) {
			return got.String(), offset
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %q", want, got.String())
		}
	}
}

// TestBackgroundProcessSurvivesBayRestart: a server started through Bay keeps
// running and keeps its output across a Bay restart; the client reads on
// from where it stopped, then stops it.
func TestBackgroundProcessSurvivesBayRestart(t *testing.T) {
	baytest.Skip(t)
	dir, inst := t.TempDir(), model.NewID("test")
	b1 := baytest.Start(t, baytest.Options{DataDir: dir, InstanceID: inst})
	id := b1.CreateSandbox(t, nil)
	sb := "/v1/sandboxes/" + id
	b1.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{"command": "mkdir site"}})

	p := b1.Must(t, 201, baytest.Req{Method: "POST", Path: sb + "/processes", Body: map[string]any{
		"command": "echo \"user $(id -u) in $PWD, $GREETING\"; exec python3 -u -m http.server 8000", "cwd": "site",
		"env": map[string]string{"GREETING": "hello"}}})
	pid, _ := p["process_id"].(string)
	if pid == "" || p["status"] != "running" || p["exit_code"] != nil || p["ended_at"] != nil || p["pid"].(float64) <= 0 || p["started_at"] == "" {
		t.Fatalf("start: %v", p)
	}
	path := sb + "/processes/" + pid
	out, off := readUntil(t, b1, path, 0, "Serving HTTP on")
	if !strings.HasPrefix(out, "user 1000 in /workspace/site, hello\n") {
		t.Fatalf("output %q", out)
	}
	b1.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{
		"command": "python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/before')\" || true"}})
	_, off = readUntil(t, b1, path, off, "GET /before")

	b1.Stop()
	b2 := baytest.Start(t, baytest.Options{DataDir: dir, InstanceID: inst})
	b2.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{
		"command": "python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/after')\" || true"}})
	more, _ := readUntil(t, b2, path, off, "GET /after")
	if strings.Contains(more, "/before") {
		t.Fatalf("re-read old output from offset %d: %q", off, more)
	}
	list := b2.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/processes"})["processes"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["process_id"] != pid || list[0].(map[string]any)["status"] != "running" {
		t.Fatalf("list after restart: %v", list)
	}
	w := b2.Must(t, 200, baytest.Req{Method: "POST", Path: path + "/wait", Body: map[string]any{"timeout": 0.5}})
	if w["timed_out"] != true || w["status"] != "running" {
		t.Fatalf("wait: %v", w)
	}
	s := b2.Must(t, 200, baytest.Req{Method: "POST", Path: path + "/signal", Body: map[string]any{"signal": "TERM"}})
	if s["status"] == "running" {
		s = b2.Must(t, 200, baytest.Req{Method: "POST", Path: path + "/wait", Body: map[string]any{"timeout": 10}})
	}
	if s["status"] != "killed" || s["exit_code"] != float64(-15) || s["ended_at"] == nil {
		t.Fatalf("after TERM: %v", s)
	}
	b2.Must(t, 204, baytest.Req{Method: "DELETE", Path: path})
	for _, r := range []baytest.Req{{Method: "GET", Path: path}, {Method: "GET", Path: path + "/output"}, {Method: "DELETE", Path: path},
		{Method: "POST", Path: path + "/signal", Body: map[string]any{"signal": "KILL"}}} {
		if got := b2.Do(t, r); got.Status != 404 || got.Code() != "process_not_found" {
			t.Fatalf("%s %s after delete: %d %s", r.Method, r.Path, got.Status, got.Body)
		}
	}
}

// TestBackgroundProcessAPI: output windows, limits and the errors of the routes.
func TestBackgroundProcessAPI(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	sb := "/v1/sandboxes/" + id

	// Before any session runs, there is nothing to list and nothing is started.
	if l := b.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/processes"}); len(l["processes"].([]any)) != 0 {
		t.Fatalf("list %v", l)
	}
	if r := b.Do(t, baytest.Req{Method: "GET", Path: sb + "/processes/abc123"}); r.Status != 404 || r.Code() != "process_not_found" {
		t.Fatalf("unknown before start: %d %s", r.Status, r.Body)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("a read started %d containers", n)
	}

	// 2 MiB of output through a 1 MiB buffer: the start is dropped and marked.
	p := b.Must(t, 201, baytest.Req{Method: "POST", Path: sb + "/processes", Body: map[string]any{
		"command": "head -c 2097152 /dev/zero | tr '\\0' a; echo; echo END"}})
	path := sb + "/processes/" + p["process_id"].(string)
	w := b.Must(t, 200, baytest.Req{Method: "POST", Path: path + "/wait", Body: map[string]any{"timeout": 30}})
	if w["status"] != "completed" || w["exit_code"] != float64(0) || w["timed_out"] != false {
		t.Fatalf("wait %v", w)
	}
	o := b.Must(t, 200, baytest.Req{Method: "GET", Path: path + "/output?offset=0&max_bytes=10"})
	if o["truncated"] != true || o["offset"].(float64) != float64(2097152+5-(1<<20)) || o["output"] != "aaaaaaaaaa" {
		t.Fatalf("truncated read: %v", o)
	}
	o = b.Must(t, 200, baytest.Req{Method: "GET", Path: path + "/output?offset=2097150&max_bytes=100000000"})
	if o["output"] != "aa\nEND\n" || o["next_offset"].(float64) != 2097157 || o["truncated"] != false || o["status"] != "completed" {
		t.Fatalf("tail read: %v", o)
	}
	o = b.Must(t, 200, baytest.Req{Method: "GET", Path: path + "/output?offset=1100000"})
	if n := len(o["output"].(string)); n != 64<<10 {
		t.Fatalf("default max_bytes read %d bytes", n)
	}

	for _, tt := range []struct {
		req    baytest.Req
		status int
		code   string
	}{
		{baytest.Req{Method: "POST", Path: sb + "/processes", Body: map[string]any{}}, 422, ""},
		{baytest.Req{Method: "POST", Path: sb + "/processes", Body: map[string]any{"command": "  "}}, 422, ""},
		{baytest.Req{Method: "POST", Path: sb + "/processes", Body: map[string]any{"command": "true", "env": map[string]any{"A-B": "x"}}}, 422, ""},
		{baytest.Req{Method: "POST", Path: sb + "/processes", Body: map[string]any{"command": "true", "env": map[string]any{"A": 1}}}, 422, ""},
		{baytest.Req{Method: "POST", Path: sb + "/processes", Body: map[string]any{"command": "true", "env": map[string]any{"A": "x\x00"}}}, 422, ""},
		{baytest.Req{Method: "POST", Path: sb + "/processes", Body: map[string]any{"command": "true", "cwd": "../etc"}}, 400, "invalid_path"},
		{baytest.Req{Method: "GET", Path: path + "/output?offset=-1"}, 422, ""},
		{baytest.Req{Method: "GET", Path: path + "/output?max_bytes=0"}, 422, ""},
		{baytest.Req{Method: "POST", Path: path + "/wait", Body: map[string]any{"timeout": 99999}}, 422, ""},
		{baytest.Req{Method: "POST", Path: path + "/signal", Body: map[string]any{"signal": "STOP"}}, 422, ""},
		{baytest.Req{Method: "POST", Path: path + "/signal", Body: map[string]any{}}, 422, ""},
		{baytest.Req{Method: "GET", Path: sb + "/processes/..%2Fetc"}, 404, "process_not_found"},
		{baytest.Req{Method: "GET", Path: sb + "/processes/" + strings.Repeat("a", 65)}, 404, "process_not_found"},
		{baytest.Req{Method: "GET", Path: "/v1/sandboxes/sandbox-nope/processes"}, 404, "not_found"},
		{baytest.Req{Method: "POST", Path: "/v1/sandboxes/sandbox-nope/processes", Body: map[string]any{"command": "true"}}, 404, "not_found"},
	} {
		r := b.Do(t, tt.req)
		if r.Status != tt.status || r.Code() != tt.code {
			t.Errorf("%s %s %v: %d %s", tt.req.Method, tt.req.Path, tt.req.Body, r.Status, r.Body)
		}
	}
	// A signal to a finished process changes nothing.
	if s := b.Must(t, 200, baytest.Req{Method: "POST", Path: path + "/signal", Body: map[string]any{"signal": "sigkill"}}); s["status"] != "completed" {
		t.Fatalf("signal to a finished process: %v", s)
	}
	// The process group goes with DELETE: a child in the background too.
	p = b.Must(t, 201, baytest.Req{Method: "POST", Path: sb + "/processes", Body: map[string]any{"command": "sleep 300 & sleep 300"}})
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: sb + "/processes/" + p["process_id"].(string)})
	ps := b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{"command": "sleep 0.5; for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^sleep 300' || true"}})
	if strings.TrimSpace(ps["output"].(string)) != "0" {
		t.Fatalf("sleeps left after DELETE: %v", ps)
	}
}

// TestIdleReclaimSparesBusySandboxes: a sandbox with a running background
// process is not reclaimed when idle (gc.idle_session.keep_busy, default
// true), and is once the process ends; with keep_busy off it is reclaimed.
func TestIdleReclaimSparesBusySandboxes(t *testing.T) {
	baytest.Skip(t)
	clk := newClock()
	b := baytest.Start(t, baytest.Options{App: app.Options{Now: clk.Now}})
	id := b.CreateSandbox(t, nil)
	p := b.Must(t, 201, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/processes", Body: map[string]any{"command": "sleep 600"}})
	clk.Add(31 * time.Minute)
	if res := gcRun(t, b, "idle_session"); cleaned(res) != 0 {
		t.Fatalf("reclaimed a sandbox with a running process: %v", res)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 1 {
		t.Fatalf("%d containers", n)
	}
	b.Must(t, http.StatusNoContent, baytest.Req{Method: "DELETE", Path: "/v1/sandboxes/" + id + "/processes/" + p["process_id"].(string)})
	clk.Add(31 * time.Minute)
	if res := gcRun(t, b, "idle_session"); cleaned(res) != 1 {
		t.Fatalf("idle sandbox without processes kept: %v", res)
	}

	clk2 := newClock()
	b2 := baytest.Start(t, baytest.Options{App: app.Options{Now: clk2.Now}, Env: map[string]string{"BAY_GC__IDLE_SESSION__KEEP_BUSY": "false"}})
	id2 := b2.CreateSandbox(t, nil)
	b2.Must(t, 201, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id2 + "/processes", Body: map[string]any{"command": "sleep 600"}})
	clk2.Add(31 * time.Minute)
	if res := gcRun(t, b2, "idle_session"); cleaned(res) != 1 {
		t.Fatalf("keep_busy=false kept the sandbox: %v", res)
	}
}
