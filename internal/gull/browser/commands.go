package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/shipyard/shipyard/internal/gull/command"
)

// evaluate runs expr in the page's main world and returns its JSON value.
func evaluate(ctx context.Context, t *chromedp.Target, expr string) ([]byte, error) {
	res, err := cdp.Call(ctx, t, runtime.Evaluate, runtime.EvaluateParams{Expression: expr,
		ReturnByValue: ptr(true), AwaitPromise: ptr(true), UserGesture: ptr(true)})
	if err != nil {
		return nil, err
	}
	if res.ExceptionDetails != nil {
		return nil, userf("%s", exceptionText(res.ExceptionDetails))
	}
	if res.Result == nil {
		return nil, nil
	}
	if res.Result.Type == runtime.RemoteObjectTypeUndefined {
		return []byte("null"), nil
	}
	if res.Result.UnserializableValue != "" {
		return json.Marshal(string(res.Result.UnserializableValue))
	}
	return res.Result.Value, nil
}

// normalizeURL adds a scheme to a bare host ("web:8000/x" → http://…).
func normalizeURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	lower := strings.ToLower(raw)
	for _, p := range []string{"http://", "https://", "about:", "data:"} {
		if strings.HasPrefix(lower, p) {
			return raw, nil
		}
	}
	if strings.HasPrefix(lower, "file://") {
		return "", userf("file:// URLs are not opened (the browser's files are not the sandbox's API). Serve the file over HTTP from the sandbox, e.g. python3 -m http.server in the ship container")
	}
	if strings.Contains(raw, "://") {
		return "", userf("unsupported URL scheme in %q: use http:// or https://", raw)
	}
	host := raw
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	if strings.Contains(host, ":") || strings.HasPrefix(host, "localhost") || !strings.Contains(host, ".") {
		return "http://" + raw, nil
	}
	return "https://" + raw, nil
}

func (s *session) open(ctx context.Context, t *tab, raw string) (out, error) {
	u, err := normalizeURL(raw)
	if err != nil {
		return out{}, err
	}
	if _, err := url.Parse(u); err != nil {
		return out{}, userf("%q is not a valid URL: %v", raw, err)
	}
	err = do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
		_, err := chromedp.Navigate(u)(ctx, tt)
		return err
	})
	if err != nil {
		var le *chromedp.LoadError
		if errors.As(err, &le) {
			return out{}, userf("could not open %s: %s. Check the address; other containers of the sandbox are reached by name (e.g. http://ship:8000)", u, le.ErrorText)
		}
		if ctx.Err() != nil {
			stopLoading(t)
		}
		return out{}, err
	}
	return s.landed(ctx, "Opened")
}

func stopLoading(t *tab) {
	ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
	defer cancel()
	_ = do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tt, page.StopLoading, cdp.Empty{})
		return err
	})
}

func (s *session) landed(ctx context.Context, verb string) (out, error) {
	title, u := pageInfo(ctx)
	return out{text: fmt.Sprintf("%s %s\nTitle: %s\nRun `snapshot -i` to see the page's interactive elements.", verb, u, title),
		data: map[string]any{"url": u, "title": title}}, nil
}

func (s *session) history(ctx context.Context, t *tab, which string) (out, error) {
	before, _, _, _ := t.state()
	var err error
	switch which {
	case "back", "forward":
		err = do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
			h, err := cdp.Call(ctx, tt, page.GetNavigationHistory, cdp.Empty{})
			if err != nil {
				return err
			}
			i := h.CurrentIndex - 1
			if which == "forward" {
				i = h.CurrentIndex + 1
			}
			if i < 0 || i >= int64(len(h.Entries)) {
				return userf("there is no page to go %s to in this tab's history", which)
			}
			_, err = cdp.Call(ctx, tt, page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: h.Entries[i].ID})
			return err
		})
	case "reload":
		err = do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
			_, err := cdp.Call(ctx, tt, page.Reload, page.ReloadParams{})
			return err
		})
	}
	if err != nil {
		return out{}, err
	}
	if _, err := waitLoaded(ctx, t, before, 2*time.Second); err != nil {
		return out{}, err
	}
	verb := map[string]string{"back": "Went back to", "forward": "Went forward to", "reload": "Reloaded"}[which]
	return s.landed(ctx, verb)
}

func (s *session) snapshot(ctx context.Context, t *tab, l command.Line) (out, error) {
	opts := snapshotOpts{interactive: l.Has("i"), cursor: l.Has("C"), compact: l.Has("c")}
	if l.Has("d") {
		opts.depth, _ = command.ParseInt(l.Flag("d"), 1, 1000)
	}
	if sel := l.Flag("s"); sel != "" {
		el, err := s.resolveTarget(ctx, t, sel)
		if err != nil {
			return out{}, err
		}
		opts.scope = el.backend
	}
	if ref := l.Arg(0); ref != "" {
		el, err := s.resolveRef(ctx, t, ref)
		if err != nil {
			return out{}, err
		}
		opts.scope = el.backend
	}
	s.mu.Lock()
	var frame cdp.FrameID
	if s.frame != nil {
		frame = s.frame.frameID
	}
	s.mu.Unlock()
	var clickable map[cdp.BackendNodeID]bool
	if opts.cursor {
		var err error
		if clickable, err = cursorInteractive(ctx); err != nil {
			return out{}, fmt.Errorf("find clickable elements: %w", err)
		}
	}
	root, err := fetchAXTree(ctx, frame, clickable)
	if err != nil {
		return out{}, err
	}
	loader, _, _, _ := t.state()
	s.mu.Lock()
	// Refs are stable for one document: a new snapshot of the same document
	// keeps the numbers elements already have and adds new ones.
	if s.refs.tab != t.id || s.refs.loader != loader || s.refs.entries == nil {
		s.refs.reset(t.id, loader)
	}
	text, items := render(root, opts, clickable, &s.refs)
	s.mu.Unlock()
	title, u := pageInfo(ctx)
	head := fmt.Sprintf("Page: %s\nURL: %s\n", title, u)
	if text == "" {
		text = "(no elements"
		if opts.interactive {
			text += "; no interactive ones: try `snapshot` without -i, or -C for clickable elements"
		}
		text += ")\n"
	}
	return out{text: head + "\n" + text, data: map[string]any{"title": title, "url": u, "elements": items}}, nil
}

// act performs an interaction on an element.
func (s *session) act(ctx context.Context, t *tab, el element, verb string, args []string) (out, error) {
	before, _, _, _ := t.state()
	var msg string
	switch verb {
	case "click", "dblclick":
		x, y, err := center(ctx, el)
		if err != nil {
			return out{}, err
		}
		n := 1
		if verb == "dblclick" {
			n = 2
		}
		if err := clickAt(ctx, x, y, n); err != nil {
			return out{}, err
		}
		msg = map[string]string{"click": "Clicked", "dblclick": "Double-clicked"}[verb] + " " + el.label
	case "hover":
		x, y, err := center(ctx, el)
		if err != nil {
			return out{}, err
		}
		if err := mouse(ctx, input.DispatchMouseEventParams{Type: input.DispatchMouseEventTypeMouseMoved, X: x, Y: y}); err != nil {
			return out{}, err
		}
		msg = "Hovered " + el.label
	case "focus":
		if err := focusEl(ctx, el); err != nil {
			return out{}, err
		}
		msg = "Focused " + el.label
	case "scrollintoview":
		if _, _, err := center(ctx, el); err != nil {
			return out{}, err
		}
		msg = "Scrolled " + el.label + " into view"
	case "check", "uncheck":
		want := verb == "check"
		st, err := callOn[*bool](ctx, el, `function(){ const c = this.checked ?? (this.getAttribute('aria-checked') === null ? null : this.getAttribute('aria-checked') === 'true'); return c }`)
		if err != nil {
			return out{}, err
		}
		if st == nil {
			return out{}, userf("%s is not a checkbox or radio button", el.label)
		}
		if *st != want {
			x, y, err := center(ctx, el)
			if err != nil {
				return out{}, err
			}
			if err := clickAt(ctx, x, y, 1); err != nil {
				return out{}, err
			}
			st, err = callOn[*bool](ctx, el, `function(){ return this.checked ?? (this.getAttribute('aria-checked') === 'true') }`)
			if err != nil {
				return out{}, err
			}
			if st == nil || *st != want {
				return out{}, userf("clicked %s but it is still %s (the page may block it)", el.label, map[bool]string{true: "checked", false: "unchecked"}[!want])
			}
		}
		msg = map[bool]string{true: "Checked ", false: "Unchecked "}[want] + el.label
	case "fill", "type":
		editable, err := callOn[bool](ctx, el, `function(){ return this.isContentEditable || ['INPUT','TEXTAREA','SELECT'].includes(this.tagName) }`)
		if err != nil {
			return out{}, err
		}
		if !editable {
			return out{}, userf("%s is not a text field (input, textarea or contenteditable). Pick a [textbox] ref from `snapshot -i`", el.label)
		}
		if err := focusEl(ctx, el); err != nil {
			return out{}, err
		}
		if verb == "fill" {
			if _, err := callOn[bool](ctx, el, `function(){ if (this.isContentEditable) { this.textContent = '' } else { this.select && this.select(); this.value = '' }
				this.dispatchEvent(new Event('input', {bubbles: true})); return true }`); err != nil {
				return out{}, err
			}
			if err := insertText(ctx, args[0]); err != nil {
				return out{}, err
			}
		} else {
			_, _ = callOn[bool](ctx, el, `function(){ try { const n = (this.value || '').length; this.setSelectionRange && this.setSelectionRange(n, n) } catch (e) {} return true }`)
			if err := do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
				_, err := chromedp.KeyEvent(args[0])(ctx, tt)
				return err
			}); err != nil {
				return out{}, err
			}
		}
		_, _ = callOn[bool](ctx, el, `function(){ this.dispatchEvent(new Event('change', {bubbles: true})); return true }`)
		msg = map[string]string{"fill": "Filled ", "type": "Typed into "}[verb] + el.label
	case "select":
		res, err := callOn[struct {
			OK       bool     `json:"ok"`
			Err      string   `json:"err"`
			Selected []string `json:"selected"`
			Options  []string `json:"options"`
		}](ctx, el, `function(want){ if (this.tagName !== 'SELECT') return {ok:false, err:'not a <select>'};
			const opts = Array.from(this.options); const names = opts.map(o => o.label || o.text);
			const hit = []; for (const w of want) { const o = opts.find(o => o.value === w || o.label === w || o.text.trim() === w); if (!o) return {ok:false, err:'no option '+JSON.stringify(w), options:names}; hit.push(o) }
			if (!this.multiple && hit.length > 1) return {ok:false, err:'the list takes one option', options:names};
			for (const o of opts) o.selected = hit.includes(o);
			this.dispatchEvent(new Event('input', {bubbles:true})); this.dispatchEvent(new Event('change', {bubbles:true}));
			return {ok:true, selected: hit.map(o => o.label || o.text)} }`, args)
		if err != nil {
			return out{}, err
		}
		if !res.OK {
			if len(res.Options) > 0 {
				return out{}, userf("cannot select in %s: %s. Its options: %s", el.label, res.Err, strings.Join(quoteAll(res.Options), ", "))
			}
			return out{}, userf("cannot select in %s: %s", el.label, res.Err)
		}
		msg = fmt.Sprintf("Selected %s in %s", strings.Join(quoteAll(res.Selected), ", "), el.label)
	case "upload":
		files := make([]string, 0, len(args))
		for _, a := range args {
			p, err := existingPath(s.cfg.Workspace, a)
			if err != nil {
				return out{}, err
			}
			files = append(files, p)
		}
		err := do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
			_, err := cdp.Call(ctx, tt, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: files, BackendNodeID: el.backend})
			return err
		})
		if err != nil {
			return out{}, userf("cannot upload to %s: %v (it must be an <input type=file>)", el.label, err)
		}
		msg = fmt.Sprintf("Set %d file(s) on %s", len(files), el.label)
	}
	return s.afterAction(ctx, t, before, msg)
}

// afterAction waits briefly for a navigation the action may have started and
// says whether the page changed (then the refs are stale).
func (s *session) afterAction(ctx context.Context, t *tab, before cdp.LoaderID, msg string) (out, error) {
	navigated, err := waitLoaded(ctx, t, before, 150*time.Millisecond)
	if err != nil && ctx.Err() != nil {
		return out{text: msg}, err
	}
	if navigated {
		title, u := pageInfo(ctx)
		return out{text: fmt.Sprintf("%s\nThe page changed: now %s (%s). Refs from earlier snapshots are stale: run `snapshot -i`.", msg, u, title),
			data: map[string]any{"message": msg, "navigated": true, "url": u, "title": title}}, nil
	}
	return out{text: msg, data: map[string]any{"message": msg, "navigated": false}}, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

func (s *session) drag(ctx context.Context, t *tab, from, to string) (out, error) {
	a, err := s.resolveTarget(ctx, t, from)
	if err != nil {
		return out{}, err
	}
	b, err := s.resolveTarget(ctx, t, to)
	if err != nil {
		return out{}, err
	}
	x1, y1, err := center(ctx, a)
	if err != nil {
		return out{}, err
	}
	x2, y2, err := center(ctx, b)
	if err != nil {
		return out{}, err
	}
	evs := []input.DispatchMouseEventParams{{Type: input.DispatchMouseEventTypeMouseMoved, X: x1, Y: y1},
		{Type: input.DispatchMouseEventTypeMousePressed, X: x1, Y: y1, Button: input.MouseButtonLeft, Buttons: 1, ClickCount: 1}}
	for i := 1; i <= 10; i++ {
		f := float64(i) / 10
		evs = append(evs, input.DispatchMouseEventParams{Type: input.DispatchMouseEventTypeMouseMoved, X: x1 + (x2-x1)*f, Y: y1 + (y2-y1)*f, Button: input.MouseButtonLeft, Buttons: 1})
	}
	evs = append(evs, input.DispatchMouseEventParams{Type: input.DispatchMouseEventTypeMouseReleased, X: x2, Y: y2, Button: input.MouseButtonLeft, ClickCount: 1})
	if err := mouse(ctx, evs...); err != nil {
		return out{}, err
	}
	return out{text: fmt.Sprintf("Dragged %s to %s", a.label, b.label)}, nil
}

// keyNames maps key names to chromedp's kb runes.
var keyNames = map[string]string{
	"enter": kb.Enter, "return": kb.Enter, "tab": kb.Tab, "escape": kb.Escape, "esc": kb.Escape,
	"backspace": kb.Backspace, "delete": kb.Delete, "space": " ", "arrowup": kb.ArrowUp, "arrowdown": kb.ArrowDown,
	"arrowleft": kb.ArrowLeft, "arrowright": kb.ArrowRight, "up": kb.ArrowUp, "down": kb.ArrowDown,
	"left": kb.ArrowLeft, "right": kb.ArrowRight, "home": kb.Home, "end": kb.End, "pageup": kb.PageUp,
	"pagedown": kb.PageDown, "insert": kb.Insert, "f1": kb.F1, "f2": kb.F2, "f3": kb.F3, "f4": kb.F4, "f5": kb.F5,
	"f6": kb.F6, "f7": kb.F7, "f8": kb.F8, "f9": kb.F9, "f10": kb.F10, "f11": kb.F11, "f12": kb.F12,
}

func (s *session) press(ctx context.Context, t *tab, combo string) (out, error) {
	parts := strings.Split(combo, "+")
	if strings.HasSuffix(combo, "++") || combo == "+" { // "Control++" presses '+'
		parts = append(strings.Split(strings.TrimSuffix(combo, "++"), "+"), "+")
	}
	var mods []chromedp.Modifier
	for _, m := range parts[:len(parts)-1] {
		switch strings.ToLower(m) {
		case "control", "ctrl":
			mods = append(mods, chromedp.ModifierCtrl)
		case "alt", "option":
			mods = append(mods, chromedp.ModifierAlt)
		case "shift":
			mods = append(mods, chromedp.ModifierShift)
		case "meta", "command", "cmd":
			mods = append(mods, chromedp.ModifierMeta)
		default:
			return out{}, userf("unknown modifier %q in %q: use Control, Alt, Shift or Meta, e.g. press Control+a", m, combo)
		}
	}
	key := parts[len(parts)-1]
	if k, ok := keyNames[strings.ToLower(key)]; ok {
		key = k
	} else if utf8Len(key) != 1 {
		return out{}, userf("unknown key %q: use a single character or a name such as Enter, Tab, Escape, Backspace, ArrowDown, PageDown, F5", key)
	}
	before, _, _, _ := t.state()
	err := do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
		_, err := chromedp.KeyEvent(key, chromedp.KeyModifiers(mods...))(ctx, tt)
		return err
	})
	if err != nil {
		return out{}, err
	}
	return s.afterAction(ctx, t, before, "Pressed "+combo)
}

func utf8Len(s string) int { return len([]rune(s)) }

func (s *session) scroll(ctx context.Context, l command.Line) (out, error) {
	px := 300
	if l.Arg(1) != "" {
		px, _ = command.ParseInt(l.Arg(1), 1, 1_000_000)
	}
	var dx, dy float64
	switch l.Arg(0) {
	case "up":
		dy = -float64(px)
	case "down":
		dy = float64(px)
	case "left":
		dx = -float64(px)
	case "right":
		dx = float64(px)
	}
	// Scroll what a wheel at the middle of the viewport would scroll: the
	// nearest scrollable ancestor of the element there, else the page.
	// (CDP's mouseWheel event rejects a zero delta, which one axis always has.)
	js := fmt.Sprintf(`(() => { const dx = %g, dy = %g; let e = document.elementFromPoint(innerWidth / 2, innerHeight / 2);
		for (; e && e !== document.body && e !== document.documentElement; e = e.parentElement) {
			const st = getComputedStyle(e); const can = (st.overflowY === 'auto' || st.overflowY === 'scroll' || st.overflowX === 'auto' || st.overflowX === 'scroll');
			if (can && ((dy && e.scrollHeight > e.clientHeight) || (dx && e.scrollWidth > e.clientWidth))) { e.scrollBy(dx, dy); return true } }
		window.scrollBy(dx, dy); return true })()`, dx, dy)
	if _, err := evalValue[bool](ctx, js); err != nil {
		return out{}, err
	}
	pos, _ := evalValue[[2]float64](ctx, `[scrollX, scrollY]`)
	return out{text: fmt.Sprintf("Scrolled %s %dpx (page now at x=%.0f, y=%.0f)", l.Arg(0), px, pos[0], pos[1])}, nil
}

func (s *session) get(ctx context.Context, t *tab, l command.Line) (out, error) {
	switch l.Sub {
	case "title", "url":
		v, err := evalValue[string](ctx, map[string]string{"title": "document.title", "url": "location.href"}[l.Sub])
		if err != nil {
			return out{}, err
		}
		return out{text: v, data: map[string]any{l.Sub: v}}, nil
	case "count":
		els, err := s.queryAll(ctx, `(sel) => Array.from(document.querySelectorAll(sel))`, l.Arg(0))
		if err != nil {
			return out{}, err
		}
		return out{text: strconv.Itoa(len(els)), data: map[string]any{"count": len(els)}}, nil
	}
	target := l.Arg(0)
	if target == "body" || target == "page" {
		target = "body"
	}
	el, err := s.resolveTarget(ctx, t, target)
	if err != nil {
		return out{}, err
	}
	var fn string
	var args []any
	switch l.Sub {
	case "text":
		fn = `function(){ return this.innerText ?? this.textContent ?? '' }`
	case "html":
		fn = `function(){ return this.outerHTML }`
	case "value":
		fn = `function(){ return this.value ?? this.getAttribute('value') ?? '' }`
	case "attr":
		fn, args = `function(n){ return this.getAttribute(n) }`, []any{l.Arg(1)}
	case "box":
		fn = `function(){ const r = this.getBoundingClientRect(); return JSON.stringify({x: Math.round(r.x), y: Math.round(r.y), width: Math.round(r.width), height: Math.round(r.height)}) }`
	case "styles":
		fn = `function(){ const s = getComputedStyle(this); const o = {}; for (const k of ['display','visibility','opacity','color','background-color','font-family','font-size','font-weight','position','width','height','cursor']) o[k] = s.getPropertyValue(k); return JSON.stringify(o) }`
	}
	v, err := callOn[*string](ctx, el, fn, args...)
	if err != nil {
		return out{}, err
	}
	if v == nil {
		if l.Sub == "attr" {
			return out{}, userf("%s has no attribute %q", el.label, l.Arg(1))
		}
		return out{text: "", data: map[string]any{l.Sub: nil}}, nil
	}
	var data any = map[string]any{l.Sub: *v}
	if l.Sub == "box" || l.Sub == "styles" {
		var m map[string]any
		if json.Unmarshal([]byte(*v), &m) == nil {
			data = m
		}
	}
	return out{text: *v, data: data}, nil
}

func (s *session) is(ctx context.Context, t *tab, l command.Line) (out, error) {
	el, err := s.resolveTarget(ctx, t, l.Arg(0))
	if err != nil {
		return out{}, err
	}
	fn := map[string]string{
		"visible": `function(){ const r = this.getBoundingClientRect(); const s = getComputedStyle(this); return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none' && s.opacity !== '0' }`,
		"enabled": `function(){ return !(this.disabled || this.getAttribute('aria-disabled') === 'true' || this.closest('fieldset:disabled')) }`,
		"checked": `function(){ return !!(this.checked ?? (this.getAttribute('aria-checked') === 'true')) }`,
	}[l.Sub]
	v, err := callOn[bool](ctx, el, fn)
	if err != nil {
		return out{}, err
	}
	return out{text: strconv.FormatBool(v), data: map[string]any{l.Sub: v}}, nil
}

func (s *session) wait(ctx context.Context, t *tab, l command.Line, timeout time.Duration) (out, error) {
	if n, err := command.ParseInt(l.Arg(0), 0, 24*3600*1000); err == nil {
		d := time.Duration(n) * time.Millisecond
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return out{}, &timeoutError{msg: fmt.Sprintf("wait %d ms is longer than the time this call has left (timeout %s). Wait less, or call with a larger timeout", n, fmtDur(timeout))}
		}
		select {
		case <-time.After(d):
			return out{text: fmt.Sprintf("Waited %d ms", n)}, nil
		case <-ctx.Done():
			return out{}, ctx.Err()
		}
	}
	var cond func() (bool, error)
	var what string
	switch {
	case l.Arg(0) != "":
		target := l.Arg(0)
		what = target + " to be visible"
		cond = func() (bool, error) {
			el, err := s.resolveTarget(ctx, t, target)
			if err != nil {
				if errors.Is(err, ErrStaleRef) || strings.Contains(err.Error(), "JavaScript error") || strings.Contains(err.Error(), "unknown ref") {
					return false, err // a stale/unknown ref or a bad selector never matches
				}
				return false, nil
			}
			return callOn[bool](ctx, el, `function(){ const r = this.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(this).visibility !== 'hidden' }`)
		}
	case l.Has("load"):
		state := l.Flag("load")
		what = "load state " + state
		ev := map[string]string{"load": "load", "domcontentloaded": "DOMContentLoaded", "networkidle": "networkIdle"}[state]
		cond = func() (bool, error) {
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.loaderID == "" || t.url == "about:blank" {
				return true, nil
			}
			return t.lifecycle[ev] || (ev != "networkIdle" && !t.loading && t.lifecycle["load"]), nil
		}
	case l.Has("url"):
		re, err := globRegexp(l.Flag("url"))
		if err != nil {
			return out{}, userf("bad URL pattern: %v", err)
		}
		what = "the URL to match " + strconv.Quote(l.Flag("url"))
		cond = func() (bool, error) {
			_, u, loading, _ := t.state()
			return !loading && re.MatchString(u), nil
		}
	case l.Has("text"):
		text := l.Flag("text")
		what = "the text " + strconv.Quote(text)
		cond = func() (bool, error) {
			return evalValue[bool](ctx, `!!document.body && document.body.innerText.includes(`+jsString(text)+`)`)
		}
	case l.Has("fn"):
		expr := l.Flag("fn")
		what = "the expression to be true"
		cond = func() (bool, error) {
			return evalValue[bool](ctx, `!!(`+expr+`)`)
		}
	}
	t0 := time.Now()
	for {
		ok, err := cond()
		if err != nil {
			var ue *userError
			if errors.As(err, &ue) || errors.Is(err, ErrStaleRef) {
				return out{}, err
			}
		}
		if ok {
			return out{text: fmt.Sprintf("Done waiting for %s (%d ms)", what, time.Since(t0).Milliseconds())}, nil
		}
		_, _, _, changed := t.state()
		select {
		case <-ctx.Done():
			return out{}, &timeoutError{msg: fmt.Sprintf("timed out after %s waiting for %s. Check the page with `snapshot -i` or `get url`, or call again with a larger timeout", fmtDur(timeout), what)}
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *session) screenshot(ctx context.Context, l command.Line) (out, error) {
	p := l.Arg(0)
	if p == "" {
		p = fmt.Sprintf("screenshot-%s.png", time.Now().UTC().Format("20060102-150405.000"))
	}
	full := l.Has("full")
	data, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		params := page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng}
		if full {
			m, err := cdp.Call(ctx, t, page.GetLayoutMetrics, cdp.Empty{})
			if err != nil {
				return nil, err
			}
			if m.CSSContentSize != nil {
				params.Clip = &page.Viewport{X: 0, Y: 0, Width: m.CSSContentSize.Width, Height: min(m.CSSContentSize.Height, 16384), Scale: 1}
				params.CaptureBeyondViewport = ptr(true)
			}
		}
		r, err := cdp.Call(ctx, t, page.CaptureScreenshot, params)
		return r.Data, err
	})
	if err != nil {
		return out{}, err
	}
	abs, err := writeWorkspaceFile(s.cfg.Workspace, p, data)
	if err != nil {
		return out{}, err
	}
	return out{text: fmt.Sprintf("Screenshot saved to %s (%d bytes)", abs, len(data)), data: map[string]any{"path": abs, "bytes": len(data)}}, nil
}

func (s *session) pdf(ctx context.Context, p string) (out, error) {
	data, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		r, err := cdp.Call(ctx, t, page.PrintToPDF, page.PrintToPDFParams{PrintBackground: ptr(true)})
		return r.Data, err
	})
	if err != nil {
		return out{}, err
	}
	abs, err := writeWorkspaceFile(s.cfg.Workspace, p, data)
	if err != nil {
		return out{}, err
	}
	return out{text: fmt.Sprintf("PDF saved to %s (%d bytes)", abs, len(data)), data: map[string]any{"path": abs, "bytes": len(data)}}, nil
}

func (s *session) eval(ctx context.Context, expr string) (out, error) {
	raw, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) { return evaluate(ctx, t, expr) })
	if err != nil {
		return out{}, err
	}
	var v any
	_ = json.Unmarshal(raw, &v)
	if str, ok := v.(string); ok {
		return out{text: str, data: map[string]any{"result": v}}, nil
	}
	return out{text: string(raw), data: map[string]any{"result": v}}, nil
}

// find locates an element semantically and performs an action on it.
func (s *session) find(ctx context.Context, t *tab, l command.Line) (out, error) {
	var els []element
	var err error
	var what string
	args := l.Args
	exact := l.Has("exact")
	switch l.Sub {
	case "role":
		what = "role " + args[0]
		if n := l.Flag("name"); n != "" {
			what += " named " + strconv.Quote(n)
		}
		els, err = s.findRole(ctx, args[0], l.Flag("name"), exact)
		args = args[1:]
	case "nth":
		n, _ := command.ParseInt(args[0], -1_000_000, 1_000_000)
		what = fmt.Sprintf("element %d of %q", n, args[1])
		all, qerr := s.queryAll(ctx, `(sel) => Array.from(document.querySelectorAll(sel))`, args[1])
		if n < 0 {
			n += len(all)
		}
		if qerr == nil && n >= 0 && n < len(all) {
			els = all[n : n+1]
		}
		err = qerr
		args = args[2:]
	default:
		q := args[0]
		what = l.Sub + " " + strconv.Quote(q)
		js := map[string]string{
			"text": `(q, exact) => { const norm = s => (s || '').replace(/\s+/g, ' ').trim(); const low = s => norm(s).toLowerCase();
				const all = Array.from(document.querySelectorAll('body, body *')).filter(e => e.offsetParent !== null || e.tagName === 'BODY');
				const hit = all.filter(e => exact ? norm(e.innerText) === q : low(e.innerText).includes(low(q)));
				return hit.filter(e => !hit.some(o => o !== e && e.contains(o))) }`,
			"label": `(q, exact) => { const m = s => exact ? (s || '').trim() === q : (s || '').toLowerCase().includes(q.toLowerCase()); const out = [];
				for (const l of document.querySelectorAll('label')) if (m(l.innerText) && l.control) out.push(l.control);
				for (const e of document.querySelectorAll('[aria-label]')) if (m(e.getAttribute('aria-label'))) out.push(e);
				for (const e of document.querySelectorAll('[aria-labelledby]')) { const t = e.getAttribute('aria-labelledby').split(/\s+/).map(id => document.getElementById(id)?.innerText || '').join(' '); if (m(t)) out.push(e) }
				return [...new Set(out)] }`,
			"placeholder": `(q, exact) => Array.from(document.querySelectorAll('[placeholder]')).filter(e => exact ? e.placeholder === q : e.placeholder.toLowerCase().includes(q.toLowerCase()))`,
			"testid":      `(q) => Array.from(document.querySelectorAll('[data-testid]')).filter(e => e.getAttribute('data-testid') === q)`,
			"alt":         `(q, exact) => Array.from(document.querySelectorAll('[alt]')).filter(e => exact ? e.alt === q : e.alt.toLowerCase().includes(q.toLowerCase()))`,
			"title":       `(q, exact) => Array.from(document.querySelectorAll('[title]')).filter(e => exact ? e.title === q : e.title.toLowerCase().includes(q.toLowerCase()))`,
			"first":       `(q) => { const e = document.querySelector(q); return e ? [e] : [] }`,
			"last":        `(q) => { const a = document.querySelectorAll(q); return a.length ? [a[a.length - 1]] : [] }`,
		}[l.Sub]
		els, err = s.queryAll(ctx, js, q, exact)
		args = args[1:]
	}
	if err != nil {
		return out{}, err
	}
	if len(els) == 0 {
		return out{}, userf("no element found for %s. Check the page with `snapshot -i` (names are matched ignoring case unless --exact)", what)
	}
	el := els[0]
	el.label = what
	action := args[0]
	rest := args[1:]
	switch action {
	case "click", "dblclick", "hover", "focus", "check", "uncheck", "scrollintoview":
		return s.act(ctx, t, el, action, nil)
	case "fill", "type", "select":
		if len(rest) == 0 {
			return out{}, userf("find ... %s needs a value, e.g. find label \"Email\" fill \"a@b.c\"", action)
		}
		return s.act(ctx, t, el, action, rest)
	case "text":
		v, err := callOn[string](ctx, el, `function(){ return this.innerText ?? this.textContent ?? '' }`)
		return out{text: v, data: map[string]any{"text": v}}, err
	case "count":
		return out{text: strconv.Itoa(len(els)), data: map[string]any{"count": len(els)}}, nil
	}
	return out{}, userf("unknown action %q for find: use click, dblclick, hover, focus, check, uncheck, fill, type, select, text or count", action)
}

// findRole searches the accessibility tree by role and (optional) name.
func (s *session) findRole(ctx context.Context, role, name string, exact bool) ([]element, error) {
	res, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (accessibility.QueryAXTreeResult, error) {
		doc, err := cdp.Call(ctx, t, dom.GetDocument, dom.GetDocumentParams{Depth: ptr(int64(0))})
		if err != nil {
			return accessibility.QueryAXTreeResult{}, err
		}
		p := accessibility.QueryAXTreeParams{BackendNodeID: doc.Root.BackendNodeID, Role: role}
		if exact && name != "" {
			p.AccessibleName = name
		}
		return cdp.Call(ctx, t, accessibility.QueryAXTree, p)
	})
	if err != nil {
		return nil, err
	}
	var els []element
	for _, n := range res.Nodes {
		if n.Ignored || n.BackendDOMNodeID == 0 {
			continue
		}
		if name != "" && !exact && !strings.Contains(strings.ToLower(axString(n.Name)), strings.ToLower(name)) {
			continue
		}
		els = append(els, element{backend: n.BackendDOMNodeID})
	}
	return els, nil
}

func (s *session) frameCmd(ctx context.Context, sel string) (out, error) {
	if sel == "main" {
		s.mu.Lock()
		s.frame = nil
		s.mu.Unlock()
		return out{text: "Commands now act on the main page"}, nil
	}
	els, err := s.queryAll(ctx, `(sel) => Array.from(document.querySelectorAll(sel)).filter(e => e.tagName === 'IFRAME' || e.tagName === 'FRAME')`, sel)
	if err != nil {
		return out{}, err
	}
	if len(els) == 0 {
		return out{}, userf("no iframe matches %q", sel)
	}
	node, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (*cdp.Node, error) {
		d, err := cdp.Call(ctx, t, dom.DescribeNode, dom.DescribeNodeParams{BackendNodeID: els[0].backend})
		return d.Node, err
	})
	if err != nil || node == nil || node.FrameID == "" {
		return out{}, userf("the iframe %q has no frame (not loaded yet, or cross-origin, which is not supported)", sel)
	}
	s.mu.Lock()
	s.frame = &frameScope{selector: sel, frameID: node.FrameID}
	s.mu.Unlock()
	return out{text: fmt.Sprintf("Commands now act inside the frame %q (snapshot, find, get count; `frame main` to leave)", sel)}, nil
}

func (s *session) dialog(l command.Line) (out, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch l.Sub {
	case "accept":
		s.dialogAccept, s.dialogText = ptr(true), l.Arg(0)
		return out{text: "The next dialog will be accepted" + map[bool]string{true: " with text " + strconv.Quote(l.Arg(0)), false: ""}[l.Arg(0) != ""] + ". " + s.lastDialogText()}, nil
	case "dismiss":
		s.dialogAccept, s.dialogText = ptr(false), ""
		return out{text: "The next dialog will be dismissed. " + s.lastDialogText()}, nil
	}
	return out{text: s.lastDialogText() + " Dialogs never block: alerts are accepted and confirm/prompt dismissed unless `dialog accept|dismiss` was given before."}, nil
}

func (s *session) lastDialogText() string {
	if s.lastDialog == "" {
		return "No dialog has opened yet."
	}
	return "Last: " + s.lastDialog + "."
}

func (s *session) cookies(ctx context.Context, t *tab, l command.Line) (out, error) {
	_, cur, _, _ := t.state()
	switch l.Sub {
	case "set":
		p := network.SetCookieParams{Name: l.Arg(0), Value: l.Arg(1), URL: l.Flag("url"), Domain: l.Flag("domain"), Path: l.Flag("path")}
		if p.URL == "" && p.Domain == "" {
			if !strings.HasPrefix(cur, "http") {
				return out{}, userf("no page is open to take the cookie's site from: open a page first or give --url http://host/")
			}
			p.URL = cur
		}
		if l.Has("secure") {
			p.Secure = ptr(true)
		}
		if l.Has("httponly") {
			p.HTTPOnly = ptr(true)
		}
		err := do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
			_, err := cdp.Call(ctx, tt, network.SetCookie, p)
			return err
		})
		if err != nil {
			return out{}, userf("the browser refused the cookie: %v", err)
		}
		return out{text: fmt.Sprintf("Cookie %s set", p.Name)}, nil
	case "clear":
		err := do(ctx, func(ctx context.Context, tt *chromedp.Target) error {
			_, err := cdp.Call(ctx, tt, network.ClearBrowserCookies, cdp.Empty{})
			return err
		})
		if err != nil {
			return out{}, err
		}
		return out{text: "All cookies cleared"}, nil
	}
	res, err := chromedp.Run(ctx, func(ctx context.Context, tt *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tt, network.GetCookies, network.GetCookiesParams{})
	})
	if err != nil {
		return out{}, err
	}
	if len(res.Cookies) == 0 {
		return out{text: "(no cookies for " + cur + ")", data: []any{}}, nil
	}
	var b strings.Builder
	data := make([]map[string]any, 0, len(res.Cookies))
	for _, c := range res.Cookies {
		fmt.Fprintf(&b, "%s=%s  (domain %s, path %s%s%s)\n", c.Name, c.Value, c.Domain, c.Path,
			map[bool]string{true: ", httpOnly"}[c.HTTPOnly], map[bool]string{true: ", secure"}[c.Secure])
		data = append(data, map[string]any{"name": c.Name, "value": c.Value, "domain": c.Domain, "path": c.Path,
			"httpOnly": c.HTTPOnly, "secure": c.Secure, "expires": c.Expires})
	}
	return out{text: b.String(), data: data}, nil
}

func (s *session) storage(ctx context.Context, l command.Line) (out, error) {
	area := map[string]string{"local": "localStorage", "session": "sessionStorage"}[l.Sub]
	var expr string
	switch l.Arg(0) {
	case "set":
		expr = fmt.Sprintf(`(%s.setItem(%s, %s), "Set " + %s)`, area, jsString(l.Arg(1)), jsString(l.Arg(2)), jsString(l.Arg(1)))
	case "clear":
		expr = fmt.Sprintf(`(%s.clear(), "Cleared %s")`, area, area)
	case "":
		expr = fmt.Sprintf(`JSON.stringify(Object.fromEntries(Object.entries(%s)), null, 1)`, area)
	default:
		expr = fmt.Sprintf(`%s.getItem(%s)`, area, jsString(l.Arg(0)))
	}
	v, err := evalValue[*string](ctx, expr)
	if err != nil {
		var ue *userError
		if errors.As(err, &ue) {
			return out{}, userf("%v (storage needs an http(s) page: open one first)", err)
		}
		return out{}, err
	}
	if v == nil {
		return out{}, userf("%s has no key %q", area, l.Arg(0))
	}
	return out{text: *v}, nil
}

func (s *session) network(ctx context.Context, t *tab, l command.Line) (out, error) {
	switch l.Sub {
	case "route":
		re, err := globRegexp(l.Arg(0))
		if err != nil {
			return out{}, userf("bad URL pattern: %v", err)
		}
		r := route{pattern: l.Arg(0), re: re, abort: l.Has("abort"), body: l.Flag("body"), status: 200, contentType: l.Flag("content-type")}
		if l.Has("status") {
			r.status, _ = command.ParseInt(l.Flag("status"), 100, 599)
		}
		if !r.abort && !l.Has("body") {
			r.body = ""
		}
		s.mu.Lock()
		s.routes = slices.DeleteFunc(s.routes, func(x route) bool { return x.pattern == r.pattern })
		s.routes = append(s.routes, r)
		s.mu.Unlock()
		if err := s.applyAll(ctx); err != nil {
			return out{}, err
		}
		what := "answered with the given body"
		if r.abort {
			what = "aborted"
		}
		return out{text: fmt.Sprintf("Requests matching %q are now %s", r.pattern, what)}, nil
	case "unroute":
		s.mu.Lock()
		n := len(s.routes)
		if p := l.Arg(0); p != "" {
			s.routes = slices.DeleteFunc(s.routes, func(x route) bool { return x.pattern == p })
		} else {
			s.routes = nil
		}
		n -= len(s.routes)
		s.mu.Unlock()
		if err := s.applyAll(ctx); err != nil {
			return out{}, err
		}
		return out{text: fmt.Sprintf("Removed %d route(s)", n)}, nil
	}
	s.mu.Lock()
	reqs := slices.Clone(s.requests)
	if l.Has("clear") {
		s.requests = nil
	}
	s.mu.Unlock()
	var b strings.Builder
	var data []map[string]any
	for _, r := range reqs {
		if f := l.Flag("filter"); f != "" && !strings.Contains(r.url, f) {
			continue
		}
		status := strconv.FormatInt(r.status, 10)
		if r.failed != "" {
			status = "failed: " + r.failed
		} else if r.status == 0 {
			status = "pending"
		}
		fmt.Fprintf(&b, "%s %s [%s] %s\n", r.method, r.url, strings.ToLower(r.rtype), status)
		data = append(data, map[string]any{"method": r.method, "url": r.url, "type": r.rtype, "status": r.status, "failed": r.failed})
	}
	if b.Len() == 0 {
		return out{text: "(no requests recorded)", data: []any{}}, nil
	}
	return out{text: b.String(), data: data}, nil
}

func (s *session) applyAll(ctx context.Context) error {
	s.mu.Lock()
	tabs := slices.Clone(s.tabs)
	s.mu.Unlock()
	for _, t := range tabs {
		tctx, cancel := tabCtx(ctx, t)
		err := s.applyRoutes(tctx, t)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// storageState is the file of `state save` (the shape Playwright uses).
type storageState struct {
	Cookies []*network.Cookie `json:"cookies"`
	Origins []originState     `json:"origins"`
}

type originState struct {
	Origin       string      `json:"origin"`
	LocalStorage []nameValue `json:"localStorage"`
}

type nameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (s *session) state(ctx context.Context, t *tab, l command.Line) (out, error) {
	b := chromedp.FromContext(ctx).Browser
	if l.Sub == "save" {
		res, err := cdp.Call(ctx, b, storage.GetCookies, storage.GetCookiesParams{})
		if err != nil {
			return out{}, err
		}
		st := storageState{Cookies: res.Cookies, Origins: []originState{}}
		if st.Cookies == nil {
			st.Cookies = []*network.Cookie{}
		}
		if items, err := evalValue[[][2]string](ctx, `location.origin.startsWith('http') ? Object.entries(localStorage) : []`); err == nil && len(items) > 0 {
			origin, _ := evalValue[string](ctx, `location.origin`)
			o := originState{Origin: origin}
			for _, kv := range items {
				o.LocalStorage = append(o.LocalStorage, nameValue{Name: kv[0], Value: kv[1]})
			}
			st.Origins = append(st.Origins, o)
		}
		data, _ := json.MarshalIndent(st, "", " ")
		abs, err := writeWorkspaceFile(s.cfg.Workspace, l.Arg(0), data)
		if err != nil {
			return out{}, err
		}
		return out{text: fmt.Sprintf("Saved %d cookie(s) and %d origin(s) of local storage to %s", len(st.Cookies), len(st.Origins), abs)}, nil
	}
	data, err := readWorkspaceFile(s.cfg.Workspace, l.Arg(0), 16<<20)
	if err != nil {
		return out{}, err
	}
	var st storageState
	if err := json.Unmarshal(data, &st); err != nil {
		return out{}, userf("%s is not a state file written by `state save`: %v", l.Arg(0), err)
	}
	params := make([]*network.CookieParam, 0, len(st.Cookies))
	for _, c := range st.Cookies {
		if c == nil {
			continue
		}
		p := &network.CookieParam{Name: c.Name, Value: c.Value, Domain: c.Domain, Path: c.Path, Secure: c.Secure, HTTPOnly: c.HTTPOnly, SameSite: c.SameSite}
		if !c.Session && c.Expires > 0 {
			p.Expires = cdp.TimeSinceEpoch(c.Expires)
		}
		params = append(params, p)
	}
	if len(params) > 0 {
		if _, err := cdp.Call(ctx, b, storage.SetCookies, storage.SetCookiesParams{Cookies: params}); err != nil {
			return out{}, userf("the browser refused the cookies: %v", err)
		}
	}
	origin, _ := evalValue[string](ctx, `location.origin`)
	applied, skipped := 0, 0
	for _, o := range st.Origins {
		if o.Origin != origin {
			skipped++
			continue
		}
		for _, kv := range o.LocalStorage {
			if _, err := evalValue[any](ctx, fmt.Sprintf(`localStorage.setItem(%s, %s)`, jsString(kv.Name), jsString(kv.Value))); err != nil {
				return out{}, err
			}
		}
		applied++
	}
	msg := fmt.Sprintf("Loaded %d cookie(s) and local storage of %d origin(s) from %s", len(params), applied, l.Arg(0))
	if skipped > 0 {
		msg += fmt.Sprintf("; %d origin(s) skipped: open a page of that origin and run `state load` again to restore its local storage", skipped)
	}
	return out{text: msg}, nil
}

// tabCmd lists, opens, selects and closes tabs.
func (s *session) tabCmd(call context.Context, l command.Line) (out, error) {
	if err := s.adoptTabs(call); err != nil {
		return out{}, err
	}
	switch {
	case l.Name == "window" || l.Sub == "new":
		if err := s.newTab(call, l.Arg(0)); err != nil {
			return out{}, err
		}
	case l.Sub == "select":
		n, _ := command.ParseInt(l.Arg(0), 0, 1_000_000)
		s.mu.Lock()
		if n >= len(s.tabs) {
			cnt := len(s.tabs)
			s.mu.Unlock()
			return out{}, userf("there is no tab %d (tabs are numbered 0..%d). Run `tab` to list them", n, cnt-1)
		}
		s.cur = n
		s.mu.Unlock()
	case l.Sub == "close":
		s.mu.Lock()
		n := s.cur
		if l.Arg(0) != "" {
			n, _ = command.ParseInt(l.Arg(0), 0, 1_000_000)
		}
		if n >= len(s.tabs) {
			s.mu.Unlock()
			return out{}, userf("there is no tab %d. Run `tab` to list them", n)
		}
		t := s.tabs[n]
		s.tabs = slices.Delete(s.tabs, n, n+1)
		if s.cur >= len(s.tabs) {
			s.cur = max(0, len(s.tabs)-1)
		}
		s.mu.Unlock()
		t.stopWorkers()
		b := chromedp.FromContext(s.bctx).Browser
		cctx, cancel := context.WithTimeout(call, 5*time.Second)
		_, _ = cdp.Call(cctx, b, target.CloseTarget, target.CloseTargetParams{TargetID: t.id})
		cancel()
		if t.cancel != nil {
			t.cancel()
		}
	}
	return s.listTabs(call)
}

func (s *session) listTabs(call context.Context) (out, error) {
	s.mu.Lock()
	tabs := slices.Clone(s.tabs)
	cur := s.cur
	s.mu.Unlock()
	var b strings.Builder
	var data []map[string]any
	for i, t := range tabs {
		ctx, cancel := tabCtx(call, t)
		ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
		title, u := pageInfo(ictx)
		icancel()
		cancel()
		mark := " "
		if i == cur {
			mark = "*"
		}
		fmt.Fprintf(&b, "%s %d: %s  %s\n", mark, i, title, u)
		data = append(data, map[string]any{"index": i, "title": title, "url": u, "current": i == cur})
	}
	if len(tabs) == 0 {
		return out{text: "(no tabs; `tab new [url]` opens one)"}, nil
	}
	s.mu.Lock()
	closed := s.closedTabs
	s.closedTabs = 0
	s.mu.Unlock()
	if closed > 0 {
		fmt.Fprintf(&b, "(%d tab(s) the page opened were closed: at most %d tabs are kept)\n", closed, maxTabs)
	}
	return out{text: b.String() + "(* = current tab; `tab <n>` switches)", data: data}, nil
}

// newTab opens a tab, makes it current and navigates it if url is given.
func (s *session) newTab(call context.Context, u string) error {
	s.mu.Lock()
	n := len(s.tabs)
	s.mu.Unlock()
	if n >= maxTabs {
		return userf("%d tabs are open, the most a sandbox's browser keeps: close one with `tab close <n>` first", n)
	}
	ctx, cancel := chromedp.NewContext(s.bctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		return fmt.Errorf("open a tab: %w", err)
	}
	t, err := s.attach(ctx, cancel, chromedp.FromContext(ctx).Target.TargetID)
	if err != nil {
		cancel()
		return err
	}
	s.mu.Lock()
	s.tabs = append(s.tabs, t)
	s.cur = len(s.tabs) - 1
	s.mu.Unlock()
	if u != "" {
		tctx, tcancel := tabCtx(call, t)
		defer tcancel()
		if _, err := s.open(tctx, t, u); err != nil {
			return err
		}
	}
	return nil
}

// adoptTabs attaches to page targets the page opened (window.open, links
// with target=_blank) and forgets tabs that are gone.
func (s *session) adoptTabs(call context.Context) error {
	b := chromedp.FromContext(s.bctx).Browser
	res, err := cdp.Call(call, b, target.GetTargets, target.GetTargetsParams{})
	if err != nil {
		return fmt.Errorf("list tabs: %w", err)
	}
	live := map[target.ID]bool{}
	for _, ti := range res.TargetInfos {
		if ti.Type == "page" {
			live[ti.TargetID] = true
		}
	}
	s.mu.Lock()
	s.tabs = slices.DeleteFunc(s.tabs, func(t *tab) bool {
		if !live[t.id] {
			t.stopWorkers()
			return true
		}
		return false
	})
	known := map[target.ID]bool{}
	for _, t := range s.tabs {
		known[t.id] = true
	}
	s.mu.Unlock()
	for _, ti := range res.TargetInfos {
		if ti.Type != "page" || known[ti.TargetID] {
			continue
		}
		s.mu.Lock()
		full := len(s.tabs) >= maxTabs
		s.mu.Unlock()
		if full {
			// A page that opens windows in a loop must not exhaust the
			// container: tabs past the limit are closed.
			_, _ = cdp.Call(call, b, target.CloseTarget, target.CloseTargetParams{TargetID: ti.TargetID})
			s.mu.Lock()
			s.closedTabs++
			s.mu.Unlock()
			continue
		}
		ctx, cancel := chromedp.NewContext(s.bctx, chromedp.WithTargetID(ti.TargetID))
		if err := chromedp.Do(ctx); err != nil {
			cancel()
			continue
		}
		t, err := s.attach(ctx, cancel, ti.TargetID)
		if err != nil {
			cancel()
			continue
		}
		s.mu.Lock()
		s.tabs = append(s.tabs, t)
		s.mu.Unlock()
	}
	return nil
}
