package bay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/test/baytest"
)

// sseEvent is one event of a streamed execution, with when it arrived.
type sseEvent struct {
	Type string
	Data map[string]any
	At   time.Duration // since the request was sent
}

// sseStream is a streamed call in progress.
type sseStream struct {
	resp  *http.Response
	r     *bufio.Reader
	start time.Time
}

// openStream POSTs body to path asking for Server-Sent Events. A non-200
// answer is returned with a nil stream.
func openStream(t *testing.T, ctx context.Context, b *baytest.Bay, path string, body map[string]any) (*sseStream, *http.Response) {
	t.Helper()
	j, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", b.URL+path, bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+baytest.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	start := time.Now()
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		return nil, resp
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	return &sseStream{resp: resp, r: bufio.NewReaderSize(resp.Body, 1<<20), start: start}, resp
}

// next returns the next event (comments skipped), false at the end.
func (s *sseStream) next(t *testing.T) (sseEvent, bool) {
	t.Helper()
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return sseEvent{}, false
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.Type != "" {
				return ev, true
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			ev.Type, ev.At = strings.TrimPrefix(line, "event: "), time.Since(s.start)
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
}

// all reads every event to the end of the stream.
func (s *sseStream) all(t *testing.T) []sseEvent {
	t.Helper()
	defer s.resp.Body.Close()
	var out []sseEvent
	for {
		ev, ok := s.next(t)
		if !ok {
			return out
		}
		out = append(out, ev)
	}
}

func eventTypes(evs []sseEvent) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Type)
	}
	return strings.Join(s, ",")
}

// texts joins the text of the events of a type.
func texts(evs []sseEvent, typ string) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Type == typ {
			b.WriteString(e.Data["text"].(string))
		}
	}
	return b.String()
}

// onePixelPNG is a 1×1 PNG.
const onePixelPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

// TestStreamedExecution: output reaches the client as it is produced, in
// order, then the result the plain call would give; history records it.
func TestStreamedExecution(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	sb := "/v1/sandboxes/" + id
	b.Python(t, id, "import time") // the kernel is up: the timing below is the cell's own

	t.Run("python prints as it runs", func(t *testing.T) {
		s, resp := openStream(t, context.Background(), b, sb+"/python/exec",
			map[string]any{"code": "import time\nfor i in range(5): print(i); time.sleep(1)", "description": "streamed"})
		if s == nil {
			t.Fatalf("status %d", resp.StatusCode)
		}
		evs := s.all(t)
		last := evs[len(evs)-1]
		if last.Type != "result" || eventTypes(evs[:len(evs)-1]) != "stdout,stdout,stdout,stdout,stdout" {
			t.Fatalf("events %s", eventTypes(evs))
		}
		if texts(evs, "stdout") != "0\n1\n2\n3\n4\n" {
			t.Fatalf("stdout %q", texts(evs, "stdout"))
		}
		// Each line arrives about a second after the one before; the first
		// well before the command ends.
		first := evs[0].At
		if last.At-first < 3500*time.Millisecond {
			t.Fatalf("first line at %v, result at %v: not streamed", first, last.At)
		}
		for i := 1; i < 5; i++ {
			if gap := evs[i].At - evs[i-1].At; gap < 700*time.Millisecond || gap > 1500*time.Millisecond {
				t.Fatalf("line %d arrived %v after the one before", i, gap)
			}
		}
		t.Logf("first line at %v, result at %v", first, last.At)
		res := last.Data
		if res["success"] != true || res["output"] != "0\n1\n2\n3\n4" || res["execution_id"] == "" || res["execution_time_ms"].(float64) < 4000 {
			t.Fatalf("result %v", res)
		}
		h := b.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/history/" + res["execution_id"].(string)})
		if h["exec_type"] != "python" || h["success"] != true || h["description"] != "streamed" || !strings.Contains(h["code"].(string), "range(5)") {
			t.Fatalf("history %v", h)
		}
	})

	t.Run("python display and exception", func(t *testing.T) {
		s, _ := openStream(t, context.Background(), b, sb+"/python/exec", map[string]any{"code": "from IPython.display import display, HTML\n" +
			"print('before')\ndisplay(HTML('<b>x</b>'))\n1/0"})
		evs := s.all(t)
		if eventTypes(evs) != "stdout,display,exception,result" {
			t.Fatalf("events %s", eventTypes(evs))
		}
		if d := evs[1].Data["data"].(map[string]any); d["text/html"] != "<b>x</b>" {
			t.Fatalf("display %v", evs[1].Data)
		}
		if x := evs[2].Data; x["ename"] != "ZeroDivisionError" || len(x["traceback"].([]any)) == 0 {
			t.Fatalf("exception %v", x)
		}
		if r := evs[3].Data; r["success"] != false || !strings.Contains(r["error"].(string), "ZeroDivisionError") {
			t.Fatalf("result %v", r)
		}
	})

	t.Run("image", func(t *testing.T) {
		s, _ := openStream(t, context.Background(), b, sb+"/python/exec", map[string]any{"code": "import base64\nfrom IPython.display import Image, display\n" +
			"display(Image(data=base64.b64decode('" + onePixelPNG + "')))"})
		evs := s.all(t)
		var png string
		for _, e := range evs {
			if e.Type == "display" {
				png, _ = e.Data["data"].(map[string]any)["image/png"].(string)
			}
		}
		res := evs[len(evs)-1].Data
		imgs := res["data"].(map[string]any)["output"].(map[string]any)["images"].([]any)
		if png != onePixelPNG || len(imgs) != 1 || imgs[0].(map[string]any)["image/png"] != png {
			t.Fatalf("image event %d bytes, result images %d", len(png), len(imgs))
		}
	})

	t.Run("shell stdout and stderr in order", func(t *testing.T) {
		s, _ := openStream(t, context.Background(), b, sb+"/shell/exec",
			map[string]any{"command": "for i in 1 2 3; do echo $i; sleep 0.3; done; echo oops >&2; sleep 0.3; echo end; exit 3"})
		evs := s.all(t)
		var seq []string
		for _, e := range evs {
			if e.Type == "stdout" || e.Type == "stderr" {
				seq = append(seq, e.Type+":"+e.Data["text"].(string))
			}
		}
		if strings.Join(seq, "") != "stdout:1\nstdout:2\nstdout:3\nstderr:oops\nstdout:end\n" {
			t.Fatalf("events %q", seq)
		}
		res := evs[len(evs)-1]
		if res.Type != "result" || res.Data["exit_code"] != float64(3) || res.Data["output"] != "1\n2\n3\nend" || res.Data["error"] != "oops" {
			t.Fatalf("result %v", res)
		}
		plain := b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{"command": "echo x"}})
		for k := range plain {
			if _, ok := res.Data[k]; !ok {
				t.Fatalf("result lacks %q of the plain answer: %v", k, res.Data)
			}
		}
	})

	t.Run("large output streams whole, the result stays capped", func(t *testing.T) {
		s, _ := openStream(t, context.Background(), b, sb+"/shell/exec",
			map[string]any{"command": "head -c 5000000 /dev/zero | tr '\\0' x; echo; echo tail >&2"})
		evs := s.all(t)
		out := texts(evs, "stdout")
		if len(out) != 5000001 || strings.Trim(out, "x\n") != "" || texts(evs, "stderr") != "tail\n" {
			t.Fatalf("streamed %d bytes of stdout, stderr %q", len(out), texts(evs, "stderr"))
		}
		res := evs[len(evs)-1]
		if res.Type != "result" || res.Data["truncated"] != true || len(res.Data["output"].(string)) > 2<<20 {
			t.Fatalf("result %s truncated=%v, %d bytes", res.Type, res.Data["truncated"], len(res.Data["output"].(string)))
		}
	})

	t.Run("errors before the stream are JSON", func(t *testing.T) {
		for _, tt := range []struct {
			path   string
			body   map[string]any
			status int
			code   string
		}{
			{"/v1/sandboxes/sandbox-nope/shell/exec", map[string]any{"command": "true"}, 404, "not_found"},
			{sb + "/shell/exec", map[string]any{"cmd": "true"}, 422, ""},
			{sb + "/python/exec", map[string]any{"code": "1", "kill_on_disconnect": "maybe"}, 422, ""},
		} {
			s, resp := openStream(t, context.Background(), b, tt.path, tt.body)
			if s != nil {
				t.Fatalf("%s streamed", tt.path)
			}
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			code := ""
			if e, ok := body["error"].(map[string]any); ok {
				code, _ = e["code"].(string)
			}
			if resp.StatusCode != tt.status || code != tt.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("%s: %d %v", tt.path, resp.StatusCode, body)
			}
		}
	})
}

// TestStreamDisconnect: a client that leaves mid-stream does not stop the
// command (its history row is still written) unless it set kill_on_disconnect.
func TestStreamDisconnect(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	sb := "/v1/sandboxes/" + id
	leave := func(path string, body map[string]any) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		s, resp := openStream(t, ctx, b, path, body)
		if s == nil {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if ev, ok := s.next(t); !ok || ev.Type != "stdout" {
			t.Fatalf("first event %v", ev)
		}
		cancel()
		s.resp.Body.Close()
	}
	leave(sb+"/shell/exec", map[string]any{"command": "echo started; sleep 2; echo done > shell-kept", "description": "left"})
	leave(sb+"/shell/exec", map[string]any{"command": "echo started; sleep 2; echo done > shell-killed", "kill_on_disconnect": true})
	leave(sb+"/python/exec", map[string]any{"code": "import time\nprint('started', flush=True)\ntime.sleep(2)\nopen('py-kept', 'w').write('x')"})
	// This cell starts once the one before has ended (one kernel): it is interrupted.
	leave(sb+"/python/exec", map[string]any{"code": "import time\nprint('started', flush=True)\ntime.sleep(2)\nopen('py-killed', 'w').write('x')",
		"kill_on_disconnect": true})
	time.Sleep(3 * time.Second)
	ls := b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{"command": "ls"}})
	if out := ls["output"].(string); !strings.Contains(out, "shell-kept") || strings.Contains(out, "shell-killed") ||
		!strings.Contains(out, "py-kept") || strings.Contains(out, "py-killed") {
		t.Fatalf("files: %q", out)
	}
	if r := b.Python(t, id, "1+1"); r["output"] != "2" {
		t.Fatalf("kernel after an interrupted cell: %v", r)
	}
	h := b.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/history?exec_type=shell"})
	found := false
	for _, e := range h["entries"].([]any) {
		e := e.(map[string]any)
		if e["description"] == "left" {
			found = e["success"] == true && strings.Contains(e["output"].(string), "started")
		}
	}
	if !found {
		t.Fatalf("no history row for the detached command: %v", h)
	}
}

// TestStreamErrorEvent: when the runtime dies mid-stream the stream ends
// with an error event carrying Bay's error body, and the next call gets a
// new session.
func TestStreamErrorEvent(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	s, resp := openStream(t, context.Background(), b, "/v1/sandboxes/"+id+"/shell/exec", map[string]any{"command": "echo started; sleep 60"})
	if s == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ev, ok := s.next(t); !ok || ev.Type != "stdout" {
		t.Fatalf("first event %v", ev)
	}
	if err := baytest.Docker(t).ContainerKill(context.Background(), sandboxContainer(t, id), "KILL"); err != nil {
		t.Fatal(err)
	}
	evs := s.all(t)
	if len(evs) != 1 || evs[0].Type != "error" {
		t.Fatalf("events after the kill: %s", eventTypes(evs))
	}
	e, _ := evs[0].Data["error"].(map[string]any)
	if e["code"] != "ship_error" || e["request_id"] == "" {
		t.Fatalf("error event %v", evs[0].Data)
	}
	if r := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec", Body: map[string]any{"command": "echo back"}}); r["output"] != "back" {
		t.Fatalf("after the failure: %v", r)
	}
}
