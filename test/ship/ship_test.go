package shiptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if os.Getenv("SHIPYARD_E2E") == "1" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := Sweep(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "sweep:", err)
			code = 1
		}
		cancel()
	}
	os.Exit(code)
}

func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("SHIPYARD_E2E") != "1" {
		t.Skip("container test: set SHIPYARD_E2E=1 (needs Docker and the ship:latest image)")
	}
}

type pyResult struct {
	Success         bool                `json:"success"`
	ExecutionCount  *int                `json:"execution_count"`
	Output          map[string]any      `json:"output"`
	Error           *string             `json:"error"`
	TimedOut        bool                `json:"timed_out"`
	KernelRestarted bool                `json:"kernel_restarted"`
	Images          []map[string]string `json:"-"`
}

func (r pyResult) text() string { s, _ := r.Output["text"].(string); return s }

type shResult struct {
	Success    bool    `json:"success"`
	ReturnCode int     `json:"return_code"`
	Stdout     string  `json:"stdout"`
	Stderr     string  `json:"stderr"`
	Pid        *int    `json:"pid"`
	ProcessID  *string `json:"process_id"`
	Error      *string `json:"error"`
	TimedOut   bool    `json:"timed_out"`
}

type suite struct {
	t   *testing.T
	ctx context.Context
	c   *Container
	cl  *Client
}

func (s *suite) py(t *testing.T, code string, timeout float64) pyResult {
	t.Helper()
	var r pyResult
	if err := s.cl.JSON(s.ctx, "/ipython/exec", map[string]any{"code": code, "timeout": timeout}, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *suite) sh(t *testing.T, body map[string]any) shResult {
	t.Helper()
	var r shResult
	if err := s.cl.JSON(s.ctx, "/shell/exec", body, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *suite) do(t *testing.T, method, path string, body any, hdr map[string]string) (int, []byte) {
	t.Helper()
	status, b, err := s.cl.Do(s.ctx, method, path, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

// TestShip runs the container scenarios against one Ship started as Bay
// starts it (uid 1000, all capabilities dropped, no-new-privileges, pids and
// memory limits, 127.0.0.1 port, token, a named volume at /workspace).
func TestShip(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := Start(t, Options{Env: map[string]string{
		"BAY_PROFILE_ENV_JSON": `{"PROFILE_URL":"http://proxy:3128/x","PROFILE_QUOTE":"it's"}`,
		"BAY_PROFILE_ENV":      "LEGACY_A=1:LEGACY_B=two",
	}})
	t.Logf("container start → /health 200: %v", c.StartToHealthy)
	s := &suite{t: t, ctx: ctx, c: c, cl: NewClient(c.Endpoint, c.Token)}

	t.Run("python state persists", func(t *testing.T) {
		if r := s.py(t, "x = 41", 30); !r.Success {
			t.Fatalf("%+v", r)
		}
		if r := s.py(t, "x + 1", 30); !r.Success || r.text() != "42" || r.ExecutionCount == nil {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("matplotlib returns a PNG", func(t *testing.T) {
		r := s.py(t, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()", 60)
		imgs, _ := r.Output["images"].([]any)
		if !r.Success || len(imgs) != 1 {
			t.Fatalf("%+v", r)
		}
		b64, _ := imgs[0].(map[string]any)["image/png"].(string)
		png, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("not a PNG: %v %q", err, b64[:min(40, len(b64))])
		}
	})

	t.Run("python timeout interrupts, keeps output and state", func(t *testing.T) {
		start := time.Now()
		r := s.py(t, "import time\nprint('before', flush=True)\ntime.sleep(60)", 2)
		elapsed := time.Since(start)
		if elapsed < 1500*time.Millisecond || elapsed > 8*time.Second {
			t.Fatalf("took %v", elapsed)
		}
		if r.Success || !r.TimedOut || r.Error == nil || !strings.Contains(*r.Error, "timed out") || !strings.Contains(r.text(), "before") {
			t.Fatalf("%+v", r)
		}
		if r := s.py(t, "x * 2", 30); !r.Success || r.text() != "82" || r.KernelRestarted {
			t.Fatalf("after timeout: %+v", r)
		}
	})

	t.Run("shell runs as uid 1000", func(t *testing.T) {
		r := s.sh(t, map[string]any{"command": "id -u; whoami; echo $HOME; pwd"})
		if !r.Success || r.Stdout != "1000\nshipyard\n/workspace\n/workspace" {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("shell timeout keeps partial output", func(t *testing.T) {
		start := time.Now()
		r := s.sh(t, map[string]any{"command": "echo partial; sleep 60", "timeout": 2})
		if time.Since(start) > 8*time.Second || r.Success || r.ReturnCode != -1 || r.Stdout != "partial" ||
			r.Error == nil || *r.Error != "Command timed out after 2 seconds" {
			t.Fatalf("%+v after %v", r, time.Since(start))
		}
	})

	t.Run("files via write_file and upload are owned by 1000", func(t *testing.T) {
		if err := s.cl.JSON(s.ctx, "/fs/write_file", map[string]any{"path": "own/w.txt", "content": "hi"}, nil); err != nil {
			t.Fatal(err)
		}
		status, b := s.upload(t, "own/u.bin", bytes.NewReader([]byte("data")), true)
		if status != 200 {
			t.Fatalf("upload %d %s", status, b)
		}
		r := s.sh(t, map[string]any{"command": "stat -c '%u:%g %n' own own/w.txt own/u.bin"})
		if r.Stdout != "1000:1000 own\n1000:1000 own/w.txt\n1000:1000 own/u.bin" {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("background process: list, output, kill", func(t *testing.T) {
		r := s.sh(t, map[string]any{"command": "echo started; sleep 300", "background": true})
		if !r.Success || r.ProcessID == nil || len(*r.ProcessID) != 8 || r.Pid == nil {
			t.Fatalf("%+v", r)
		}
		id := *r.ProcessID
		_, b := s.do(t, "GET", "/shell/processes", nil, nil)
		if !strings.Contains(string(b), `"process_id":"`+id+`"`) || !strings.Contains(string(b), `"status":"running"`) {
			t.Fatalf("list: %s", b)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, b = s.do(t, "GET", "/shell/processes/"+id, nil, nil)
			if strings.Contains(string(b), `"stdout":"started\n"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("output: %s", b)
			}
			time.Sleep(50 * time.Millisecond)
		}
		status, b := s.do(t, "POST", "/shell/processes/"+id+"/kill", nil, nil)
		if status != 200 || !strings.Contains(string(b), `"status":"killed"`) {
			t.Fatalf("kill: %d %s", status, b)
		}
		if r := s.sh(t, map[string]any{"command": "pgrep -x sleep || echo none"}); r.Stdout != "none" {
			t.Fatalf("sleep still running: %+v", r)
		}
	})

	t.Run("50 MB upload and download round-trip", func(t *testing.T) {
		const size = 50 << 20
		data := make([]byte, size)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(data)
		status, b := s.upload(t, "big/blob.bin", bytes.NewReader(data), false)
		if status != 200 || !strings.Contains(string(b), fmt.Sprintf(`"size":%d`, size)) {
			t.Fatalf("upload %d %s", status, b)
		}
		res, err := s.rawGet("/fs/download?file_path=big/blob.bin")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, res.Body)
		if err != nil || res.StatusCode != 200 || n != size || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("download %d, %d bytes, %v", res.StatusCode, n, err)
		}
		r := s.sh(t, map[string]any{"command": "sha256sum big/blob.bin | cut -c1-64"})
		if r.Stdout != hex.EncodeToString(want[:]) {
			t.Fatalf("on disk %q", r.Stdout)
		}
		// Streamed both ways: Ship never held the file in memory.
		if kib, err := c.ShipRSSKiB(s.ctx); err != nil || kib > 40<<10 {
			t.Fatalf("ship RSS after a 50 MB round trip: %d KiB (%v)", kib, err)
		} else {
			t.Logf("ship VmRSS after the 50 MB round trip: %d KiB", kib)
		}
	})

	t.Run("escapes are refused", func(t *testing.T) {
		if r := s.sh(t, map[string]any{"command": "ln -sfn /etc etclink"}); !r.Success {
			t.Fatalf("%+v", r)
		}
		for _, p := range []string{"../../etc/passwd", "/etc/passwd", "etclink/passwd", "etclink", "missing/../etclink/passwd"} {
			if status, b := s.do(t, "POST", "/fs/read_file", map[string]any{"path": p}, nil); status != 403 ||
				!strings.Contains(string(b), "Access denied: path must be within workspace /workspace") {
				t.Errorf("read %q: %d %s", p, status, b)
			}
			if status, _ := s.do(t, "GET", "/fs/download?file_path="+p, nil, nil); status != 403 {
				t.Errorf("download %q: %d", p, status)
			}
		}
		if status, _ := s.do(t, "POST", "/fs/write_file", map[string]any{"path": "etclink/evil", "content": "x"}, nil); status != 403 {
			t.Errorf("write through link: %d", status)
		}
		if status, _ := s.do(t, "POST", "/fs/list_dir", map[string]any{"path": "etclink"}, nil); status != 403 {
			t.Errorf("list through link: %d", status)
		}
	})

	t.Run("missing files are 404", func(t *testing.T) {
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/fs/read_file", map[string]any{"path": "nope.txt"}},
			{"POST", "/fs/delete_file", map[string]any{"path": "nope.txt"}},
			{"POST", "/fs/list_dir", map[string]any{"path": "nope"}},
			{"GET", "/fs/download?file_path=nope.txt", nil},
		} {
			if status, b := s.do(t, tc.method, tc.path, tc.body, nil); status != 404 {
				t.Errorf("%s %s: %d %s", tc.method, tc.path, status, b)
			}
		}
	})

	t.Run("auth", func(t *testing.T) {
		for _, tc := range []struct {
			name, path, auth string
			status           int
		}{
			{"no token", "/stat", "", 401},
			{"wrong token", "/stat", "Bearer wrong", 401},
			{"no token on exec", "/ipython/kernel/status", "", 401},
			{"no token on metrics", "/metrics", "", 401},
			{"health open", "/health", "", 200},
			{"meta needs the token", "/meta", "", 401},
			{"meta wrong token", "/meta", "Bearer wrong", 401},
			{"meta with token", "/meta", "Bearer " + c.Token, 200},
			{"right token", "/stat", "Bearer " + c.Token, 200},
		} {
			hdr := map[string]string{"Authorization": tc.auth}
			if status, b := s.do(t, "GET", tc.path, nil, hdr); status != tc.status {
				t.Errorf("%s: %d %s", tc.name, status, b)
			}
		}
	})

	t.Run("bad JSON is 4xx", func(t *testing.T) {
		for _, body := range []string{`{"code":`, `[]`, `{}`, `{"code":5}`, `not json`} {
			status, b := s.do(t, "POST", "/ipython/exec", strings.NewReader(body), nil)
			if status < 400 || status >= 500 {
				t.Errorf("%q: %d %s", body, status, b)
			}
		}
	})

	t.Run("skills copied and listed", func(t *testing.T) {
		var rr struct{ Content string }
		if err := s.cl.JSON(s.ctx, "/fs/read_file", map[string]any{"path": "skills/python-sandbox/SKILL.md"}, &rr); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(rr.Content, "---\nname: python-sandbox") {
			t.Fatalf("%q", rr.Content)
		}
		_, b := s.do(t, "GET", "/meta", nil, nil)
		var meta struct {
			Skills []struct{ Name, Description string } `json:"built_in_skills"`
			Caps   map[string]any                       `json:"capabilities"`
		}
		if err := json.Unmarshal(b, &meta); err != nil {
			t.Fatal(err)
		}
		if len(meta.Skills) != 1 || meta.Skills[0].Name != "python-sandbox" || meta.Skills[0].Description == "" {
			t.Fatalf("%s", b)
		}
		for _, k := range []string{"filesystem", "shell", "python", "terminal"} {
			if meta.Caps[k] == nil {
				t.Errorf("capability %s missing", k)
			}
		}
	})

	t.Run("profile env in .bay_env.sh, python and shell", func(t *testing.T) {
		var rr struct{ Content string }
		if err := s.cl.JSON(s.ctx, "/fs/read_file", map[string]any{"path": ".bay_env.sh"}, &rr); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"export PROFILE_URL='http://proxy:3128/x'", `export PROFILE_QUOTE='it'\''s'`, "export LEGACY_B='two'"} {
			if !strings.Contains(rr.Content, want) {
				t.Errorf(".bay_env.sh lacks %q:\n%s", want, rr.Content)
			}
		}
		r := s.py(t, "import os; print(os.environ['PROFILE_URL'], os.environ['PROFILE_QUOTE'], os.environ['LEGACY_A'])", 30)
		if r.text() != "http://proxy:3128/x it's 1" {
			t.Errorf("python: %+v", r)
		}
		sr := s.sh(t, map[string]any{"command": `echo "$PROFILE_URL $PROFILE_QUOTE $LEGACY_B"; env | grep -c '^SHIP_TOKEN=' || true`})
		if sr.Stdout != "http://proxy:3128/x it's two\n0" {
			t.Errorf("shell: %+v", sr)
		}
	})

	t.Run("terminal", func(t *testing.T) {
		u := "ws" + strings.TrimPrefix(c.Endpoint, "http") + "/term/ws?cols=100&rows=30"
		wctx, wcancel := context.WithTimeout(s.ctx, 30*time.Second)
		defer wcancel()
		hdr := http.Header{"Authorization": {"Bearer " + c.Token}}
		conn, _, err := websocket.Dial(wctx, u, &websocket.DialOptions{HTTPHeader: hdr})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		if err := conn.Write(wctx, websocket.MessageText, []byte("echo \"U=$(id -u) T=$TERM P=$PROFILE_QUOTE\"\n")); err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for !strings.Contains(all.String(), "U=1000 T=xterm-256color P=it's") {
			_, data, err := conn.Read(wctx)
			if err != nil {
				t.Fatalf("%v; got %q", err, all.String())
			}
			all.Write(data)
		}
		conn.Close(websocket.StatusNormalClosure, "")
		if _, _, err := websocket.Dial(wctx, u, nil); err == nil {
			t.Error("terminal without token accepted")
		}
	})

	t.Run("metrics and request id in logs", func(t *testing.T) {
		s.do(t, "POST", "/shell/exec", map[string]any{"command": "true"}, map[string]string{"X-Request-Id": "e2e-req-7f3a"})
		status, b := s.do(t, "GET", "/metrics", nil, nil)
		for _, want := range []string{`ship_exec_duration_seconds_count{kind="python"}`, `ship_exec_duration_seconds_count{kind="shell"}`,
			"ship_kernel_restarts_total", "ship_background_processes 0", `route="POST /shell/exec"`} {
			if status != 200 || !strings.Contains(string(b), want) {
				t.Errorf("metrics lack %q", want)
			}
		}
		// The engine's log driver may lag behind Ship's writes: poll briefly.
		var logs string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			var err error
			if logs, err = c.Logs(s.ctx); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(logs, `"request_id":"e2e-req-7f3a"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Error("request id not in Ship's logs")
				break
			}
		}
		if strings.Contains(logs, c.Token) {
			t.Error("token in Ship's logs")
		}
	})

	t.Run("a dead kernel is restarted and says state was lost", func(t *testing.T) {
		s.py(t, "doomed = 1", 30)
		first := s.py(t, "import os; os._exit(1)", 30)
		if first.Success || first.Error == nil {
			t.Fatalf("%+v", first)
		}
		next := s.py(t, "'doomed' in globals()", 60)
		if !next.Success || next.text() != "False" {
			t.Fatalf("%+v", next)
		}
		if !first.KernelRestarted && !next.KernelRestarted && !strings.Contains(*first.Error, "lost") {
			t.Fatalf("state loss not reported: %+v / %+v", first, next)
		}
		_, b := s.do(t, "GET", "/metrics", nil, nil)
		if !strings.Contains(string(b), `ship_kernel_restarts_total{reason="died"} 1`) {
			t.Errorf("restart not counted")
		}
	})

	t.Run("kernel restart and shutdown", func(t *testing.T) {
		if status, b := s.do(t, "POST", "/ipython/kernel/restart", nil, nil); status != 200 {
			t.Fatalf("%d %s", status, b)
		}
		if r := s.py(t, "'x' in globals()", 30); r.text() != "False" {
			t.Fatalf("state survived restart: %+v", r)
		}
		if status, b := s.do(t, "DELETE", "/ipython/kernel", nil, nil); status != 200 {
			t.Fatalf("%d %s", status, b)
		}
		if _, b := s.do(t, "GET", "/ipython/kernel/status", nil, nil); !strings.Contains(string(b), `"status":"not_started"`) {
			t.Fatalf("%s", b)
		}
		if r := s.py(t, "1+1", 60); r.text() != "2" {
			t.Fatalf("exec after shutdown: %+v", r)
		}
	})

	t.Run("measure 1+1 round trip", func(t *testing.T) {
		const n = 200
		lat := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if r := s.py(t, "1+1", 30); r.text() != "2" {
				t.Fatalf("%+v", r)
			}
			lat = append(lat, time.Since(t0))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		t.Logf("python 1+1 via Ship HTTP: p50 %v p90 %v p99 %v", lat[n/2], lat[n*9/10], lat[n*99/100])
	})

	t.Run("measure idle RSS", func(t *testing.T) {
		time.Sleep(time.Second)
		kib, err := c.ShipRSSKiB(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ship VmRSS: %d KiB (%.1f MiB)", kib, float64(kib)/1024)
	})
}

// upload streams r as multipart (file_path first, as Bay/httpx send it) without
// building the body in memory.
func (s *suite) upload(t *testing.T, path string, r io.Reader, fileFirst bool) (int, []byte) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		var err error
		writeFile := func() {
			var fw io.Writer
			if fw, err = mw.CreateFormFile("file", "file"); err == nil {
				_, err = io.Copy(fw, r)
			}
		}
		if fileFirst {
			writeFile()
		}
		if err == nil {
			err = mw.WriteField("file_path", path)
		}
		if !fileFirst && err == nil {
			writeFile()
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	status, b := s.do(t, "POST", "/fs/upload", io.Reader(pr), map[string]string{"Content-Type": mw.FormDataContentType()})
	return status, b
}

func (s *suite) rawGet(path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.cl.Endpoint+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.cl.Token)
	return s.cl.HTTP.Do(req)
}

// TestRootMode: started as root (Docker's default capabilities), Ship still
// runs all user code as uid 1000 and gives the files it creates to 1000.
func TestRootMode(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := Start(t, Options{AsRoot: true})
	s := &suite{t: t, ctx: ctx, c: c, cl: NewClient(c.Endpoint, c.Token)}
	if r := s.sh(t, map[string]any{"command": "id -u; id -G"}); r.Stdout != "1000\n1000" {
		t.Fatalf("shell: %+v", r)
	}
	if r := s.py(t, "import os; print(os.getuid(), os.getgid())", 30); r.text() != "1000 1000" {
		t.Fatalf("kernel: %+v", r)
	}
	if err := s.cl.JSON(ctx, "/fs/write_file", map[string]any{"path": "r/w.txt", "content": "x"}, nil); err != nil {
		t.Fatal(err)
	}
	if r := s.sh(t, map[string]any{"command": "stat -c '%u:%g' r r/w.txt"}); r.Stdout != "1000:1000\n1000:1000" {
		t.Fatalf("ownership: %+v", r)
	}
}

// TestStartup measures container start → /health 200 over a few fresh
// containers (each with a new, empty volume, as a new sandbox has).
func TestStartup(t *testing.T) {
	requireE2E(t)
	var total time.Duration
	const n = 3
	for i := 0; i < n; i++ {
		c := Start(t, Options{})
		total += c.StartToHealthy
		rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		kib, err := c.ShipRSSKiB(rctx)
		if err != nil {
			t.Error(err)
		}
		t.Logf("start → /health 200: %v; ship VmRSS at idle: %d KiB", c.StartToHealthy, kib)
		// SIGTERM is handled: a clean exit well before Docker's SIGKILL.
		if took, code, err := c.Stop(rctx, 10*time.Second); err != nil || code != 0 || took > 5*time.Second {
			t.Errorf("stop: %v exit %d after %v", err, code, took)
		}
		if err := c.Remove(rctx); err != nil {
			t.Error(err)
		}
		cancel()
	}
	t.Logf("mean start → /health 200: %v", total/n)
}
