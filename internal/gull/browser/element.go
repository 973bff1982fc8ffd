package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// element is a DOM element found by ref or locator.
type element struct {
	backend cdp.BackendNodeID
	label   string // how the user named it, for messages: `@e3 [button] "Log In"`
}

// ErrStaleRef is returned for a ref that no longer points into the page.
var ErrStaleRef = errors.New("stale ref")

// userError is a failure whose message is meant for the agent as is.
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

func userf(format string, a ...any) error { return &userError{msg: fmt.Sprintf(format, a...)} }

// resolveRef finds the element of "@eN" (or "eN").
func (s *session) resolveRef(ctx context.Context, t *tab, ref string) (element, error) {
	id := strings.TrimPrefix(ref, "@")
	s.mu.Lock()
	refs := s.refs
	ent, ok := refs.entries[id]
	s.mu.Unlock()
	if !ok {
		if refs.entries == nil {
			return element{}, userf("unknown ref %s: no snapshot has been taken yet. Run `snapshot -i` first and use the refs it prints", ref)
		}
		return element{}, userf("unknown ref %s: the last snapshot has refs @e1..@e%d. Run `snapshot -i` again if the page changed", ref, refs.next)
	}
	label := fmt.Sprintf("@%s [%s] %s", id, ent.role, strconv.Quote(ent.name))
	loader, url, _, _ := t.state()
	if refs.tab != t.id {
		return element{}, fmt.Errorf("%w: ref %s belongs to another tab. Run `snapshot -i` on this tab and use its refs", ErrStaleRef, ref)
	}
	if refs.loader != loader {
		return element{}, fmt.Errorf("%w: ref %s is from a page that is gone (the tab navigated to %s since that snapshot). Run `snapshot -i` again and use the new refs", ErrStaleRef, ref, url)
	}
	el := element{backend: ent.backend, label: label}
	connected, err := callOn[bool](ctx, el, `function(){ return this.isConnected }`)
	if err != nil || !connected {
		return element{}, fmt.Errorf("%w: ref %s points to an element that was removed from the page. Run `snapshot -i` again and use the new refs", ErrStaleRef, ref)
	}
	return el, nil
}

// resolveTarget accepts a ref (@eN) or a CSS selector.
func (s *session) resolveTarget(ctx context.Context, t *tab, what string) (element, error) {
	if isRef(what) {
		return s.resolveRef(ctx, t, what)
	}
	els, err := s.queryAll(ctx, `(sel) => Array.from(document.querySelectorAll(sel))`, what)
	if err != nil {
		return element{}, err
	}
	if len(els) == 0 {
		return element{}, userf("no element matches %q. Use a ref from `snapshot -i` (e.g. @e3) or check the CSS selector", what)
	}
	els[0].label = strconv.Quote(what)
	return els[0], nil
}

func isRef(s string) bool {
	id := strings.TrimPrefix(s, "@")
	if len(id) < 2 || id[0] != 'e' {
		return false
	}
	_, err := strconv.Atoi(id[1:])
	return err == nil && (strings.HasPrefix(s, "@") || len(s) > 1)
}

// queryAll runs fn(arg) in the page (or the current frame's document) and
// returns the elements of the array it gives.
func (s *session) queryAll(ctx context.Context, fn string, args ...any) ([]element, error) {
	s.mu.Lock()
	fr := s.frame
	s.mu.Unlock()
	return chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]element, error) {
		docFn := "() => document"
		if fr != nil {
			docFn = "() => { const f = document.querySelector(" + jsString(fr.selector) + "); if (!f || !f.contentDocument) throw new Error('the frame " + strings.ReplaceAll(jsString(fr.selector), "'", "") + " is gone or cross-origin; run frame main'); return f.contentDocument }"
		}
		// fn sees the scoped document under the name `document`.
		decl := "function(...args){ const doc = (" + docFn + ")(); return ((document) => (" + fn + "))(doc)(...args) }"
		var cargs []*runtime.CallArgument
		for _, a := range args {
			raw, _ := json.Marshal(a)
			cargs = append(cargs, &runtime.CallArgument{Value: raw})
		}
		glob, err := cdp.Call(ctx, t, runtime.Evaluate, runtime.EvaluateParams{Expression: "globalThis", ObjectGroup: "gull"})
		if err != nil {
			return nil, err
		}
		defer func() {
			_, _ = cdp.Call(ctx, t, runtime.ReleaseObjectGroup, runtime.ReleaseObjectGroupParams{ObjectGroup: "gull"})
		}()
		res, err := cdp.Call(ctx, t, runtime.CallFunctionOn, runtime.CallFunctionOnParams{FunctionDeclaration: decl,
			ObjectID: glob.Result.ObjectID, Arguments: cargs, ObjectGroup: "gull"})
		if err != nil {
			return nil, err
		}
		if res.ExceptionDetails != nil {
			return nil, userf("%s", exceptionText(res.ExceptionDetails))
		}
		if res.Result == nil || res.Result.ObjectID == "" {
			return nil, nil
		}
		props, err := cdp.Call(ctx, t, runtime.GetProperties, runtime.GetPropertiesParams{ObjectID: res.Result.ObjectID, OwnProperties: ptr(true)})
		if err != nil {
			return nil, err
		}
		type idx struct {
			i  int
			el element
		}
		var found []idx
		for _, p := range props.Result {
			i, err := strconv.Atoi(p.Name)
			if err != nil || p.Value == nil || p.Value.ObjectID == "" {
				continue
			}
			d, err := cdp.Call(ctx, t, dom.DescribeNode, dom.DescribeNodeParams{ObjectID: p.Value.ObjectID})
			if err == nil && d.Node != nil {
				found = append(found, idx{i, element{backend: d.Node.BackendNodeID}})
			}
		}
		out := make([]element, len(found))
		for _, f := range found {
			if f.i < len(out) {
				out[f.i] = f.el
			}
		}
		return out, nil
	})
}

// callOn calls a JS function with `this` bound to the element and returns its
// JSON result decoded into T.
func callOn[T any](ctx context.Context, el element, fn string, args ...any) (T, error) {
	return chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (T, error) {
		var zero T
		obj, err := cdp.Call(ctx, t, dom.ResolveNode, dom.ResolveNodeParams{BackendNodeID: el.backend, ObjectGroup: "gull"})
		if err != nil || obj.Object == nil {
			return zero, fmt.Errorf("%w: the element is gone from the page. Run `snapshot -i` again", ErrStaleRef)
		}
		defer func() {
			_, _ = cdp.Call(ctx, t, runtime.ReleaseObjectGroup, runtime.ReleaseObjectGroupParams{ObjectGroup: "gull"})
		}()
		var cargs []*runtime.CallArgument
		for _, a := range args {
			raw, _ := json.Marshal(a)
			cargs = append(cargs, &runtime.CallArgument{Value: raw})
		}
		res, err := cdp.Call(ctx, t, runtime.CallFunctionOn, runtime.CallFunctionOnParams{FunctionDeclaration: fn,
			ObjectID: obj.Object.ObjectID, Arguments: cargs, ReturnByValue: ptr(true), AwaitPromise: ptr(true), UserGesture: ptr(true)})
		if err != nil {
			return zero, err
		}
		if res.ExceptionDetails != nil {
			return zero, userf("%s", exceptionText(res.ExceptionDetails))
		}
		var v T
		if res.Result != nil && len(res.Result.Value) > 0 {
			if err := json.Unmarshal(res.Result.Value, &v); err != nil {
				return zero, fmt.Errorf("decode the page's answer: %w", err)
			}
		}
		return v, nil
	})
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d.Exception != nil && d.Exception.Description != "" {
		line, _, _ := strings.Cut(d.Exception.Description, "\n    at ")
		return "JavaScript error: " + line
	}
	return "JavaScript error: " + d.Text
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// center scrolls the element into view and returns the middle of its box.
func center(ctx context.Context, el element) (float64, float64, error) {
	pt, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (pt [2]float64, err error) {
		_, _ = cdp.Call(ctx, t, dom.ScrollIntoViewIfNeeded, dom.ScrollIntoViewIfNeededParams{BackendNodeID: el.backend})
		q, err := cdp.Call(ctx, t, dom.GetContentQuads, dom.GetContentQuadsParams{BackendNodeID: el.backend})
		if err != nil || len(q.Quads) == 0 || len(q.Quads[0]) < 8 {
			return pt, userf("%s is not visible (it has no box on the page). Check it with `is visible`, scroll, or wait for it", el.label)
		}
		quad := q.Quads[0]
		for i := 0; i < 8; i += 2 {
			pt[0] += quad[i] / 4
			pt[1] += quad[i+1] / 4
		}
		return pt, nil
	})
	return pt[0], pt[1], err
}

func mouse(ctx context.Context, events ...input.DispatchMouseEventParams) error {
	_, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
		for _, e := range events {
			if _, err := cdp.Call(ctx, t, input.DispatchMouseEvent, e); err != nil {
				return cdp.Empty{}, err
			}
		}
		return cdp.Empty{}, nil
	})
	return err
}

func clickAt(ctx context.Context, x, y float64, count int) error {
	evs := []input.DispatchMouseEventParams{{Type: input.DispatchMouseEventTypeMouseMoved, X: x, Y: y}}
	for i := 1; i <= count; i++ {
		evs = append(evs,
			input.DispatchMouseEventParams{Type: input.DispatchMouseEventTypeMousePressed, X: x, Y: y, Button: input.MouseButtonLeft, Buttons: 1, ClickCount: int64(i)},
			input.DispatchMouseEventParams{Type: input.DispatchMouseEventTypeMouseReleased, X: x, Y: y, Button: input.MouseButtonLeft, ClickCount: int64(i)})
	}
	return mouse(ctx, evs...)
}

func focusEl(ctx context.Context, el element) error {
	_, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, t, dom.Focus, dom.FocusParams{BackendNodeID: el.backend})
	})
	if err != nil {
		return userf("cannot focus %s (%v). It may be hidden or not a form field; check with `is visible`", el.label, err)
	}
	return nil
}

func insertText(ctx context.Context, text string) error {
	_, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
	})
	return err
}
