package bay_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shipyard/shipyard/test/baytest"
)

// files is the filesystem route of a sandbox.
func files(id, path string) string {
	return "/v1/sandboxes/" + id + "/filesystem/files?path=" + url.QueryEscape(path)
}

// Finding 7: what Ship refuses as the caller's mistake reaches the client as
// the matching 4xx with a clear code, and the (healthy) container is kept.
func TestShipClientErrorsAreClientErrorsE2E(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	r := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec", Body: map[string]any{
		"command": `ln -s /etc/passwd out && mkdir d && printf '\xff\xfe\x00' > bin && echo ok`}})
	if r["output"] != "ok" {
		t.Fatalf("setup: %v", r)
	}
	before := containersOf(t, "bay.sandbox_id="+id)
	long := strings.Repeat("n", 5000)
	cases := []struct {
		name   string
		req    baytest.Req
		status int
		code   string
	}{
		{"symlink out of the workspace", baytest.Req{Method: "GET", Path: files(id, "out")}, 403, "forbidden"},
		{"write through it", baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files",
			Body: map[string]any{"path": "out", "content": "x"}}, 403, "forbidden"},
		{"download through it", baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id + "/filesystem/download?path=out"}, 403, "forbidden"},
		{"directory read as a file", baytest.Req{Method: "GET", Path: files(id, "d")}, 400, "validation_error"},
		{"directory downloaded", baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id + "/filesystem/download?path=d"}, 400, "validation_error"},
		{"non-utf-8 read as text", baytest.Req{Method: "GET", Path: files(id, "bin")}, 400, "validation_error"},
		{"a file listed as a directory", baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id + "/filesystem/directories?path=bin"}, 400, "validation_error"},
		{"deleting the workspace", baytest.Req{Method: "DELETE", Path: files(id, ".")}, 400, "validation_error"},
		{"5,000-character name read", baytest.Req{Method: "GET", Path: files(id, long)}, 400, "invalid_path"},
		{"5,000-character name written", baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files",
			Body: map[string]any{"path": long, "content": "x"}}, 400, "invalid_path"},
		{"missing file", baytest.Req{Method: "GET", Path: files(id, "nope")}, 404, "file_not_found"},
		{"missing file deleted", baytest.Req{Method: "DELETE", Path: files(id, "nope")}, 404, "file_not_found"},
		{"missing download", baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id + "/filesystem/download?path=nope"}, 404, "file_not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := b.Do(t, tc.req)
			if resp.Status != tc.status || (tc.code != "" && resp.Code() != tc.code) {
				t.Fatalf("%d %s, want %d %s: %s", resp.Status, resp.Code(), tc.status, tc.code, resp.Body)
			}
			if resp.Code() == "" {
				t.Fatalf("no JSON error: %s", resp.Body)
			}
		})
	}
	if r := b.Python(t, id, "1+1"); r["output"] != "2" {
		t.Fatalf("after the client errors: %v", r)
	}
	after := containersOf(t, "bay.sandbox_id="+id)
	if len(after) != 1 || after[0].ID != before[0].ID {
		t.Fatal("a healthy container was replaced after client errors")
	}
}

// shipPid is Python that finds Ship's pid (the kernel is Ship's child).
const stopShip = `import os, signal, threading
pid = os.getppid()
with open(f"/proc/{pid}/comm") as f: assert f.read().strip() == "ship"
threading.Timer(0.5, os.kill, (pid, signal.SIGSTOP)).start()
"armed"`

// Finding 6: user code can SIGSTOP Ship (same uid). Bay notices, replaces
// the session (files stay) and stops reporting it ready.
func TestSIGSTOPpedShipIsReplaced(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files", Body: map[string]any{"path": "keep", "content": "k"}})

	// A call running when Ship stops is given up on by the /health watchdog.
	if r := b.Python(t, id, stopShip); r["output"] != "'armed'" {
		t.Fatalf("arming: %v", r)
	}
	stoppedID := containersOf(t, "bay.sandbox_id="+id)[0].ID
	time.Sleep(time.Second)
	start := time.Now()
	resp := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "1+1"}})
	t.Logf("call to a SIGSTOPped Ship: %d %s after %v", resp.Status, resp.Code(), time.Since(start).Round(time.Millisecond))
	// Either the call reached the stopped Ship and is given up on (502), or
	// Bay's last check of the session was old enough that it probed first and
	// ran the call on a replacement (200): which one depends on timing alone.
	switch {
	case resp.Status == http.StatusBadGateway && strings.Contains(string(resp.Body), "stopped responding"):
	case resp.Status == http.StatusOK && resp.JSON()["output"] == "2":
	default:
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	if now := containersOf(t, "bay.sandbox_id="+id); len(now) != 1 || now[0].ID == stoppedID {
		t.Fatalf("the stopped container is still the session's: %v", now)
	}
	if r := b.Python(t, id, "1+1"); r["output"] != "2" {
		t.Fatalf("after recovery: %v", r)
	}
	if f := b.Must(t, 200, baytest.Req{Method: "GET", Path: files(id, "keep")}); f["content"] != "k" {
		t.Fatalf("workspace lost: %v", f)
	}

	// Stopped while idle: status says so once the last check is stale, and the
	// next call replaces the session transparently.
	if r := b.Python(t, id, stopShip); r["output"] != "'armed'" {
		t.Fatalf("arming: %v", r)
	}
	time.Sleep(6 * time.Second) // past the probe interval (5 s)
	if st := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id})["status"]; st != "failed" {
		t.Fatalf("a SIGSTOPped sandbox reported %v", st)
	}
	start = time.Now()
	if r := b.Python(t, id, "1+1"); r["output"] != "2" {
		t.Fatalf("after an idle SIGSTOP: %v", r)
	}
	t.Logf("first call after an idle SIGSTOP succeeded in %v", time.Since(start).Round(time.Millisecond))
	if st := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id})["status"]; st != "ready" {
		t.Fatalf("after recovery: %v", st)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 1 {
		t.Fatalf("%d containers", n)
	}
}

// A long cell is not a wedged runtime: no restart while it runs.
func TestLongCellIsNotRestarted(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	b.Python(t, id, "x = 41")
	before := containersOf(t, "bay.sandbox_id="+id)
	r := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec",
		Body: map[string]any{"code": "import time\nfor _ in range(120): sum(range(100_000)); time.sleep(0.1)\nx + 1", "timeout": 60}})
	if r["output"] != "42" {
		t.Fatalf("long cell: %v", r)
	}
	if after := containersOf(t, "bay.sandbox_id="+id); after[0].ID != before[0].ID {
		t.Fatal("restarted during a long cell")
	}
}

// Finding 9: after docker kill the next call rebuilds at once (the engine is
// asked, no long connect timeout), and so does the next terminal.
func TestRecoveryAfterDockerKill(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	kill := func() {
		t.Helper()
		list := containersOf(t, "bay.sandbox_id="+id)
		if len(list) != 1 {
			t.Fatalf("%d containers", len(list))
		}
		if err := baytest.Docker(t).ContainerKill(context.Background(), list[0].ID, "KILL"); err != nil {
			t.Fatal(err)
		}
	}
	timed := func() time.Duration {
		t.Helper()
		start := time.Now()
		if r := b.Python(t, id, "1+1"); r["output"] != "2" {
			t.Fatalf("1+1: %v", r)
		}
		return time.Since(start)
	}
	for i := range 3 {
		// A cold start of the same sandbox, measured now: the host's load
		// varies, so recovery is compared with it rather than a fixed time.
		b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/stop"})
		cold := timed()
		kill()
		d := timed()
		t.Logf("round %d: docker kill → next 1+1 OK in %v (cold start %v)", i, d.Round(time.Millisecond), cold.Round(time.Millisecond))
		if d > cold+5*time.Second {
			t.Fatalf("recovery took %v, a cold start %v", d, cold)
		}
	}
	b.Python(t, id, "1+1")
	kill()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.URL, "http")+"/v1/sandboxes/"+id+"/terminal",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + baytest.APIKey}}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("terminal after kill: %d %v", status, err)
	}
	defer c.CloseNow()
	t.Logf("terminal after kill opened in %v", time.Since(start).Round(time.Millisecond))
	if err := c.Write(ctx, websocket.MessageText, []byte("echo hi-$((40+2))\n")); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for !strings.Contains(got.String(), "hi-42") {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("terminal: %v (got %q)", err, got.String())
		}
		got.Write(data)
	}
}

// Pid exhaustion inside the sandbox never leaves calls hanging: each call
// answers within its bounds, and the sandbox works again.
func TestPidExhaustionDoesNotHang(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	b.Python(t, id, "1+1")
	start := time.Now()
	resp := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec", Body: map[string]any{
		"command": "for i in $(seq 400); do setsid sleep 600 >/dev/null 2>&1 & done; echo spawned", "timeout": 30}})
	t.Logf("exhausting pids: %d after %v", resp.Status, time.Since(start).Round(time.Millisecond))
	deadline := time.Now().Add(90 * time.Second)
	for {
		start := time.Now()
		resp := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec",
			Body: map[string]any{"code": "1+1", "timeout": 10}})
		d := time.Since(start)
		t.Logf("1+1: %d %s in %v", resp.Status, resp.Code(), d.Round(time.Millisecond))
		if d > 40*time.Second {
			t.Fatalf("a call hung for %v", d)
		}
		if resp.Status == 200 && resp.JSON()["output"] == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sandbox did not recover from pid exhaustion")
		}
		time.Sleep(time.Second)
	}
}
