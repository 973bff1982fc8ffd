package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/shipyard/shipyard/internal/logctx"
	"github.com/shipyard/shipyard/internal/ship/files"
	"github.com/shipyard/shipyard/internal/ship/kernel"
	"github.com/shipyard/shipyard/internal/ship/process"
	"github.com/shipyard/shipyard/internal/ship/sweep"
	"github.com/shipyard/shipyard/internal/ship/workspace"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeKernel answers Execute from the code text; it is only for HTTP shapes
// (the container tests use the real kernel).
type fakeKernel struct {
	mu     sync.Mutex
	status string
	state  kernel.StartState // State's answer; zero: derived from status
}

func (k *fakeKernel) State() kernel.StartState {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state.State != "" {
		return k.state
	}
	if k.status == kernel.StatusAlive {
		return kernel.StartState{State: kernel.StateReady}
	}
	return kernel.StartState{State: kernel.StateNotStarted}
}

func (k *fakeKernel) setState(st kernel.StartState) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.state = st
}

func (k *fakeKernel) Start(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.status = kernel.StatusAlive
	return nil
}

func (k *fakeKernel) Execute(_ context.Context, req kernel.Request) (kernel.Result, error) {
	k.mu.Lock()
	k.status = kernel.StatusAlive // the real one starts a kernel on demand
	k.mu.Unlock()
	n := 1
	switch {
	case req.Code == "panic":
		panic("boom")
	case strings.HasPrefix(req.Code, "sleep"):
		return kernel.Result{ExecutionCount: &n, Text: "partial", Error: "timed out", TimedOut: true}, nil
	case req.Code == "events":
		if req.OnOutput != nil {
			req.OnOutput(kernel.Output{Type: kernel.OutputStdout, Text: "a\n"})
			req.OnOutput(kernel.Output{Type: kernel.OutputDisplay, Data: map[string]json.RawMessage{"image/png": json.RawMessage(`"iVBOR"`)}})
			req.OnOutput(kernel.Output{Type: kernel.OutputStderr, Text: "w\n"})
			req.OnOutput(kernel.Output{Type: kernel.OutputException, Ename: "ValueError", Evalue: "x", Traceback: []string{"tb"}})
		}
		return kernel.Result{ExecutionCount: &n, Text: "a\nw", Error: "tb"}, nil
	case req.Code == "plot":
		return kernel.Result{Success: true, ExecutionCount: &n, Images: []map[string]string{{"image/png": "iVBOR"}},
			Data: map[string][]string{"text/html": {"<b>x</b>"}}}, nil
	}
	return kernel.Result{Success: true, ExecutionCount: &n, Text: req.Code}, nil
}

func (k *fakeKernel) Status() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.status
}

func (k *fakeKernel) Restart(context.Context) error { return nil }

func (k *fakeKernel) Shutdown(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.status = kernel.StatusNotStarted
	return nil
}

type env struct {
	srv   *Server
	url   string
	ws    string
	token string
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func setup(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	root, err := workspace.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root.Dir(), "etc-link")); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(logctx.Handler{Handler: slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})})
	runner := process.New(process.Config{Env: []string{"PATH=/usr/bin:/bin", "HOME=" + root.Dir()}, Logger: logger})
	t.Cleanup(func() { _ = runner.Shutdown(context.Background()) })
	opt := Options{
		Workspace: root, WorkspaceName: "/workspace", Files: files.New(files.Config{Root: root}), Processes: runner,
		Kernel: &fakeKernel{status: kernel.StatusAlive}, Logger: logger, Terminal: http.NotFoundHandler(), Token: "s3cret", MaxBodyBytes: 1 << 20, MaxUploadBytes: 8 << 20,
	}
	if mod != nil {
		mod(&opt)
	}
	s := New(opt)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &env{srv: s, url: ts.URL, ws: root.Dir(), token: "s3cret", logs: logs}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (e *env) do(t *testing.T, method, path string, body io.Reader, hdr map[string]string) resp {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	checkAnswer(t, req, res, b) // every answer matches Ship's OpenAPI document
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) post(t *testing.T, path, body string) resp {
	return e.do(t, http.MethodPost, path, strings.NewReader(body), nil)
}

func TestAuthAndRouting(t *testing.T) {
	e := setup(t, nil)
	tests := []struct {
		name, method, path, auth string
		status                   int
		body                     string
	}{
		{"health open", "GET", "/health", "-", 200, `"healthy"`},
		{"meta needs token", "GET", "/meta", "-", 401, `"detail":"Not authenticated"`},
		{"meta wrong token", "GET", "/meta", "Bearer nope", 401, `"detail":"Invalid token"`},
		{"meta", "GET", "/meta", "", 200, `"terminal"`},
		{"root needs token", "GET", "/", "-", 401, `detail`},
		{"no token", "GET", "/stat", "-", 401, `"detail":"Not authenticated"`},
		{"wrong token", "GET", "/stat", "Bearer nope", 401, `"detail":"Invalid token"`},
		{"wrong scheme", "GET", "/stat", "Basic s3cret", 401, `detail`},
		{"metrics needs token", "GET", "/metrics", "-", 401, `detail`},
		{"root", "GET", "/", "", 200, `"Ship API is running"`},
		{"stat", "GET", "/stat", "", 200, `"AstrBot Team"`},
		{"unknown route", "GET", "/nope", "", 404, `{"detail":"Not Found"}`},
		{"wrong method", "GET", "/fs/read_file", "", 405, `{"detail":"Method Not Allowed"}`},
		{"metrics", "GET", "/metrics", "", 200, `ship_background_processes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			switch tt.auth {
			case "-":
				hdr["Authorization"] = ""
			case "":
			default:
				hdr["Authorization"] = tt.auth
			}
			r := e.do(t, tt.method, tt.path, nil, hdr)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.body) {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Fatal("no request id")
			}
		})
	}
}

// TestTokenHeader: the token passes in X-Ship-Token where a proxy (the
// Kubernetes API server's) takes Authorization for itself.
func TestTokenHeader(t *testing.T) {
	e := setup(t, nil)
	tests := []struct {
		name, token string
		status      int
		body        string
	}{
		{"right", e.token, 200, `"AstrBot Team"`},
		{"wrong", "nope", 401, `"detail":"Invalid token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "GET", "/stat", nil, map[string]string{"Authorization": "", TokenHeader: tt.token})
			if r.status != tt.status || !strings.Contains(string(r.body), tt.body) {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
}

func TestHealthReportsProcessPressure(t *testing.T) {
	cur, max := 40, 256
	e := setup(t, func(o *Options) {
		o.Pressure = func() sweep.Stats { return sweep.Stats{Processes: 12, Zombies: 1, PidsCurrent: &cur, PidsMax: &max} }
	})
	r := e.do(t, "GET", "/health", nil, map[string]string{"Authorization": ""})
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	want := `{"status":"healthy","version":"` + Version + `","kernel":"ready","processes_running":0,"processes":12,"zombies":1,"pids_current":40,"pids_max":256}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("health %s\nwant   %s", got, want)
	}
	// Without Pressure the answer is the upstream one plus the kernel field.
	e = setup(t, nil)
	if r := e.do(t, "GET", "/health", nil, nil); strings.TrimSpace(string(r.body)) != `{"status":"healthy","version":"`+Version+`","kernel":"ready","processes_running":0}` {
		t.Errorf("health %s", r.body)
	}
	// Without a kernel at all (not Ship's wiring), no kernel field.
	e = setup(t, func(o *Options) { o.Kernel = nil })
	if r := e.do(t, "GET", "/health", nil, nil); strings.TrimSpace(string(r.body)) != `{"status":"healthy","version":"`+Version+`","processes_running":0}` {
		t.Errorf("health %s", r.body)
	}
}

// TestHealthKernelState: /health is 200 whatever the kernel does (starting,
// failed, shut down): Ship serves shell and files meanwhile. The reason of a
// failed start goes to callers with the token only, bounded.
func TestHealthKernelState(t *testing.T) {
	k := &fakeKernel{}
	e := setup(t, func(o *Options) { o.Kernel = k })
	long := "kernel: process exited during start (exit status 3); kernel output: " + strings.Repeat("é", 2000)
	tests := []struct {
		name  string
		state kernel.StartState
		auth  string // "-": no token
		want  string
	}{
		{"starting", kernel.StartState{State: kernel.StateStarting}, "-", `{"status":"healthy","version":"0.4.0","kernel":"starting","processes_running":0}`},
		{"ready", kernel.StartState{State: kernel.StateReady}, "", `{"status":"healthy","version":"0.4.0","kernel":"ready","processes_running":0}`},
		{"not started", kernel.StartState{State: kernel.StateNotStarted}, "", `{"status":"healthy","version":"0.4.0","kernel":"not_started","processes_running":0}`},
		{"dead", kernel.StartState{State: kernel.StateDead}, "", `{"status":"healthy","version":"0.4.0","kernel":"dead","processes_running":0}`},
		{"failed, token", kernel.StartState{State: kernel.StateFailed, Error: `kernel: launch "python3": no such file`}, "",
			`{"status":"healthy","version":"0.4.0","kernel":"failed","kernel_error":"kernel: launch \"python3\": no such file","processes_running":0}`},
		{"failed, no token", kernel.StartState{State: kernel.StateFailed, Error: "secret detail"}, "-",
			`{"status":"healthy","version":"0.4.0","kernel":"failed","processes_running":0}`},
		{"failed, wrong token", kernel.StartState{State: kernel.StateFailed, Error: "secret detail"}, "Bearer nope",
			`{"status":"healthy","version":"0.4.0","kernel":"failed","processes_running":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k.setState(tt.state)
			hdr := map[string]string{}
			if tt.auth == "-" {
				hdr["Authorization"] = ""
			} else if tt.auth != "" {
				hdr["Authorization"] = tt.auth
			}
			r := e.do(t, "GET", "/health", nil, hdr)
			if r.status != 200 || strings.TrimSpace(string(r.body)) != tt.want {
				t.Fatalf("%d %s\nwant %s", r.status, r.body, tt.want)
			}
		})
	}
	t.Run("long error bounded", func(t *testing.T) {
		k.setState(kernel.StartState{State: kernel.StateFailed, Error: long})
		var h healthBody
		r := e.do(t, "GET", "/health", nil, nil)
		if err := json.Unmarshal(r.body, &h); err != nil {
			t.Fatal(err)
		}
		if len(h.KernelError) > maxHealthError+len("…") || !strings.HasPrefix(h.KernelError, "kernel: process exited") ||
			!strings.HasSuffix(h.KernelError, "é…") || !utf8.ValidString(h.KernelError) {
			t.Fatalf("kernel_error %d bytes: %q", len(h.KernelError), h.KernelError)
		}
	})
	// Shell does not wait for the kernel.
	k.setState(kernel.StartState{State: kernel.StateStarting})
	if r := e.post(t, "/shell/exec", `{"command":"echo hi"}`); r.status != 200 || !strings.Contains(string(r.body), `"stdout":"hi"`) {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestRequestIDLogged(t *testing.T) {
	e := setup(t, nil)
	r := e.do(t, "POST", "/shell/exec", strings.NewReader(`{"command":"true"}`), map[string]string{"X-Request-Id": "req-abc-123"})
	if r.status != 200 || r.header.Get("X-Request-Id") != "req-abc-123" {
		t.Fatalf("%d %v", r.status, r.header)
	}
	var lines int
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		if strings.Contains(l, `"request_id":"req-abc-123"`) {
			lines++
		}
		if strings.Contains(l, "s3cret") {
			t.Fatalf("token in log: %s", l)
		}
	}
	if lines == 0 {
		t.Fatalf("request id not logged:\n%s", e.logs.String())
	}
}

func TestBadBodies(t *testing.T) {
	e := setup(t, nil)
	tests := []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"malformed", "/fs/read_file", `{"path":`, 422, `"json_invalid"`},
		{"not an object", "/fs/read_file", `[1]`, 422, `model_attributes_type`},
		{"missing field", "/fs/write_file", `{"path":"a"}`, 422, `"loc":["body","content"]`},
		{"null field", "/ipython/exec", `{"code":null}`, 422, `"missing"`},
		{"wrong type", "/shell/exec", `{"command":1}`, 422, `"string_type"`},
		{"wrong timeout type", "/shell/exec", `{"command":"x","timeout":"10"}`, 422, `"float64_type"`},
		{"too large", "/fs/write_file", `{"path":"a","content":"` + strings.Repeat("x", 2<<20) + `"}`, 413, `too large`},
		{"bad env name", "/shell/exec", `{"command":"true","env":{"A B":"x"}}`, 400, `not a valid identifier`},
		{"nul env value", "/shell/exec", `{"command":"true","env":{"A":"x\u0000"}}`, 400, `NUL`},
		{"empty body", "/fs/read_file", ``, 422, `"missing"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.post(t, tt.path, tt.body)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.want) {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
}

func TestFiles(t *testing.T) {
	e := setup(t, nil)
	steps := []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"write", "/fs/write_file", `{"path":"d/a.txt","content":"hello <world>\n"}`, 200, `"path":"` + "WS" + `/d/a.txt","size":14`},
		{"append", "/fs/write_file", `{"path":"d/a.txt","content":"more\n","mode":"a"}`, 200, `"size":19`},
		{"read", "/fs/read_file", `{"path":"d/a.txt"}`, 200, `"content":"hello <world>\nmore\n"`},
		{"read lines", "/fs/read_file", `{"path":"d/a.txt","offset":2,"limit":1}`, 200, `"content":"more\n"`},
		{"edit", "/fs/edit_file", `{"path":"d/a.txt","old_string":"more","new_string":"less"}`, 200, `"replacements":1`},
		{"edit missing string", "/fs/edit_file", `{"path":"d/a.txt","old_string":"zzz","new_string":"y"}`, 400, `not found`},
		{"create", "/fs/create_file", `{"path":"x.sh","content":"#!/bin/sh","mode":493}`, 200, `"File created: x.sh"`},
		{"list", "/fs/list_dir", `{}`, 200, `"current_path":"WS"`},
		{"list missing", "/fs/list_dir", `{"path":"nope"}`, 404, `Directory not found`},
		{"read missing", "/fs/read_file", `{"path":"nope.txt"}`, 404, `"detail":"File not found: nope.txt"`},
		{"read dir", "/fs/read_file", `{"path":"d"}`, 400, `Path is not a file`},
		{"traversal", "/fs/read_file", `{"path":"../../etc/passwd"}`, 403, `"detail":"Access denied: path must be within workspace /workspace"`},
		{"absolute", "/fs/read_file", `{"path":"/etc/passwd"}`, 403, `Access denied`},
		{"symlink out", "/fs/read_file", `{"path":"etc-link/passwd"}`, 403, `Access denied`},
		{"write via symlink", "/fs/write_file", `{"path":"etc-link/x","content":""}`, 403, `Access denied`},
		{"nul path", "/fs/read_file", `{"path":"a\u0000b"}`, 400, `Invalid path`},
		{"delete missing", "/fs/delete_file", `{"path":"nope"}`, 404, `Path not found: nope`},
		{"delete dir", "/fs/delete_file", `{"path":"d"}`, 200, `"Directory deleted: d"`},
		{"delete link only", "/fs/delete_file", `{"path":"etc-link"}`, 200, `"File deleted: etc-link"`},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := e.post(t, st.path, st.body)
			want := strings.ReplaceAll(st.want, "WS", e.ws)
			if r.status != st.status || !strings.Contains(string(r.body), want) {
				t.Fatalf("%d %s (want %s)", r.status, r.body, want)
			}
		})
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatal("symlink delete removed the target")
	}
}

func multipartBody(t *testing.T, fields [][2]string) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		if f[0] == "file" {
			fw, err := mw.CreateFormFile("file", "file")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = fw.Write([]byte(f[1]))
		} else if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	_ = mw.Close()
	return &buf, mw.FormDataContentType()
}

func TestUploadDownload(t *testing.T) {
	e := setup(t, nil)
	tests := []struct {
		name   string
		fields [][2]string
		status int
		want   string
	}{
		{"path first", [][2]string{{"file_path", "up/a.bin"}, {"file", "AAAA"}}, 200, `"size":4`},
		{"file first", [][2]string{{"file", "BBBBBB"}, {"file_path", "up/b.bin"}}, 200, `"size":6`},
		{"missing path", [][2]string{{"file", "x"}}, 422, `file_path`},
		{"missing file", [][2]string{{"file_path", "x"}}, 422, `"file"`},
		{"outside", [][2]string{{"file_path", "/etc/x"}, {"file", "x"}}, 403, `Access denied`},
		{"outside, file first", [][2]string{{"file", "x"}, {"file_path", "../x"}}, 403, `Access denied`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ctype := multipartBody(t, tt.fields)
			r := e.do(t, "POST", "/fs/upload", body, map[string]string{"Content-Type": ctype})
			if r.status != tt.status || !strings.Contains(string(r.body), tt.want) {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	left, _ := filepath.Glob(e.ws + "/.ship-upload-*")
	if len(left) != 0 {
		t.Fatalf("staging files left: %v", left)
	}
	big, ctype := multipartBody(t, [][2]string{{"file_path", "big"}, {"file", strings.Repeat("x", 9<<20)}})
	if r := e.do(t, "POST", "/fs/upload", big, map[string]string{"Content-Type": ctype}); r.status != 413 {
		t.Fatalf("oversize upload: %d %s", r.status, r.body)
	}
	r := e.do(t, "GET", "/fs/download?file_path=up/b.bin", nil, nil)
	if r.status != 200 || string(r.body) != "BBBBBB" || r.header.Get("Content-Disposition") != `attachment; filename=b.bin` ||
		r.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("download %d %v %q", r.status, r.header, r.body)
	}
	for path, status := range map[string]int{"nope": 404, "up": 400, "../../etc/passwd": 403, "": 422} {
		if r := e.do(t, "GET", "/fs/download?file_path="+path, nil, nil); r.status != status {
			t.Errorf("download %q: %d %s", path, r.status, r.body)
		}
	}
}

func TestShell(t *testing.T) {
	e := setup(t, nil)
	if err := os.Mkdir(filepath.Join(e.ws, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body string
		want       []string
	}{
		{"echo", `{"command":"echo hi; echo err >&2"}`, []string{`"success":true`, `"return_code":0`, `"stdout":"hi"`, `"stderr":"err"`, `"process_id":null`, `"error":null`}},
		{"exit code", `{"command":"exit 4"}`, []string{`"success":false`, `"return_code":4`}},
		{"cwd", `{"command":"pwd","cwd":"sub"}`, []string{`"stdout":"` + e.ws + `/sub"`}},
		{"cwd outside", `{"command":"pwd","cwd":"/etc"}`, []string{`"success":false`, `"return_code":-1`, `Access denied`}},
		{"env", `{"command":"echo $X","env":{"X":"a:b"}}`, []string{`"stdout":"a:b"`}},
		{"timeout", `{"command":"echo part; sleep 20","timeout":0.5}`, []string{`"return_code":-1`, `"stdout":"part"`,
			`"error":"Command timed out after 0.5 seconds"`, `"timed_out":true`}},
		{"no shell", `{"command":"echo 'a  b'","shell":false}`, []string{`"stdout":"a  b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.post(t, "/shell/exec", tt.body)
			for _, w := range tt.want {
				if r.status != 200 || !strings.Contains(string(r.body), w) {
					t.Fatalf("%d %s; want %s", r.status, r.body, w)
				}
			}
		})
	}
}

func TestBackgroundRoutes(t *testing.T) {
	e := setup(t, nil)
	r := e.post(t, "/shell/exec", `{"command":"echo started; sleep 30","background":true}`)
	m := r.json(t)
	id, _ := m["process_id"].(string)
	if r.status != 200 || len(id) != 8 || m["success"] != true {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/shell/processes", nil, nil); !strings.Contains(string(r.body), `"process_id":"`+id+`"`) ||
		!strings.Contains(string(r.body), `"status":"running"`) {
		t.Fatalf("list %s", r.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := e.do(t, "GET", "/shell/processes/"+id, nil, nil)
		if strings.Contains(string(r.body), `"stdout":"started\n"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("output %s", r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := e.post(t, "/shell/processes/"+id+"/wait?timeout=0.2", ``); !strings.Contains(string(r.body), `"status":"running"`) {
		t.Fatalf("wait %s", r.body)
	}
	if r := e.post(t, "/shell/processes/"+id+"/kill", ``); !strings.Contains(string(r.body), `"status":"killed"`) {
		t.Fatalf("kill %s", r.body)
	}
	if r := e.do(t, "GET", "/shell/processes/ffffffff", nil, nil); r.status != 404 {
		t.Fatalf("missing %d", r.status)
	}
	if r := e.post(t, "/shell/processes/"+id+"/wait?timeout=x", ``); r.status != 422 {
		t.Fatalf("bad timeout %d", r.status)
	}
	r = e.do(t, "GET", "/metrics", nil, nil)
	if !strings.Contains(string(r.body), `ship_http_requests_total{code="200",method="POST",route="POST /shell/exec"}`) ||
		!strings.Contains(string(r.body), "ship_background_processes 0") {
		t.Fatalf("metrics:\n%s", r.body)
	}
}

func TestPython(t *testing.T) {
	e := setup(t, nil)
	if r := e.post(t, "/ipython/exec", `{"code":"1+1"}`); r.status != 200 || string(r.body) != `{"error":null,"execution_count":1,"kernel_restarted":false,"notice":null,"output":{"images":[],"text":"1+1"},"success":true,"timed_out":false,"truncated":false}`+"\n" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"plot", "POST", "/ipython/exec", `{"code":"plot"}`, 200, `"output":{"images":[{"image/png":"iVBOR"}],"text":"","text/html":["<b>x</b>"]}`},
		{"timeout", "POST", "/ipython/exec", `{"code":"sleep","timeout":2}`, 200, `"timed_out":true`},
		{"status", "GET", "/ipython/kernel/status", ``, 200, `{"has_kernel":true,"status":"alive","workspace":"/workspace"}`},
		{"restart", "POST", "/ipython/kernel/restart", ``, 200, `"Kernel restarted successfully"`},
		{"shutdown", "DELETE", "/ipython/kernel", ``, 200, `"Kernel shutdown successfully"`},
		{"shutdown again", "DELETE", "/ipython/kernel", ``, 404, `detail`},
		{"status after", "GET", "/ipython/kernel/status", ``, 200, `"has_kernel":false`},
		{"exec starts it", "POST", "/ipython/exec", `{"code":"x"}`, 200, `"success":true`},
		{"panic", "POST", "/ipython/exec", `{"code":"panic"}`, 500, `{"detail":"Internal Server Error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, strings.NewReader(tt.body), nil)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.want) {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
}

func TestLoadSkills(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"b/SKILL.md": "---\nname: \"beta\"\ndescription: 'Does: things'\n---\n# body\nname: ignored\n",
		"a/SKILL.md": "no front matter",
		"c/other":    "x",
	} {
		p := filepath.Join(dir, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := LoadSkills(dir)
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "beta" || got[1].Description != "Does: things" ||
		got[1].Path != filepath.Join(dir, "b/SKILL.md") {
		t.Fatalf("%+v", got)
	}
}
