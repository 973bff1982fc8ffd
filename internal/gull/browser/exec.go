package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/shipyard/shipyard/internal/gull/command"
)

// Result is the outcome of one command line.
type Result struct {
	Stdout   string
	Stderr   string
	ExitCode int
}

// out is what a command produces: text for people and agents, data for --json.
type out struct {
	text string
	data any
}

// Exec parses and runs one command line within timeout. It never returns an
// error: failures are a non-zero exit code and a stderr that says what to do.
func (m *Manager) Exec(ctx context.Context, line, sandboxID string, timeout time.Duration) Result {
	l, err := command.Parse(line)
	if err != nil {
		if words, werr := command.Split(line); werr == nil && slices.Contains(words, "--json") {
			b, _ := json.Marshal(map[string]any{"success": false, "error": err.Error()})
			return Result{Stdout: string(b), ExitCode: command.ExitUsage}
		}
		return Result{Stderr: "Error: " + err.Error(), ExitCode: command.ExitUsage}
	}
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := m.acquire(ctx); err != nil {
		return Result{Stderr: fmt.Sprintf("%v (timeout %s). Wait for it or raise the timeout", err, fmtDur(timeout)), ExitCode: command.ExitTimeout}
	}
	defer m.release()
	m.bind(sandboxID)
	if l.Name == "help" {
		return finish(l, out{text: help(l.Arg(0))}, nil, timeout)
	}
	if l.Name == "close" {
		m.stop()
		return finish(l, out{text: "Browser closed. The next command starts it again; cookies and storage are kept in the profile."}, nil, timeout)
	}
	sess, restarted, err := m.ensure(ctx, l.Proxy)
	if err != nil {
		if ctx.Err() != nil {
			return finish(l, out{}, timeoutErr(l, timeout, err), timeout)
		}
		return finish(l, out{}, userf("the browser could not start: %v. Try the command again; if it keeps failing, the container may be out of memory or processes", err), timeout)
	}
	o, err := sess.run(ctx, l, timeout)
	if err != nil && m.died() {
		// The browser died under the command: say so; the next call restarts it.
		err = userf("the browser process ended during `%s` (crashed or killed, e.g. out of memory): %v. Run the command again: the browser is restarted, open pages are lost, cookies are kept", l.Name, err)
	}
	if restarted && err == nil {
		o.text = "(the browser had stopped and was restarted; open pages were lost, cookies are kept)\n" + o.text
	}
	if err != nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)) {
		var te *timeoutError
		if !errors.As(err, &te) {
			err = timeoutErr(l, timeout, err)
		}
		// A page busy in a script (while(true){}) would hang every later
		// command: stop its script.
		if t, terr := sess.current(); terr == nil && !t.isCrashed() {
			sess.unblock()
		}
	}
	res := finish(l, o, err, timeout)
	if len(res.Stdout) > m.cfg.MaxOutputBytes {
		cut := m.cfg.MaxOutputBytes
		for cut > 0 && !utf8.RuneStart(res.Stdout[cut]) {
			cut--
		}
		res.Stdout = res.Stdout[:cut] + fmt.Sprintf("\n[output truncated at %d bytes; narrow it, e.g. snapshot -i or snapshot -s \"<css>\"]", m.cfg.MaxOutputBytes)
	}
	return res
}

// died reports whether the browser process is gone.
func (m *Manager) died() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bctx != nil && m.bctx.Err() != nil
}

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }

func timeoutErr(l command.Line, timeout time.Duration, cause error) error {
	_ = cause
	switch l.Name {
	case "open", "back", "forward", "reload":
		return &timeoutError{msg: fmt.Sprintf("timed out after %s waiting for the page to load (`%s`); loading was stopped. The server may be slow or not answering: check with `get url` / `snapshot -i`, or call again with a larger timeout", fmtDur(timeout), l.Name)}
	case "eval":
		return &timeoutError{msg: fmt.Sprintf("timed out after %s running the script; it was stopped. Make it finish sooner (an endless loop never returns), or call again with a larger timeout", fmtDur(timeout))}
	}
	return &timeoutError{msg: fmt.Sprintf("timed out after %s (`%s`); a script that kept the page busy was stopped. Check the page with `snapshot -i`, or call again with a larger timeout", fmtDur(timeout), l.Name)}
}

func fmtDur(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int(d/time.Second))
	}
	return d.String()
}

func finish(l command.Line, o out, err error, _ time.Duration) Result {
	code := command.ExitOK
	if err != nil {
		code = command.ExitFailed
		var te *timeoutError
		if errors.As(err, &te) {
			code = command.ExitTimeout
		}
	}
	if l.JSON {
		v := map[string]any{"success": err == nil}
		if err != nil {
			v["error"] = err.Error()
		} else {
			v["data"] = o.data
			if o.data == nil {
				v["data"] = map[string]any{"text": strings.TrimRight(o.text, "\n")}
			}
		}
		b, _ := json.Marshal(v)
		return Result{Stdout: string(b), ExitCode: code}
	}
	if err != nil {
		return Result{Stdout: strings.TrimRight(o.text, "\n"), Stderr: "Error: " + err.Error(), ExitCode: code}
	}
	return Result{Stdout: strings.TrimRight(o.text, "\n"), ExitCode: code}
}

// current returns the current tab, adopting tabs the page opened meanwhile.
func (s *session) current() (*tab, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tabs) == 0 {
		return nil, userf("no tab is open. Run `tab new [url]` or `open <url>`")
	}
	if s.cur >= len(s.tabs) {
		s.cur = len(s.tabs) - 1
	}
	return s.tabs[s.cur], nil
}

// tabCtx gives a context bound to the tab and to the call's deadline.
func tabCtx(call context.Context, t *tab) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.ctx)
	if d, ok := call.Deadline(); ok {
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, d)
		prev := cancel
		cancel = func() { c2(); prev() }
	}
	stop := context.AfterFunc(call, cancel)
	return ctx, func() { stop(); cancel() }
}

// run executes a parsed command on the session.
func (s *session) run(call context.Context, l command.Line, timeout time.Duration) (out, error) {
	if l.Name == "open" && s.noTabs() {
		if err := s.newTab(call, ""); err != nil {
			return out{}, err
		}
	}
	switch l.Name {
	case "tab", "window":
		return s.tabCmd(call, l)
	}
	t, err := s.current()
	if err != nil {
		return out{}, err
	}
	ctx, cancel := tabCtx(call, t)
	defer cancel()
	if t.isCrashed() && l.Name != "open" {
		// The page's renderer died (out of memory, killed): Chromium lives,
		// but the tab answers nothing until it loads a page again.
		o, err := s.reloadCrashed(ctx, t, l, timeout)
		if err != nil {
			return out{}, err
		}
		if o != nil {
			return *o, nil
		}
	}
	switch l.Name {
	case "open":
		return s.open(ctx, t, l.Arg(0))
	case "back", "forward", "reload":
		return s.history(ctx, t, l.Name)
	case "snapshot":
		return s.snapshot(ctx, t, l)
	case "click", "dblclick", "hover", "focus", "check", "uncheck", "scrollintoview", "fill", "type", "select", "upload":
		el, err := s.resolveTarget(ctx, t, l.Arg(0))
		if err != nil {
			return out{}, err
		}
		return s.act(ctx, t, el, l.Name, l.Args[1:])
	case "drag":
		return s.drag(ctx, t, l.Arg(0), l.Arg(1))
	case "press":
		return s.press(ctx, t, l.Arg(0))
	case "scroll":
		return s.scroll(ctx, l)
	case "get":
		return s.get(ctx, t, l)
	case "is":
		return s.is(ctx, t, l)
	case "wait":
		return s.wait(ctx, t, l, timeout)
	case "screenshot":
		return s.screenshot(ctx, l)
	case "pdf":
		return s.pdf(ctx, l.Arg(0))
	case "eval":
		return s.eval(ctx, strings.Join(l.Args, " "))
	case "find":
		return s.find(ctx, t, l)
	case "frame":
		return s.frameCmd(ctx, l.Arg(0))
	case "dialog":
		return s.dialog(l)
	case "cookies":
		return s.cookies(ctx, t, l)
	case "storage":
		return s.storage(ctx, l)
	case "network":
		return s.network(ctx, t, l)
	case "state":
		return s.state(ctx, t, l)
	}
	return out{}, userf("command %q is not implemented", l.Name)
}

func (s *session) noTabs() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tabs) == 0
}

// pageInfo returns the title and URL of the tab ("" when the page does not
// answer: it is for messages; `get title` and `get url` report errors).
func pageInfo(ctx context.Context) (string, string) {
	v, err := evalValue[[2]string](ctx, `[document.title, location.href]`)
	if err != nil {
		return "", ""
	}
	return v[0], v[1]
}

// evalValue evaluates a JS expression in the page and decodes the result.
func evalValue[T any](ctx context.Context, expr string) (T, error) {
	var zero T
	res, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (json.RawMessage, error) {
		r, err := evaluate(ctx, t, expr)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(r), nil
	})
	if err != nil {
		return zero, err
	}
	var v T
	if len(res) == 0 {
		return zero, nil
	}
	if err := json.Unmarshal(res, &v); err != nil {
		return zero, fmt.Errorf("decode the page's answer: %w", err)
	}
	return v, nil
}

// waitLoaded waits, after an action, for a navigation it started (if any)
// to load, so the next command sees the new page. A navigation that has not
// started within settle is not waited for.
func waitLoaded(ctx context.Context, t *tab, before cdp.LoaderID, settle time.Duration) (navigated bool, err error) {
	timer := time.NewTimer(settle)
	defer timer.Stop()
	for {
		loader, _, loading, changed := t.state()
		if loader != before && !loading {
			return true, nil
		}
		if !loading && loader == before {
			select {
			case <-timer.C:
				return false, nil
			case <-changed:
				continue
			case <-ctx.Done():
				return false, ctx.Err()
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return loader != before, ctx.Err()
		}
	}
}

func help(name string) string {
	if name != "" {
		if u := command.Usage(name); u != "" {
			return u
		}
		return fmt.Sprintf("unknown command %q", name)
	}
	var b strings.Builder
	b.WriteString("Browser commands (one per call; words are split like a shell splits them, nothing else of a shell applies):\n")
	for _, n := range command.Names() {
		b.WriteString("  " + strings.SplitN(command.Usage(n), "\n", 2)[0] + "\n")
	}
	b.WriteString("Typical cadence: open <url> → snapshot -i → click/fill @eN → snapshot -i again after the page changes.")
	return b.String()
}

// ExecPath finds the Chromium binary: the first of the candidates that exists.
func ExecPath(candidates ...string) string {
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// pageAction helper for commands that only need Run with a Void.
func do(ctx context.Context, f func(ctx context.Context, t *chromedp.Target) error) error {
	_, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
		return cdp.Empty{}, f(ctx, t)
	})
	return err
}

// unblock ends a script that keeps the current page busy (after a timeout).
func (s *session) unblock() {
	t, err := s.current()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
	defer cancel()
	_ = do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tt, runtime.TerminateExecution, cdp.Empty{})
		return err
	})
}

// reloadCrashed reloads a tab whose renderer crashed, then runs the command; its
// output says what happened. It returns nil when the command is history
// navigation, which the caller runs as usual.
func (s *session) reloadCrashed(ctx context.Context, t *tab, l command.Line, timeout time.Duration) (*out, error) {
	before, u, _, _ := t.state()
	err := do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tt, page.Reload, page.ReloadParams{})
		return err
	})
	if err == nil {
		_, err = waitLoaded(ctx, t, before, 5*time.Second)
	}
	if err != nil || t.isCrashed() {
		return nil, userf("the page %s crashed (its renderer ended, e.g. out of memory) and could not be reloaded: open it again with `open <url>`", u)
	}
	if l.Name == "reload" {
		o, err := s.landed(ctx, "The page had crashed (e.g. out of memory) and was reloaded:")
		return &o, err
	}
	o, err := s.run(ctx, l, timeout)
	if err != nil {
		return nil, err
	}
	o.text = "(the page had crashed, e.g. out of memory, and was reloaded; refs from before are stale)\n" + o.text
	return &o, nil
}
