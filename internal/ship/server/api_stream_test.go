package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/ship/process"
)

type event struct {
	typ  string
	data map[string]any
	at   time.Duration
}

// readEvents parses a Server-Sent Events body; comments count as "comment".
func readEvents(t *testing.T, body io.Reader, start time.Time) []event {
	t.Helper()
	var out []event
	var ev event
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.typ != "" {
				out = append(out, ev)
			}
			ev = event{}
		case strings.HasPrefix(line, ":"):
			out = append(out, event{typ: "comment", at: time.Since(start)})
		case strings.HasPrefix(line, "event: "):
			ev.typ, ev.at = strings.TrimPrefix(line, "event: "), time.Since(start)
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
				t.Fatalf("data %q: %v", line, err)
			}
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
	return out
}

func (e *env) stream(t *testing.T, ctx context.Context, path, body string) (*http.Response, time.Time) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Accept", "text/event-stream")
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res, start
}

func types(evs []event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.typ)
	}
	return strings.Join(s, ",")
}

func TestShellStream(t *testing.T) {
	e := setup(t, func(o *Options) { o.StreamKeepAlive = 300 * time.Millisecond })
	res, start := e.stream(t, context.Background(), "/shell/exec",
		`{"command":"echo one; sleep 0.6; printf 'x\\342\\202' >&2; sleep 0.1; printf '\\254\\n' >&2; sleep 0.1; echo two; exit 3"}`)
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	evs := readEvents(t, res.Body, start)
	var got []string
	for _, ev := range evs {
		if ev.typ == "stdout" || ev.typ == "stderr" {
			got = append(got, ev.typ+":"+ev.data["text"].(string))
		}
	}
	// The euro sign was written in two pieces: it arrives whole.
	if strings.Join(got, "|") != "stdout:one\n|stderr:x|stderr:€\n|stdout:two\n" {
		t.Fatalf("events %q", got)
	}
	last := evs[len(evs)-1]
	if last.typ != "result" || last.data["return_code"] != float64(3) || last.data["stdout"] != "one\ntwo" || last.data["stderr"] != "x€" {
		t.Fatalf("last %+v", last)
	}
	if !strings.Contains(types(evs), "comment") {
		t.Fatalf("no keep-alive on a quiet stream: %s", types(evs))
	}
	if first := evs[0]; first.typ != "stdout" || first.at > last.at-500*time.Millisecond {
		t.Fatalf("first event %s at %v, result at %v: not streamed", first.typ, first.at, last.at)
	}
}

func TestShellStreamAnswersLikeJSON(t *testing.T) {
	e := setup(t, nil)
	for _, tt := range []struct{ name, body, want string }{
		{"bad cwd is a result", `{"command":"pwd","cwd":"../.."}`, "Access denied"},
		{"background is a result", `{"command":"sleep 1","background":true}`, `"process_id"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, start := e.stream(t, context.Background(), "/shell/exec", tt.body)
			defer res.Body.Close()
			evs := readEvents(t, res.Body, start)
			if len(evs) != 1 || evs[0].typ != "result" {
				t.Fatalf("%s", types(evs))
			}
			if b, _ := json.Marshal(evs[0].data); !strings.Contains(string(b), tt.want) {
				t.Fatalf("%s", b)
			}
		})
	}
	// Validation stays a plain JSON error.
	res, _ := e.stream(t, context.Background(), "/shell/exec", `{"cmd":"x"}`)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 422 || !strings.Contains(string(b), "missing") {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
}

// TestShellStreamDisconnect: by default a command outlives its client; with
// kill_on_disconnect it is killed.
func TestShellStreamDisconnect(t *testing.T) {
	e := setup(t, nil)
	for _, tt := range []struct {
		name string
		kill bool
	}{{"detached", false}, {"killed", true}} {
		t.Run(tt.name, func(t *testing.T) {
			marker := e.ws + "/done-" + tt.name
			ctx, cancel := context.WithCancel(context.Background())
			body, _ := json.Marshal(map[string]any{"command": "echo started; sleep 1; touch " + marker, "kill_on_disconnect": tt.kill})
			res, _ := e.stream(t, ctx, "/shell/exec", string(body))
			line, _ := bufio.NewReader(res.Body).ReadString('\n')
			if line != "event: stdout\n" {
				t.Fatalf("first line %q", line)
			}
			cancel()
			res.Body.Close()
			time.Sleep(1500 * time.Millisecond)
			_, err := os.Stat(marker)
			if ran := err == nil; ran == tt.kill {
				t.Fatalf("command ran to its end: %v, kill_on_disconnect %v", ran, tt.kill)
			}
		})
	}
}

func TestPythonStream(t *testing.T) {
	e := setup(t, nil)
	res, start := e.stream(t, context.Background(), "/ipython/exec", `{"code":"events"}`)
	defer res.Body.Close()
	evs := readEvents(t, res.Body, start)
	if types(evs) != "stdout,display,stderr,exception,result" {
		t.Fatalf("%s", types(evs))
	}
	if d := evs[1].data["data"].(map[string]any); d["image/png"] != "iVBOR" {
		t.Fatalf("display %v", evs[1].data)
	}
	if x := evs[3].data; x["ename"] != "ValueError" || x["evalue"] != "x" || x["traceback"].([]any)[0] != "tb" {
		t.Fatalf("exception %v", x)
	}
	plain := e.post(t, "/ipython/exec", `{"code":"events"}`).json(t)
	if b1, b2 := mustJSON(t, evs[4].data), mustJSON(t, plain); b1 != b2 {
		t.Fatalf("result %s\nplain  %s", b1, b2)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProcessRoutes(t *testing.T) {
	e := setup(t, nil)
	r := e.post(t, "/shell/processes", `{"command":"pwd","cwd":"../.."}`)
	if r.status != 400 || !strings.Contains(string(r.body), "Access denied") {
		t.Fatalf("cwd outside: %d %s", r.status, r.body)
	}
	if r := e.post(t, "/shell/processes", `{"command":"pwd","env":{"A-B":"x"}}`); r.status != 400 {
		t.Fatalf("bad env: %d %s", r.status, r.body)
	}
	if err := os.Mkdir(e.ws+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	r = e.post(t, "/shell/processes", `{"command":"echo hi; sleep 0.1; echo err >&2; sleep 0.1; echo $FOO; pwd; sleep 30","cwd":"sub","env":{"FOO":"bar"}}`)
	p := r.json(t)
	if r.status != 201 || p["status"] != "running" || p["process_id"] == "" || p["exit_code"] != nil {
		t.Fatalf("%d %s", r.status, r.body)
	}
	id := p["process_id"].(string)
	var out map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out = e.do(t, "GET", "/shell/processes/"+id+"/output?offset=0", nil, nil).json(t)
		if strings.Count(out["output"].(string), "\n") >= 4 || time.Now().After(deadline) {
			break
		}
	}
	if out["output"] != "hi\nerr\nbar\n"+e.ws+"/sub\n" || out["offset"] != float64(0) || out["truncated"] != false || out["status"] != "running" {
		t.Fatalf("output %v", out)
	}
	next := int(out["next_offset"].(float64))
	if o := e.do(t, "GET", "/shell/processes/"+id+"/output?offset=3&max_bytes=4", nil, nil).json(t); o["output"] != "err\n" || o["next_offset"] != float64(7) {
		t.Fatalf("window %v", o)
	}
	if o := e.do(t, "GET", "/shell/processes/"+id+"/output?offset="+strconv.Itoa(next), nil, nil).json(t); o["output"] != "" || o["next_offset"] != float64(next) {
		t.Fatalf("at the end %v", o)
	}
	for _, q := range []string{"offset=-1", "offset=x", "max_bytes=0"} {
		if r := e.do(t, "GET", "/shell/processes/"+id+"/output?"+q, nil, nil); r.status != 422 {
			t.Fatalf("%s: %d %s", q, r.status, r.body)
		}
	}
	if r := e.post(t, "/shell/processes/"+id+"/signal", `{"signal":"STOP"}`); r.status != 400 {
		t.Fatalf("bad signal: %d %s", r.status, r.body)
	}
	if h := e.do(t, "GET", "/health", nil, nil).json(t); h["processes_running"] != float64(1) {
		t.Fatalf("health %v", h)
	}
	s := e.post(t, "/shell/processes/"+id+"/signal", `{"signal":"TERM"}`).json(t)
	if s["status"] != "killed" || s["exit_code"] != float64(-15) {
		t.Fatalf("signal %v", s)
	}
	if r := e.do(t, "DELETE", "/shell/processes/"+id, nil, nil); r.status != 204 {
		t.Fatalf("delete %d %s", r.status, r.body)
	}
	for _, path := range []string{"/shell/processes/" + id, "/shell/processes/" + id + "/output"} {
		if r := e.do(t, "GET", path, nil, nil); r.status != 404 {
			t.Fatalf("%s after delete: %d", path, r.status)
		}
	}
	if r := e.do(t, "DELETE", "/shell/processes/"+id, nil, nil); r.status != 404 {
		t.Fatalf("second delete %d", r.status)
	}
}

func TestProcessLimit(t *testing.T) {
	e := setup(t, func(o *Options) {
		o.Processes = process.New(process.Config{Env: []string{"PATH=/usr/bin:/bin"}, MaxRunning: 1})
	})
	t.Cleanup(func() { _ = e.srv.opt.Processes.Shutdown(context.Background()) })
	if r := e.post(t, "/shell/processes", `{"command":"sleep 30"}`); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r := e.post(t, "/shell/processes", `{"command":"sleep 30"}`)
	if r.status != 429 || !strings.Contains(string(r.body), "too many background processes running (1 of 1)") {
		t.Fatalf("%d %s", r.status, r.body)
	}
}
