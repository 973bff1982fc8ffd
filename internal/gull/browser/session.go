package browser

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/inspector"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// maxRequests bounds the request log of `network requests`.
const maxRequests = 500

// maxTabs bounds the tabs a session keeps (each is a renderer's worth of memory).
const maxTabs = 16

// session is the state of one browser: its tabs, the refs of the last
// snapshot, network routes, the request log and the dialog policy.
type session struct {
	cfg  Config
	bctx context.Context // the first tab's context; its cancel ends the browser

	mu       sync.Mutex
	tabs     []*tab
	cur      int
	refs     refTable
	routes   []route
	requests []request
	// dialog: what to do with the next dialog; lastDialog: what happened.
	dialogAccept *bool
	dialogText   string
	lastDialog   string
	closedTabs   int         // tabs past maxTabs closed since the last `tab` listing
	frame        *frameScope // set by `frame "<css>"`; nil = main frame
}

type frameScope struct {
	selector string
	frameID  cdp.FrameID
}

type route struct {
	pattern     string
	re          *regexp.Regexp
	abort       bool
	body        string
	status      int
	contentType string
}

type request struct {
	id     network.RequestID
	method string
	url    string
	rtype  string
	status int64
	failed string
}

func newSession(bctx context.Context, cfg Config) (*session, error) {
	s := &session{cfg: cfg, bctx: bctx}
	c := chromedp.FromContext(bctx)
	if c == nil || c.Target == nil {
		return nil, fmt.Errorf("the browser has no first tab")
	}
	t, err := s.attach(bctx, nil, c.Target.TargetID)
	if err != nil {
		return nil, err
	}
	s.tabs = []*tab{t}
	return s, nil
}

func (s *session) close() {
	s.mu.Lock()
	tabs := s.tabs
	s.tabs = nil
	s.mu.Unlock()
	for _, t := range tabs {
		t.stopWorkers()
	}
}

// tab is one page target.
type tab struct {
	ctx    context.Context
	cancel context.CancelFunc // nil for the first tab (its cancel ends the browser)
	id     target.ID
	sess   *session

	mu        sync.Mutex
	mainFrame cdp.FrameID
	loaderID  cdp.LoaderID
	url       string
	loading   bool
	crashed   bool            // the renderer of the page died (OOM, killed)
	lifecycle map[string]bool // lifecycle events seen for loaderID
	changed   chan struct{}   // closed and replaced on every page state change

	work chan any // events handled outside the read loop (fetch, dialogs)
	done chan struct{}
}

// attach wires event handling to the tab of ctx (a chromedp context whose
// target is id).
func (s *session) attach(ctx context.Context, cancel context.CancelFunc, id target.ID) (*tab, error) {
	t := &tab{ctx: ctx, cancel: cancel, id: id, sess: s, lifecycle: map[string]bool{},
		changed: make(chan struct{}), work: make(chan any, 256), done: make(chan struct{})}
	if err := chromedp.Listen(ctx, t.onEvent); err != nil {
		return nil, fmt.Errorf("listen to the tab: %w", err)
	}
	go t.worker()
	// Learn the current frame and document now (a tab opened by the page
	// may have loaded before we listened).
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	tree, err := chromedp.Run(rctx, func(ctx context.Context, tt *chromedp.Target) (page.GetFrameTreeResult, error) {
		return cdp.Call(ctx, tt, page.GetFrameTree, cdp.Empty{})
	})
	if err == nil && tree.FrameTree != nil && tree.FrameTree.Frame != nil {
		t.mu.Lock()
		if t.mainFrame == "" {
			t.mainFrame, t.loaderID, t.url = tree.FrameTree.Frame.ID, tree.FrameTree.Frame.LoaderID, tree.FrameTree.Frame.URL
		}
		t.mu.Unlock()
	}
	if err := s.applyRoutes(rctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *tab) stopWorkers() {
	select {
	case <-t.done:
	default:
		close(t.done)
	}
}

// notify wakes everyone waiting for a page state change. Called with t.mu.
func (t *tab) notify() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// onEvent runs on chromedp's read loop: it must not block or call the browser.
func (t *tab) onEvent(ev any) {
	switch e := ev.(type) {
	case *page.EventFrameNavigated:
		if e.Frame == nil || e.Frame.ParentID != "" {
			return
		}
		t.mu.Lock()
		if e.Frame.LoaderID != t.loaderID {
			t.lifecycle = map[string]bool{}
		}
		t.mainFrame, t.loaderID, t.url = e.Frame.ID, e.Frame.LoaderID, e.Frame.URL
		t.crashed = false
		t.notify()
		t.mu.Unlock()
	case *inspector.EventTargetCrashed:
		t.mu.Lock()
		t.crashed, t.loading = true, false
		t.notify()
		t.mu.Unlock()
	case *page.EventNavigatedWithinDocument:
		t.mu.Lock()
		if e.FrameID == t.mainFrame {
			t.url = e.URL
			t.notify()
		}
		t.mu.Unlock()
	case *page.EventFrameStartedLoading:
		t.mu.Lock()
		if e.FrameID == t.mainFrame || t.mainFrame == "" {
			t.loading = true
			t.notify()
		}
		t.mu.Unlock()
	case *page.EventFrameStoppedLoading:
		t.mu.Lock()
		if e.FrameID == t.mainFrame {
			t.loading = false
			t.notify()
		}
		t.mu.Unlock()
	case *page.EventLifecycleEvent:
		t.mu.Lock()
		if e.FrameID == t.mainFrame && e.LoaderID == t.loaderID {
			t.lifecycle[e.Name] = true
			t.notify()
		}
		t.mu.Unlock()
	case *network.EventRequestWillBeSent:
		if e.Request == nil {
			return
		}
		t.sess.logRequest(request{id: e.RequestID, method: e.Request.Method, url: e.Request.URL, rtype: string(e.Type)})
	case *network.EventResponseReceived:
		if e.Response != nil {
			t.sess.updateRequest(e.RequestID, func(r *request) { r.status = e.Response.Status })
		}
	case *network.EventLoadingFailed:
		t.sess.updateRequest(e.RequestID, func(r *request) { r.failed = e.ErrorText })
	case *fetch.EventRequestPaused, *page.EventJavascriptDialogOpening:
		select {
		case t.work <- ev:
		default: // the worker is far behind; the request stays paused until the page gives up
		}
	}
}

// worker handles the events that need browser calls.
func (t *tab) worker() {
	for {
		select {
		case <-t.done:
			return
		case <-t.ctx.Done():
			return
		case ev := <-t.work:
			ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
			switch e := ev.(type) {
			case *fetch.EventRequestPaused:
				t.sess.handlePaused(ctx, e)
			case *page.EventJavascriptDialogOpening:
				t.sess.handleDialog(ctx, e)
			}
			cancel()
		}
	}
}

// state returns a snapshot of the tab's page state.
func (t *tab) state() (cdp.LoaderID, string, bool, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.loaderID, t.url, t.loading, t.changed
}

func (s *session) logRequest(r request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) >= maxRequests {
		s.requests = append(s.requests[:0], s.requests[len(s.requests)-maxRequests+1:]...)
	}
	s.requests = append(s.requests, r)
}

func (s *session) updateRequest(id network.RequestID, f func(*request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.requests) - 1; i >= 0; i-- {
		if s.requests[i].id == id {
			f(&s.requests[i])
			return
		}
	}
}

func (s *session) handlePaused(ctx context.Context, e *fetch.EventRequestPaused) {
	s.mu.Lock()
	var hit *route
	if e.Request != nil {
		for i := range s.routes {
			if s.routes[i].re.MatchString(e.Request.URL) {
				r := s.routes[i]
				hit = &r
				break
			}
		}
	}
	s.mu.Unlock()
	_, _ = chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
		switch {
		case hit == nil:
			return cdp.Call(ctx, t, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
		case hit.abort:
			return cdp.Call(ctx, t, fetch.FailRequest, fetch.FailRequestParams{RequestID: e.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
		default:
			ct := hit.contentType
			if ct == "" {
				ct = "application/json"
			}
			return cdp.Call(ctx, t, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID: e.RequestID, ResponseCode: int64(hit.status),
				ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: ct}, {Name: "Access-Control-Allow-Origin", Value: "*"}},
				Body:            []byte(hit.body),
			})
		}
	})
}

func (s *session) handleDialog(ctx context.Context, e *page.EventJavascriptDialogOpening) {
	s.mu.Lock()
	accept := e.Type == page.DialogTypeAlert || e.Type == page.DialogTypeBeforeunload
	text := e.DefaultPrompt
	armed := s.dialogAccept != nil
	if armed {
		accept, text = *s.dialogAccept, s.dialogText
		s.dialogAccept, s.dialogText = nil, ""
	}
	verb := "dismissed"
	if accept {
		verb = "accepted"
	}
	how := "by default"
	if armed {
		how = "as armed by `dialog`"
	}
	s.lastDialog = fmt.Sprintf("%s dialog %q was %s %s", e.Type, e.Message, verb, how)
	s.mu.Unlock()
	_, _ = chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
		p := page.HandleJavaScriptDialogParams{Accept: accept}
		if accept && e.Type == page.DialogTypePrompt {
			p.PromptText = text
		}
		return cdp.Call(ctx, t, page.HandleJavaScriptDialog, p)
	})
}

// applyRoutes turns request interception on (routes exist) or off for a tab.
func (s *session) applyRoutes(ctx context.Context, t *tab) error {
	s.mu.Lock()
	n := len(s.routes)
	s.mu.Unlock()
	_, err := chromedp.Run(ctx, func(ctx context.Context, tt *chromedp.Target) (cdp.Empty, error) {
		if n == 0 {
			return cdp.Call(ctx, tt, fetch.Disable, cdp.Empty{})
		}
		return cdp.Call(ctx, tt, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}})
	})
	if err != nil {
		return fmt.Errorf("set up request routing: %w", err)
	}
	return nil
}

// globRegexp turns a URL glob into a regexp: `**` matches anything, `*`
// anything but '/', `?` one character. A pattern without wildcards matches
// URLs that contain it.
func globRegexp(glob string) (*regexp.Regexp, error) {
	if !strings.ContainsAny(glob, "*?") {
		return regexp.Compile(regexp.QuoteMeta(glob))
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; {
		case c == '*' && i+1 < len(glob) && glob[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

func (t *tab) isCrashed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.crashed
}
