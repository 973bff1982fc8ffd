package shiptest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOutputIsBounded: every output kind of one python execution is capped
// and marked, the response stays a few MiB whatever the cell prints, and
// Ship's memory does not keep what passed through.
func TestOutputIsBounded(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := Start(t, Options{})
	s := &suite{t: t, ctx: ctx, c: c, cl: NewClient(c.Endpoint, c.Token)}
	rss0, err := c.ShipRSSKiB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const maxResponse = 6 << 20 // 1 MiB error + 4 MiB outputs + marks and JSON
	tests := []struct {
		name      string
		code      string
		success   bool
		inText    string // substring of output.text
		inError   string // substring of error
		inHTML    string // substring of output["text/html"][0]
		noImages  bool
		truncated bool
	}{
		{name: "huge display html", code: "from IPython.display import HTML, display\ndisplay(HTML('h'*50_000_000))",
			success: true, inText: "display_data output of", truncated: true},
		{name: "large display html is cut", code: "from IPython.display import HTML, display\ndisplay(HTML('h'*3_000_000))",
			success: true, inHTML: "[output truncated: ", truncated: true},
		{name: "huge error", code: "raise ValueError('e'*50_000_000)", inError: "too large", truncated: true},
		{name: "large error is cut", code: "raise ValueError('e'*3_000_000)", inError: "[output truncated: ", truncated: true},
		{name: "huge print", code: "print('p'*50_000_000)", success: true, inText: "output truncated", truncated: true},
		{name: "many prints", code: "for i in range(200):\n    print('q'*100_000, flush=True)", success: true,
			inText: "bytes omitted]", truncated: true},
		{name: "huge execute_result", code: "'r'*3_000_000", success: true, inText: "bytes omitted]", truncated: true},
		{name: "huge image is dropped", code: "import base64\nfrom IPython.display import Image, display\n" +
			"display({'image/png': base64.b64encode(b'x'*6_000_000).decode(), 'text/plain': 'img'}, raw=True)",
			success: true, inText: "image/png output of", noImages: true, truncated: true},
		{name: "many displays share the budget", code: "from IPython.display import HTML, display\nfor i in range(100):\n    display(HTML('x'*500_000))",
			success: true, inText: "more outputs dropped", truncated: true},
		{name: "small output whole", code: "print('hello'); 1+1", success: true, inText: "hello\n2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := s.do(t, "POST", "/ipython/exec", map[string]any{"code": tt.code, "timeout": 120}, nil)
			if status != http.StatusOK {
				t.Fatalf("%d %.300s", status, body)
			}
			if len(body) > maxResponse {
				t.Errorf("response of %d bytes", len(body))
			}
			var r struct {
				Success   bool           `json:"success"`
				Output    map[string]any `json:"output"`
				Error     *string        `json:"error"`
				Truncated bool           `json:"truncated"`
			}
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("%v: %.300s", err, body)
			}
			text, _ := r.Output["text"].(string)
			errText := ""
			if r.Error != nil {
				errText = *r.Error
			}
			t.Logf("%d bytes; success %v truncated %v; text %.120q…; error %.120q…", len(body), r.Success, r.Truncated, text, errText)
			if r.Success != tt.success || r.Truncated != tt.truncated || !strings.Contains(text, tt.inText) || !strings.Contains(errText, tt.inError) {
				t.Errorf("success %v truncated %v; want text ∋ %q, error ∋ %q", r.Success, r.Truncated, tt.inText, tt.inError)
			}
			if tt.inHTML != "" {
				html, _ := r.Output["text/html"].([]any)
				if len(html) != 1 || !strings.Contains(html[0].(string), tt.inHTML) {
					t.Errorf("text/html entries %d", len(html))
				}
			}
			if imgs, _ := r.Output["images"].([]any); tt.noImages && len(imgs) != 0 {
				t.Errorf("%d images", len(imgs))
			}
		})
	}
	// The kernel is still usable and kept its state.
	if r := s.py(t, "x = 41\nx + 1", 30); !r.Success || r.text() != "42" {
		t.Fatalf("after: %+v", r)
	}
	rss1, err := c.ShipRSSKiB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ship VmRSS: %d KiB before, %d KiB after", rss0, rss1)
	if rss1-rss0 > 200<<10 {
		t.Errorf("ship RSS grew by %d KiB", rss1-rss0)
	}
}

// TestShellOutputMarked: a cut shell output says how much was left out.
func TestShellOutputMarked(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := Start(t, Options{})
	s := &suite{t: t, ctx: ctx, c: c, cl: NewClient(c.Endpoint, c.Token)}
	status, body := s.do(t, "POST", "/shell/exec", map[string]any{"command": "head -c 5000000 /dev/zero | tr '\\0' x"}, nil)
	var r struct {
		Stdout    string `json:"stdout"`
		Truncated bool   `json:"truncated"`
	}
	if err := json.Unmarshal(body, &r); status != 200 || err != nil {
		t.Fatalf("%d %v", status, err)
	}
	if !r.Truncated || !strings.HasSuffix(r.Stdout, "[output truncated: 3951424 bytes omitted]") || len(body) > 2<<20 {
		t.Errorf("truncated %v, %d bytes, ends %q", r.Truncated, len(body), r.Stdout[max(0, len(r.Stdout)-60):])
	}
}

type health struct {
	Status      string `json:"status"`
	Processes   int    `json:"processes"`
	Zombies     int    `json:"zombies"`
	PidsCurrent *int   `json:"pids_current"`
	PidsMax     *int   `json:"pids_max"`
}

func (s *suite) health(t *testing.T) health {
	t.Helper()
	status, b := s.do(t, "GET", "/health", nil, map[string]string{"Authorization": ""})
	var h health
	if err := json.Unmarshal(b, &h); status != 200 || err != nil {
		t.Fatalf("health: %d %s %v", status, b, err)
	}
	return h
}

// TestPidsExhaustion: user code takes every process slot with processes that
// escaped their command (setsid) and keeps taking them; Ship's next spawn
// kills the strays and retries, while the kernel (and its state), tracked
// background processes and orphans' reaping are unaffected.
func TestPidsExhaustion(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := Start(t, Options{})
	s := &suite{t: t, ctx: ctx, c: c, cl: NewClient(c.Endpoint, c.Token)}

	// Ship answers before its kernel is spawned (it starts in the background):
	// wait for the kernel's process before counting.
	h := s.health(t)
	for deadline := time.Now().Add(30 * time.Second); h.Processes < 3 && time.Now().Before(deadline); h = s.health(t) {
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("idle: %+v (pids %v of %v)", h, deref(h.PidsCurrent), deref(h.PidsMax))
	if h.Processes < 3 || h.PidsMax == nil || *h.PidsMax != 256 {
		t.Fatalf("health %+v", h)
	}

	// Orphans are reaped (tini): no zombies pile up.
	if r := s.sh(t, map[string]any{"command": "for i in $(seq 100); do (setsid sleep 0.2 &); done; sleep 1"}); !r.Success {
		t.Fatalf("%+v", r)
	}
	time.Sleep(500 * time.Millisecond)
	if h := s.health(t); h.Zombies != 0 {
		t.Errorf("zombies: %+v", h)
	}

	// A server started with & by a foreground command keeps running.
	if r := s.sh(t, map[string]any{"command": "python3 -m http.server 8765 >/dev/null 2>&1 & sleep 1; echo started"}); r.Stdout != "started" {
		t.Fatalf("%+v", r)
	}
	// A loaded machine may need a while to import http.server: poll, do not guess.
	if r := s.sh(t, map[string]any{"command": "for i in $(seq 100); do c=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8765/); [ \"$c\" = 200 ] && break; sleep 0.2; done; echo -n $c"}); r.Stdout != "200" {
		t.Fatalf("server started with & is gone: %+v", r)
	}

	if r := s.py(t, "state = 'kept'", 30); !r.Success {
		t.Fatalf("%+v", r)
	}
	bg := s.sh(t, map[string]any{"command": "sleep 1000", "background": true})
	if !bg.Success || bg.ProcessID == nil {
		t.Fatalf("%+v", bg)
	}

	s.exhaust(t)

	var r struct {
		shResult
		Notice *string `json:"notice"`
	}
	if err := s.cl.JSON(ctx, "/shell/exec", map[string]any{"command": "echo ok"}, &r); err != nil {
		t.Fatal(err)
	}
	notice := ""
	if r.Notice != nil {
		notice = *r.Notice
	}
	t.Logf("after exhaustion: %+v notice %q", r.shResult, notice)
	if !r.Success || r.Stdout != "ok" || !strings.Contains(notice, "stray processes") {
		t.Fatalf("shell after exhaustion: %+v notice %q", r.shResult, notice)
	}

	// Tracked work survived; strays are gone; the kernel kept its state.
	var proc struct {
		Status string `json:"status"`
	}
	status, b := s.do(t, "GET", "/shell/processes/"+*bg.ProcessID, nil, nil)
	if err := json.Unmarshal(b, &proc); status != 200 || err != nil || proc.Status != "running" {
		t.Errorf("background handle: %d %s", status, b)
	}
	if r := s.py(t, "state", 30); !r.Success || r.text() != "'kept'" {
		t.Errorf("kernel after sweep: %+v", r)
	}
	h = s.health(t)
	t.Logf("after sweep: %+v (pids %v of %v)", h, deref(h.PidsCurrent), deref(h.PidsMax))
	if h.Processes > 50 || h.Zombies > 0 {
		t.Errorf("after sweep: %+v", h)
	}
	if r := s.sh(t, map[string]any{"command": "pgrep -c sleep || true"}); r.Stdout != "1" {
		t.Errorf("sleeps left: %q (want only the tracked one)", r.Stdout)
	}

	// A kernel that dies while every slot is taken is restarted after a sweep.
	s.exhaust(t)
	if r := s.py(t, "import os; os.kill(os.getpid(), 9)", 30); r.Success {
		t.Fatalf("kill kernel: %+v", r)
	}
	time.Sleep(time.Second) // the filler retakes the kernel's slots
	var pr struct {
		pyResult
		Notice *string `json:"notice"`
	}
	if err := s.cl.JSON(ctx, "/ipython/exec", map[string]any{"code": "6*7"}, &pr); err != nil {
		t.Fatal(err)
	}
	notice = ""
	if pr.Notice != nil {
		notice = *pr.Notice
	}
	t.Logf("kernel after exhaustion: success %v text %q notice %q", pr.Success, pr.text(), notice)
	if !pr.Success || pr.text() != "42" || !pr.KernelRestarted || !strings.Contains(notice, "stray processes") {
		t.Errorf("kernel restart under exhaustion: %+v notice %q", pr.pyResult, notice)
	}
}

// exhaust starts a stray that escaped its command (own session) and takes
// every slot that frees up, retrying at once (bash's fork retry backs off and
// would leave slots free), and waits until the pids limit is reached.
func (s *suite) exhaust(t *testing.T) {
	t.Helper()
	filler := `import os, time
while True:
    try:
        if os.fork() == 0:
            os.setsid()
            os.execvp("sleep", ["sleep", "1000"])
    except OSError:
        time.sleep(0.001)`
	s.sh(t, map[string]any{"command": "setsid python3 -c " + quote(filler) + " >/dev/null 2>&1 &", "timeout": 20})
	var h health
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		h = s.health(t)
		if h.PidsCurrent != nil && *h.PidsCurrent >= *h.PidsMax {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not exhausted: %+v (pids %v)", h, deref(h.PidsCurrent))
		}
	}
	time.Sleep(500 * time.Millisecond)
	h = s.health(t)
	t.Logf("exhausted: %+v (pids %v of %v)", h, deref(h.PidsCurrent), deref(h.PidsMax))
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
