package gulltest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
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
		t.Skip("container test: set SHIPYARD_E2E=1 (needs Docker, gull:latest and ship:latest)")
	}
}

// refOf finds the ref of the element with role and name in a snapshot.
func refOf(t *testing.T, snapshot, role, name string) string {
	t.Helper()
	re := regexp.MustCompile(`(@e\d+) \[` + regexp.QuoteMeta(role) + `\] "` + regexp.QuoteMeta(name) + `"`)
	m := re.FindStringSubmatch(snapshot)
	if m == nil {
		t.Fatalf("no [%s] %q in snapshot:\n%s", role, name, snapshot)
	}
	return m[1]
}

// TestBrowser runs the agent's cadence and the error cases against one
// locked-down Gull container and a fixture server on the test's network.
func TestBrowser(t *testing.T) {
	requireE2E(t)
	env := NewEnv(t)
	g := env.StartGull(t, Options{})

	t.Run("form flow with refs", func(t *testing.T) {
		out := g.MustExec(t, "open http://web:8000/login")
		if !strings.Contains(out, "Title: Login") {
			t.Fatalf("open: %s", out)
		}
		snap := g.MustExec(t, "snapshot -i")
		if !strings.Contains(snap, "URL: http://web:8000/login") {
			t.Errorf("snapshot lacks the URL:\n%s", snap)
		}
		email := refOf(t, snap, "textbox", "Email")
		remember := refOf(t, snap, "checkbox", "Remember me")
		submit := refOf(t, snap, "button", "Log In")
		if strings.Contains(snap, "[heading]") {
			t.Errorf("snapshot -i shows non-interactive elements:\n%s", snap)
		}
		// A second snapshot of the same page keeps the refs.
		if again := g.MustExec(t, "snapshot -i"); refOf(t, again, "button", "Log In") != submit {
			t.Errorf("refs changed between snapshots of one page:\n%s\n%s", snap, again)
		}
		g.MustExec(t, fmt.Sprintf(`fill %s "agent@example.test"`, email))
		if v := g.MustExec(t, "get value "+email); v != "agent@example.test" {
			t.Errorf("get value = %q", v)
		}
		g.MustExec(t, "check "+remember)
		if v := g.MustExec(t, "is checked "+remember); v != "true" {
			t.Errorf("is checked = %q", v)
		}
		out = g.MustExec(t, "click "+submit)
		if !strings.Contains(out, "The page changed") || !strings.Contains(out, "/welcome") {
			t.Errorf("click did not report the navigation: %s", out)
		}
		if body := g.MustExec(t, "get text body"); !strings.Contains(body, "Welcome, agent@example.test") {
			t.Errorf("next page's text = %q", body)
		}
		if title := g.MustExec(t, "get title"); title != "Welcome" {
			t.Errorf("get title = %q", title)
		}
		// The refs of the login page are stale now.
		r := g.Exec(t, "click "+submit, 10)
		if r.ExitCode != 1 || !strings.Contains(r.Stderr, "stale") || !strings.Contains(r.Stderr, "snapshot -i") {
			t.Errorf("stale ref: exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
		// A ref that never existed says so too.
		if r := g.Exec(t, "click @e999", 10); r.ExitCode != 1 || !strings.Contains(r.Stderr, "unknown ref") {
			t.Errorf("unknown ref: exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
	})

	t.Run("semantic locators", func(t *testing.T) {
		g.MustExec(t, "open http://web:8000/login")
		g.MustExec(t, `find label "Email" fill "by-label@example.test"`)
		g.MustExec(t, `find role button click --name "log in"`)
		if body := g.MustExec(t, "get text body"); !strings.Contains(body, "Welcome, by-label@example.test") {
			t.Errorf("after find: %q", body)
		}
		g.MustExec(t, `find text "Back" click`)
		if u := g.MustExec(t, "get url"); u != "http://web:8000/login" {
			t.Errorf("find text click went to %q", u)
		}
		if n := g.MustExec(t, `get count "input"`); n != "3" {
			t.Errorf("get count = %q", n)
		}
		if r := g.Exec(t, `find text "no such text anywhere" click`, 10); r.ExitCode != 1 || !strings.Contains(r.Stderr, "snapshot -i") {
			t.Errorf("missing locator: %+v", r)
		}
	})

	t.Run("screenshot lands in the workspace as a PNG", func(t *testing.T) {
		g.MustExec(t, "open http://web:8000/login")
		out := g.MustExec(t, "screenshot /workspace/shots/login.png")
		if !strings.Contains(out, "/workspace/shots/login.png") {
			t.Errorf("screenshot: %s", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		data, err := g.ReadFile(ctx, "/workspace/shots/login.png")
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("not a PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 800 {
			t.Errorf("screenshot is %v, want the 1280x800 viewport", b)
		}
		for _, p := range []string{"/etc/x.png", "../x.png", "/workspace/../tmp/x.png"} {
			if r := g.Exec(t, "screenshot "+p, 10); r.ExitCode != 1 || !strings.Contains(r.Stderr, "outside /workspace") {
				t.Errorf("screenshot %s: %+v", p, r)
			}
		}
		// A symlink in the workspace cannot lead the write outside it.
		if _, err := g.Shell(ctx, "ln -sfn /tmp /workspace/escape"); err != nil {
			t.Fatal(err)
		}
		if r := g.Exec(t, "screenshot /workspace/escape/x.png", 10); r.ExitCode != 1 {
			t.Errorf("screenshot through a symlink out of the workspace: %+v", r)
		}
		out = g.MustExec(t, "pdf /workspace/login.pdf")
		if pdf, err := g.ReadFile(ctx, "/workspace/login.pdf"); err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
			t.Errorf("pdf: %s, %v", out, err)
		}
	})

	t.Run("exec_batch stop_on_error", func(t *testing.T) {
		type step struct {
			Cmd       string `json:"cmd"`
			ExitCode  int    `json:"exit_code"`
			StepIndex int    `json:"step_index"`
			Stdout    string `json:"stdout"`
			Stderr    string `json:"stderr"`
		}
		var res struct {
			Results        []step `json:"results"`
			TotalSteps     int    `json:"total_steps"`
			CompletedSteps int    `json:"completed_steps"`
			Success        bool   `json:"success"`
			DurationMS     *int64 `json:"duration_ms"`
		}
		cmds := []string{"open http://web:8000/login", "click @e404", "get title"}
		g.Post(t, "/exec_batch", map[string]any{"commands": cmds, "timeout": 60, "stop_on_error": true}, &res)
		if len(res.Results) != 2 || res.TotalSteps != 3 || res.CompletedSteps != 2 || res.Success || res.DurationMS == nil {
			t.Fatalf("stop_on_error=true: %+v", res)
		}
		if res.Results[0].ExitCode != 0 || res.Results[1].ExitCode != 1 || res.Results[1].StepIndex != 1 || res.Results[1].Cmd != "click @e404" {
			t.Errorf("steps: %+v", res.Results)
		}
		res.Results = nil
		g.Post(t, "/exec_batch", map[string]any{"commands": cmds, "timeout": 60, "stop_on_error": false}, &res)
		if len(res.Results) != 3 || res.CompletedSteps != 3 || res.Success || res.Results[2].Stdout != "Login" {
			t.Errorf("stop_on_error=false: %+v", res)
		}
		res.Results = nil
		g.Post(t, "/exec_batch", map[string]any{"commands": []string{"open http://web:8000/login", "get title"}}, &res)
		if !res.Success || res.CompletedSteps != 2 {
			t.Errorf("all good: %+v", res)
		}
		if code := g.Post(t, "/exec_batch", map[string]any{"commands": []string{}}, nil); code != http.StatusUnprocessableEntity {
			t.Errorf("empty batch: HTTP %d", code)
		}
	})

	t.Run("bad lines and timeouts end with a clear error in time", func(t *testing.T) {
		cases := []struct {
			cmd     string
			timeout float64
			code    int
			want    string
			within  time.Duration
		}{
			// within: the call's timeout plus a margin for a loaded machine.
			{`open "http://web:8000/login`, 30, 2, "Close every quote", 5 * time.Second},
			{`frobnicate @e1`, 30, 2, `unknown command "frobnicate"`, 5 * time.Second},
			{`click`, 30, 2, "Usage: click <ref>", 5 * time.Second},
			{`wait 600000`, 5, 124, "longer than the time this call has left", 5 * time.Second},
			{`open http://web:8000/hang`, 4, 124, "timed out after 4s", 9 * time.Second},
			{`wait --text "never on this page"`, 3, 124, "timed out after 3s", 8 * time.Second},
			{`eval "while (true) {}"`, 3, 124, "running the script; it was stopped", 8 * time.Second},
			{`get title`, 5, 0, "", 5 * time.Second}, // the endless script no longer blocks the page
		}
		for _, c := range cases {
			t0 := time.Now()
			r := g.Exec(t, c.cmd, c.timeout)
			took := time.Since(t0)
			if r.ExitCode != c.code || !strings.Contains(r.Stderr, c.want) {
				t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", c.cmd, r.ExitCode, r.Stderr, c.code, c.want)
			}
			if took > c.within {
				t.Errorf("%s took %v (timeout %gs)", c.cmd, took, c.timeout)
			}
		}
		// A page that opens windows in a loop keeps at most 16 tabs.
		g.MustExec(t, `open "data:text/html,<script>for (let i = 0; i < 30; i++) window.open('about:blank')</script>"`)
		if out := g.MustExec(t, "tab"); !strings.Contains(out, "at most 16 tabs") || strings.Contains(out, " 16: ") {
			t.Errorf("tab after a window.open loop: %s", out)
		}
		// The browser is still usable after a page that never loaded.
		if out := g.MustExec(t, "open http://web:8000/login"); !strings.Contains(out, "Title: Login") {
			t.Errorf("after the hang: %s", out)
		}
		// Bad request bodies are 422 with the field named.
		for _, body := range []any{map[string]any{}, map[string]any{"cmd": "get title", "timeout": 0}, map[string]any{"cmd": "get title", "timeout": 100000}} {
			if code := g.Post(t, "/exec", body, nil); code != http.StatusUnprocessableEntity {
				t.Errorf("%v: HTTP %d", body, code)
			}
		}
	})

	t.Run("api: token, meta, health, session teardown", func(t *testing.T) {
		res, err := http.Post(g.Endpoint+"/exec", "application/json", strings.NewReader(`{"cmd":"get title"}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("no token: HTTP %d", res.StatusCode)
		}
		var meta struct {
			Runtime      map[string]any `json:"runtime"`
			Capabilities map[string]any `json:"capabilities"`
			Skills       []any          `json:"built_in_skills"`
		}
		req, _ := http.NewRequest(http.MethodGet, g.Endpoint+"/meta", nil)
		req.Header.Set("Authorization", "Bearer "+g.Token)
		mres, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeJSON(mres, &meta); err != nil || meta.Runtime["name"] != "gull" || meta.Capabilities["browser"] == nil || meta.Skills == nil {
			t.Errorf("meta: %+v %v", meta, err)
		}
		var del struct {
			SandboxID string `json:"sandbox_id"`
			Destroyed bool   `json:"destroyed"`
		}
		req, _ = http.NewRequest(http.MethodDelete, g.Endpoint+"/sessions/sbx-test", nil)
		req.Header.Set("Authorization", "Bearer "+g.Token)
		dres, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeJSON(dres, &del); err != nil || !del.Destroyed || del.SandboxID != "sbx-test" {
			t.Errorf("delete session: %+v %v", del, err)
		}
		var h struct {
			Status        string `json:"status"`
			BrowserActive bool   `json:"browser_active"`
			BrowserReady  bool   `json:"browser_ready"`
		}
		hres, err := http.Get(g.Endpoint + "/health")
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeJSON(hres, &h); err != nil || h.Status != "healthy" || h.BrowserActive || !h.BrowserReady {
			t.Errorf("health after teardown: %+v %v", h, err)
		}
	})
}

// TestCrashedBrowserRestarts kills Chromium inside the container; the next
// command starts a new one. A crashed page (its renderer killed, as the OOM
// killer would) is reloaded by the next command.
func TestCrashedBrowserRestarts(t *testing.T) {
	requireE2E(t)
	env := NewEnv(t)
	g := env.StartGull(t, Options{})
	g.MustExec(t, "open http://web:8000/login")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	killed, err := g.Shell(ctx, `n=0; for p in /proc/[0-9]*; do if tr '\0' ' ' < $p/cmdline 2>/dev/null | grep -q -- '--type=renderer'; then kill -9 ${p#/proc/} && n=$((n+1)); fi; done; echo $n`)
	if err != nil || strings.TrimSpace(killed) == "0" {
		t.Fatalf("kill the renderer: %q %v", killed, err)
	}
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	r := g.Exec(t, "snapshot -i", 10)
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "crashed") || !strings.Contains(r.Stdout, `[button] "Log In"`) || time.Since(t0) > 10*time.Second {
		t.Fatalf("after the renderer's kill (%v): %+v", time.Since(t0), r)
	}

	killed, err = g.Shell(ctx, `n=0; for p in /proc/[0-9]*; do if tr '\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^/usr/lib/chromium/chromium-headless-shell\|^/usr/bin/chromium-headless-shell'; then kill -9 ${p#/proc/} 2>/dev/null && n=$((n+1)); fi; done; echo $n`)
	if err != nil || strings.TrimSpace(killed) == "0" {
		t.Fatalf("kill chromium: %q %v", killed, err)
	}
	time.Sleep(300 * time.Millisecond)
	r = g.Exec(t, "open http://web:8000/login", 30)
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "restarted") || !strings.Contains(r.Stdout, "Title: Login") {
		t.Fatalf("after the kill: %+v", r)
	}
	snap := g.MustExec(t, "snapshot -i")
	refOf(t, snap, "button", "Log In")
	// The browser keeps its files (profile, caches) under .browser only.
	if ls, err := g.Shell(ctx, "ls -A /workspace"); err != nil || strings.TrimSpace(ls) != ".browser" {
		t.Errorf("workspace after browsing: %q %v", ls, err)
	}
}

// TestCookiesSurviveRebuild: the profile is on the workspace volume, so a new
// container on the same volume has the cookies.
func TestCookiesSurviveRebuild(t *testing.T) {
	requireE2E(t)
	env := NewEnv(t)
	g := env.StartGull(t, Options{})
	g.MustExec(t, "open http://web:8000/cookie")
	g.MustExec(t, "cookies set extra 42")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	g2 := env.StartGull(t, Options{})
	g2.MustExec(t, "open http://web:8000/login")
	out := g2.MustExec(t, "cookies")
	if !strings.Contains(out, "sid=kept-across-rebuilds") {
		t.Errorf("cookies after rebuild: %q", out)
	}
}

// TestChromiumSandboxNeedsPrivileges documents why Gull runs Chromium with
// --no-sandbox: in the locked-down container (no capabilities, default
// seccomp, no-new-privileges) Chromium's own sandbox cannot start, and Gull
// says so instead of hanging.
func TestChromiumSandboxNeedsPrivileges(t *testing.T) {
	requireE2E(t)
	env := NewEnv(t)
	g := env.StartGull(t, Options{Env: map[string]string{"GULL_CHROMIUM_SANDBOX": "on"}})
	r := g.Exec(t, "open http://web:8000/login", 30)
	if r.ExitCode == 0 {
		t.Skip("Chromium's sandbox works in this container (user namespaces allowed): the --no-sandbox default is not needed here")
	}
	if !strings.Contains(r.Stderr, "could not start") {
		t.Errorf("sandboxed start failure: %+v", r)
	}
}

func decodeJSON(res *http.Response, v any) error {
	defer res.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(res.Body); err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", res.StatusCode, buf.String())
	}
	return json.Unmarshal(buf.Bytes(), v)
}

// TestCommandGroups exercises every command group of browser-commands.md
// on the fixture's kitchen-sink page.
func TestCommandGroups(t *testing.T) {
	requireE2E(t)
	env := NewEnv(t)
	g := env.StartGull(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	must := func(cmd string) string { t.Helper(); return g.MustExec(t, cmd) }
	want := func(cmd, sub string) {
		t.Helper()
		if out := must(cmd); !strings.Contains(out, sub) {
			t.Errorf("%s = %q, want it to contain %q", cmd, out, sub)
		}
	}
	fails := func(cmd, sub string) {
		t.Helper()
		if r := g.Exec(t, cmd, 10); r.ExitCode == 0 || !strings.Contains(r.Stderr, sub) {
			t.Errorf("%s: exit %d stderr %q, want a failure containing %q", cmd, r.ExitCode, r.Stderr, sub)
		}
	}
	must("open http://web:8000/kitchen")

	// tabs: a link with target=_blank opens a tab the runtime adopts.
	must(`find text "New tab" click`)
	want("tab", "1: Login")
	must("tab 1")
	want("get url", "/login")
	must("tab close")
	want("get url", "/kitchen")
	must("tab new http://web:8000/login")
	want("tab", "* 1: Login")
	must("tab close 1")
	fails("tab 5", "there is no tab 5")

	// dialogs: never block; armed answers are used once.
	must("click #ask")
	want("get text #r", "no")
	must("dialog accept")
	must("click #ask")
	want("get text #r", "yes")
	want("dialog", `confirm dialog "Sure?" was accepted`)

	// upload, drag, dblclick, hover, press.
	if _, err := g.Shell(ctx, "echo hello > /workspace/up.txt"); err != nil {
		t.Fatal(err)
	}
	must("upload #f /workspace/up.txt")
	want("get text #fn", "up.txt")
	fails("upload #f /etc/passwd", "outside /workspace")
	must("drag #src #dst")
	want("get text #dr", "dropped")
	must("dblclick #dbl")
	want("get text #dbl", "double")
	must("hover #src")
	must(`find label "Keys" fill "abc"`)
	must("press Enter")
	want("get text #k", "enter:abc")
	fails("press Hyper+x", "unknown modifier")

	// waits.
	must("click #later")
	want("wait #late", "Done waiting")
	want("wait --url **/kitchen", "Done waiting")
	want("wait --load networkidle", "Done waiting")
	want(`wait --fn "document.title === 'Kitchen'"`, "Done waiting")
	want("wait 50", "Waited 50 ms")
	want("wait button", "Done waiting")
	fails("wait 5s", "JavaScript error: SyntaxError")

	// cursor-interactive elements get refs with -C.
	snap := must("snapshot -i -C")
	ref := refOf(t, snap, "clickable", "Clickable div")
	must("click " + ref)
	want("get text #cd", "div clicked")

	// frames.
	must(`frame "#fr"`)
	refOf(t, must("snapshot -i"), "button", "Inside")
	want("get count button", "1")
	must("frame main")
	if n := must("get count button"); n == "1" {
		t.Errorf("frame main: still in the frame (count %s)", n)
	}

	// network routes and the request log.
	must(`network route "**/api/data" --body '{"v":"mocked"}'`)
	must("click #load")
	want(`wait --text mocked`, "Done waiting")
	want("network requests --filter /api/data", "GET http://web:8000/api/data")
	must(`network route "**/api/*" --abort`)
	must("network unroute **/api/data")
	must("click #load")
	want("wait --text blocked", "Done waiting")
	want("network unroute", "Removed 1 route(s)")
	must("click #load")
	want("wait --text server", "Done waiting")

	// get / is / eval / scroll / json.
	want("get attr #keys aria-label", "Keys")
	want("get html #dbl", `<button id="dbl"`)
	want("get box #src", `"width":60`)
	want("get styles #src", "rgb(255, 0, 0)")
	want("is visible #src", "true")
	want("is enabled #load", "true")
	want(`eval "[1, 2].map(x => x * 2)"`, "[2,4]")
	fails(`eval "throw new Error('boom')"`, "JavaScript error: Error: boom")
	want("scroll down 200", "y=200")
	var js struct {
		Success bool `json:"success"`
		Data    struct {
			Elements []map[string]any `json:"elements"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(must("snapshot -i --json")), &js); err != nil || !js.Success || len(js.Data.Elements) == 0 {
		t.Errorf("snapshot --json: %+v %v", js, err)
	}

	// cookies, storage, state save/load.
	must("cookies set flavour oatmeal")
	want("cookies", "flavour=oatmeal")
	must("storage local set theme dark")
	want("storage local theme", "dark")
	want("state save /workspace/state.json", "Saved 1 cookie(s) and 1 origin(s)")
	must("cookies clear")
	want("cookies", "no cookies")
	must("storage local clear")
	fails("storage local theme", `no key "theme"`)
	want("state load /workspace/state.json", "Loaded 1 cookie(s)")
	want("cookies", "flavour=oatmeal")
	want("storage local theme", "dark")
	fails("state load /workspace/nope.json", "does not exist")

	// history.
	must("open http://web:8000/login")
	want("back", "/kitchen")
	want("forward", "/login")
	want("reload", "/login")
	fails("open file:///etc/passwd", "file:// URLs are not opened")
	want("help", "snapshot")

	// --proxy restarts the browser with the proxy, which then sticks: the
	// fixture server answers absolute-URI (proxy) requests by their path.
	want("--proxy http://web:8000 open http://through-the-proxy.test/login", "Title: Login")
	want("open http://still-proxied.test/welcome?email=p", "Title: Welcome")
	want("--proxy off open http://web:8000/login", "Title: Login")
	fails("open http://through-the-proxy.test/login", "could not open")
}

// TestRefusesRoot: Chromium runs without its own sandbox, so Gull never runs
// as root.
func TestRefusesRoot(t *testing.T) {
	requireE2E(t)
	env := NewEnv(t)
	code, logs := env.RunToExit(t, "0:0")
	if code == 0 || !strings.Contains(logs, "refuses to run as root") {
		t.Errorf("gull as root: exit %d, logs %s", code, logs)
	}
}
