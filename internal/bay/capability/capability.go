// Package capability routes python, shell and filesystem calls to a sandbox's
// runtime: it checks the profile and the runtime advertise the capability,
// makes sure a session is running, calls Ship and records execution history.
package capability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptrace"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/logctx"
)

// Capability names.
const (
	Python     = "python"
	Shell      = "shell"
	Filesystem = "filesystem"
)

// Service performs capability calls.
type Service struct {
	Store    *store.Store
	Sessions *session.Manager
	Runtime  *runtime.Client
	Config   *config.Config
	Profiles map[string]*session.Profile
	Log      *slog.Logger
	// Observe, when set, records the latency of each call by capability (metrics).
	Observe func(capability string, d time.Duration, err error)
	// UploadTimeout bounds a whole upload or download (default 10 min).
	UploadTimeout time.Duration
	// WatchInterval is how often a call still running is checked for a runtime
	// that stopped answering /health (default 5s).
	WatchInterval time.Duration
	// MaxHistoryBytes caps each of code, output and error stored in a history
	// row (default 1 MiB); the response to the caller is not cut.
	MaxHistoryBytes int

	metaMu sync.Mutex
	meta   map[string]map[string]bool // endpoint+session → runtime capabilities
	rowsMu sync.Mutex
	rows   map[string]recentRow // sandbox rows read for recent calls (see sandboxMemory)
}

// call is a resolved target for one capability call.
type call struct {
	sandbox *model.Sandbox
	session *model.Session
	profile *session.Profile
	target  runtime.Target
	release func() // ends the session's in-use mark
}

func (s *Service) resolve(ctx context.Context, owner, sandboxID, capability string, now time.Time) (*call, error) {
	sb, p, err := s.check(ctx, owner, sandboxID, capability, now)
	if err != nil {
		return nil, err
	}
	sp := s.Profiles[sb.ProfileID]
	for attempt := 0; ; attempt++ {
		ss, release, err := s.Sessions.EnsureRunning(ctx, sb.ID, sp, now)
		if err != nil {
			return nil, err
		}
		t := runtime.Target{Endpoint: ss.Endpoint, Token: ss.Token}
		if c, ok := p.ContainerFor(capability); ok && len(ss.Containers) > 1 {
			for _, ci := range ss.Containers {
				if ci.Name == c.Name {
					t.Endpoint = ci.Endpoint
				}
			}
		}
		err = s.checkRuntime(ctx, ss, t, capability)
		if err == nil {
			return &call{sandbox: sb, session: ss, profile: sp, target: t, release: release}, nil
		}
		release()
		if attempt > 0 || !runtime.NoAnswer(err) {
			return nil, err
		}
		// /meta is a read: asking the replacement again is safe.
		if replaced, rerr := s.recover(ctx, &call{sandbox: sb, session: ss, profile: sp}, err, now); rerr != nil || !replaced {
			return nil, err
		}
	}
}

// checkRuntime verifies the runtime's /meta advertises the capability (cached per session).
func (s *Service) checkRuntime(ctx context.Context, ss *model.Session, t runtime.Target, capability string) error {
	key := ss.ID + "|" + t.Endpoint
	s.metaMu.Lock()
	caps, ok := s.meta[key]
	s.metaMu.Unlock()
	if !ok {
		m, err := s.Runtime.Meta(ctx, t)
		if err != nil {
			return err
		}
		caps = map[string]bool{}
		for k := range m.Capabilities {
			caps[k] = true
		}
		s.metaMu.Lock()
		if s.meta == nil || len(s.meta) >= 4096 {
			s.meta = map[string]map[string]bool{}
		}
		s.meta[key] = caps
		s.metaMu.Unlock()
	}
	if !caps[capability] {
		available := make([]string, 0, len(caps))
		for k := range caps {
			available = append(available, k)
		}
		sort.Strings(available)
		return errs.Newf(errs.CapabilityNotSupported, "Runtime does not support capability: %s", capability).
			With(map[string]any{"capability": capability, "available": available})
	}
	return nil
}

// errUnresponsive cancels a call whose runtime stopped answering /health.
var errUnresponsive = errors.New("runtime stopped answering /health")

// errNotReached cancels a call whose connection was never made while its
// container exited or its runtime stopped answering: nothing reached Ship.
var errNotReached = errors.New("runtime could not be reached")

// connectGrace: a connection to a runtime takes well under a millisecond on
// this host; one still pending after this long makes Bay ask the engine
// whether the container still runs, instead of waiting out the connect
// timeout.
const connectGrace = 250 * time.Millisecond

// recover re-checks a session after a call to it got no answer (connection
// failed, timed out, or the watchdog gave up on it) and replaces it when its
// container is gone or its runtime stopped answering (at once when the
// watchdog already saw that). It runs to completion even if the caller has
// gone, so the next call finds a working session.
func (s *Service) recover(ctx context.Context, c *call, cause error, now time.Time) (bool, error) {
	ctx = context.WithoutCancel(ctx)
	recover := s.Sessions.Recover
	if errors.Is(cause, errUnresponsive) {
		recover = s.Sessions.Replace
	}
	replaced, err := recover(ctx, c.sandbox.ID, c.session.ID, c.profile, now)
	if err != nil {
		s.Log.WarnContext(ctx, "recovering the session failed", "session_id", c.session.ID, "err", err)
	}
	return replaced, err
}

// watch runs fn with a context that is cancelled when the runtime stops
// answering /health while fn runs (cause errUnresponsive, or errNotReached
// when the call's connection was never made), or when its connection is still
// pending after connectGrace and the engine says the container is gone (cause
// errNotReached: nothing reached Ship, so the call can be repeated). /health has its own short deadline and is served while a cell or
// command runs, so a long call is never mistaken for a wedged runtime.
// The checks run on timers, not on a goroutine of the call's own: a call
// that answers within the watch interval (almost every call) starts and
// wakes nothing.
func (s *Service) watch(ctx context.Context, c *call, fn func(context.Context, *call) error) error {
	callCtx, cancelCall := context.WithCancelCause(ctx)
	defer cancelCall(nil)
	checkCtx, stopChecks := context.WithCancel(callCtx)
	w := &watcher{s: s, c: c, ctx: checkCtx, cancel: cancelCall}
	w.mu.Lock()
	w.tick = time.AfterFunc(s.watchInterval(), w.onTick)
	w.mu.Unlock()
	fnCtx := httptrace.WithClientTrace(callCtx, &httptrace.ClientTrace{
		ConnectStart: func(string, string) { w.connecting() },
		GotConn:      func(httptrace.GotConnInfo) { w.bound.Store(true) },
	})
	err := fn(fnCtx, c)
	w.stop(stopChecks)
	if err == nil {
		return nil
	}
	switch cause := context.Cause(callCtx); {
	case errors.Is(cause, errUnresponsive):
		return errs.New(errs.ShipError, "Runtime stopped responding; the session is being restarted (files are kept, memory state is lost)").
			Wrap(fmt.Errorf("%w: %w", runtime.ErrNoAnswer, cause))
	case errors.Is(cause, errNotReached):
		return errs.New(errs.ShipError, "Ship request error: connection failed").
			Wrap(fmt.Errorf("%w: %w: %w", runtime.ErrNoAnswer, runtime.ErrNotConnected, cause))
	}
	return err
}

// watcher holds the checks of one watched call (see watch).
type watcher struct {
	s      *Service
	c      *call
	ctx    context.Context         // ends with the call: a check in flight gives up
	cancel context.CancelCauseFunc // cancels the call
	bound  atomic.Bool             // a connection carries the request: it may have reached Ship

	mu      sync.Mutex
	done    bool        // the call ended: no check starts or cancels any more
	tick    *time.Timer // the next /health check
	grace   *time.Timer // the connect grace, once a connection is being made
	running sync.WaitGroup
}

// begin registers a check about to run; false once the call ended.
func (w *watcher) begin() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return false
	}
	w.running.Add(1)
	return true
}

// stop ends the checks: none starts after it, and it returns once the ones
// in flight (cut short by stopChecks) are done, so the call's cause is final.
func (w *watcher) stop(stopChecks context.CancelFunc) {
	w.mu.Lock()
	w.done = true
	w.tick.Stop()
	if w.grace != nil {
		w.grace.Stop()
	}
	w.mu.Unlock()
	stopChecks()
	w.running.Wait()
}

func (w *watcher) connecting() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && w.grace == nil {
		w.grace = time.AfterFunc(connectGrace, w.onGrace)
	}
}

func (w *watcher) onGrace() {
	if !w.begin() {
		return
	}
	defer w.running.Done()
	if !w.bound.Load() && w.s.Sessions.Gone(w.ctx, w.c.session) && !w.bound.Load() {
		w.cancel(errNotReached)
	}
}

func (w *watcher) onTick() {
	if !w.begin() {
		return
	}
	defer w.running.Done()
	if !w.s.Sessions.Responsive(w.ctx, w.c.target, 2) && w.ctx.Err() == nil {
		if w.bound.Load() {
			w.cancel(errUnresponsive)
		} else {
			w.cancel(errNotReached)
		}
		return
	}
	w.mu.Lock()
	if !w.done {
		w.tick.Reset(w.s.watchInterval())
	}
	w.mu.Unlock()
}

func (s *Service) watchInterval() time.Duration {
	if s.WatchInterval > 0 {
		return s.WatchInterval
	}
	return 5 * time.Second
}

func (s *Service) observe(capability string, start time.Time, err error) {
	if s.Observe != nil {
		s.Observe(capability, time.Since(start), err)
	}
}

// Meta is what a caller adds to a history entry.
type Meta struct {
	Description *string
	Tags        *string
	IncludeCode bool
}

// PythonResult is the response of python/exec.
type PythonResult struct {
	Success         bool
	Output          string
	Error           *string
	ExecutionCount  *int
	RawOutput       json.RawMessage
	ExecutionID     string
	ExecutionTimeMs int64
	TimedOut        bool    // additive: the cell was interrupted at its timeout
	KernelRestarted bool    // additive: the kernel had died and was restarted; state was lost
	Notice          *string // additive: why, in words
	Truncated       bool    // additive: Ship cut or dropped output over its limits
}

// Python runs code in the sandbox's kernel.
func (s *Service) Python(ctx context.Context, owner, sandboxID, code string, timeout int, meta Meta, now time.Time) (res *PythonResult, err error) {
	return s.python(ctx, owner, sandboxID, code, timeout, meta, nil, now)
}

// python runs code, streamed when st is set.
func (s *Service) python(ctx context.Context, owner, sandboxID, code string, timeout int, meta Meta, st *Stream, now time.Time) (res *PythonResult, err error) {
	start := time.Now()
	defer func() { s.observe(Python, start, err) }()
	ctx = st.context(ctx)
	var r *runtime.PythonResult
	c, err := s.with(ctx, owner, sandboxID, Python, now, true, func(ctx context.Context, c *call) (err error) {
		if st != nil {
			r, err = s.Runtime.PythonStream(ctx, c.target, code, timeout, st.KillOnDisconnect, st.Sink)
		} else {
			r, err = s.Runtime.Python(ctx, c.target, code, timeout)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	raw := r.Output
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	res = &PythonResult{Success: r.Success, Output: r.Text(), Error: r.Error, ExecutionCount: r.ExecutionCount,
		RawOutput: raw, ExecutionTimeMs: time.Since(start).Milliseconds(),
		TimedOut: r.TimedOut, KernelRestarted: r.KernelRestarted, Notice: r.Notice, Truncated: r.Truncated}
	res.ExecutionID, err = s.record(ctx, c, "python", code, res.Success, res.ExecutionTimeMs, &res.Output, res.Error, meta, now)
	return res, err
}

// ShellResult is the response of shell/exec.
type ShellResult struct {
	Success         bool
	Output          string
	Error           *string
	ExitCode        *int
	ExecutionID     string
	ExecutionTimeMs int64
	TimedOut        bool    // additive: killed at its timeout; Output is what it printed until then
	Truncated       bool    // additive: output over Ship's limit was cut (marked in the text)
	Notice          *string // additive: e.g. stray processes were killed to free process slots
}

// Shell runs a command with bash -lc.
func (s *Service) Shell(ctx context.Context, owner, sandboxID, command string, timeout int, cwd string, meta Meta, now time.Time) (res *ShellResult, err error) {
	return s.shell(ctx, owner, sandboxID, command, timeout, cwd, meta, nil, now)
}

// shell runs a command, streamed when st is set.
func (s *Service) shell(ctx context.Context, owner, sandboxID, command string, timeout int, cwd string, meta Meta, st *Stream, now time.Time) (res *ShellResult, err error) {
	start := time.Now()
	defer func() { s.observe(Shell, start, err) }()
	ctx = st.context(ctx)
	var r *runtime.ShellResult
	c, err := s.with(ctx, owner, sandboxID, Shell, now, true, func(ctx context.Context, c *call) (err error) {
		if st != nil {
			r, err = s.Runtime.ShellStream(ctx, c.target, command, timeout, cwd, st.KillOnDisconnect, st.Sink)
		} else {
			r, err = s.Runtime.Shell(ctx, c.target, command, timeout, cwd)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	res = &ShellResult{Success: r.Success, Output: r.Stdout, ExitCode: r.ReturnCode, ExecutionTimeMs: time.Since(start).Milliseconds(),
		TimedOut: r.TimedOut, Truncated: r.Truncated, Notice: r.Notice}
	switch {
	case r.Error != nil && *r.Error != "":
		res.Error = r.Error
	case r.Stderr != "":
		res.Error = &r.Stderr
	}
	res.ExecutionID, err = s.record(ctx, c, "shell", command, res.Success, res.ExecutionTimeMs, &res.Output, res.Error, meta, now)
	return res, err
}

func (s *Service) record(ctx context.Context, c *call, typ, code string, ok bool, ms int64, out, errS *string, meta Meta, now time.Time) (string, error) {
	limit := s.MaxHistoryBytes
	if limit <= 0 {
		limit = DefaultMaxHistoryBytes
	}
	e := &model.Execution{
		ID: model.NewID("exec"), SandboxID: c.sandbox.ID, Owner: c.sandbox.Owner, SessionID: c.session.ID,
		ExecType: typ, Code: capHistory(code, limit), Success: ok, ExecutionTimeMs: ms,
		Output: capHistoryPtr(out, limit), Error: capHistoryPtr(errS, limit),
		Description: meta.Description, Tags: NormalizeTags(meta.Tags), CreatedAt: now,
	}
	skipped := "skipped"
	e.LearnStatus = &skipped
	if err := s.Store.CreateExecution(context.WithoutCancel(ctx), e); err != nil {
		// The code ran; losing its history entry must not fail the call.
		s.Log.ErrorContext(ctx, "recording execution history", "err", err)
	}
	return e.ID, nil
}

// DefaultMaxHistoryBytes caps each text field of a history row.
const DefaultMaxHistoryBytes = 1 << 20

// capHistory cuts s to at most limit bytes (on a rune boundary) plus a marker
// saying how much was dropped.
func capHistory(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("\n[truncated in history: %d of %d bytes kept]", cut, len(s))
}

func capHistoryPtr(s *string, limit int) *string {
	if s == nil || len(*s) <= limit {
		return s
	}
	c := capHistory(*s, limit)
	return &c
}

// checkPath refuses what no file system here can hold (Linux: a name of at
// most 255 bytes, a path of at most 4095), before asking the runtime.
func checkPath(p string) error {
	bad := func(reason, msg string) error {
		return errs.New(errs.InvalidPath, msg).With(map[string]any{"field": "path", "reason": reason})
	}
	if len(p) >= 4096 {
		return bad("path_too_long", "path is too long (at most 4095 bytes)")
	}
	for _, name := range strings.Split(p, "/") {
		if len(name) > 255 {
			return bad("name_too_long", "path has a file name longer than 255 bytes")
		}
	}
	return nil
}

// NormalizeTags splits on ',', trims, dedupes and sorts; empty → nil.
func NormalizeTags(tags *string) *string {
	if tags == nil {
		return nil
	}
	var out []string
	for _, t := range strings.Split(*tags, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil
	}
	sort.Strings(out)
	j := strings.Join(out, ",")
	return &j
}

// ReadFile returns a text file.
func (s *Service) ReadFile(ctx context.Context, owner, sandboxID, path string, now time.Time) (content string, err error) {
	if err := checkPath(path); err != nil {
		return "", err
	}
	err = s.fileOp(ctx, owner, sandboxID, now, true, func(ctx context.Context, c *call) error {
		content, err = s.Runtime.ReadFile(ctx, c.target, path)
		return err
	})
	return content, err
}

// WriteFile writes a text file.
func (s *Service) WriteFile(ctx context.Context, owner, sandboxID, path, content string, now time.Time) error {
	if err := checkPath(path); err != nil {
		return err
	}
	return s.fileOp(ctx, owner, sandboxID, now, true, func(ctx context.Context, c *call) error {
		return s.Runtime.WriteFile(ctx, c.target, path, content)
	})
}

// ListDir lists a directory.
func (s *Service) ListDir(ctx context.Context, owner, sandboxID, path string, now time.Time) (entries []json.RawMessage, err error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	err = s.fileOp(ctx, owner, sandboxID, now, true, func(ctx context.Context, c *call) error {
		entries, err = s.Runtime.ListDir(ctx, c.target, path)
		return err
	})
	return entries, err
}

// DeleteFile deletes a file or directory.
func (s *Service) DeleteFile(ctx context.Context, owner, sandboxID, path string, now time.Time) error {
	if err := checkPath(path); err != nil {
		return err
	}
	return s.fileOp(ctx, owner, sandboxID, now, true, func(ctx context.Context, c *call) error {
		return s.Runtime.DeleteFile(ctx, c.target, path)
	})
}

// Upload streams r into path.
func (s *Service) Upload(ctx context.Context, owner, sandboxID, path string, r io.Reader, now time.Time) (size int64, err error) {
	if err := checkPath(path); err != nil {
		return 0, err
	}
	err = s.fileOp(ctx, owner, sandboxID, now, false, func(ctx context.Context, c *call) error { // the body can be read only once
		size, err = s.Runtime.Upload(ctx, c.target, path, r, s.uploadTimeout())
		return err
	})
	return size, err
}

// Download opens path for streaming; the caller closes the reader. The session
// stays in use (safe from idle GC) until then. Opening is a read: when the
// runtime could not be reached, the session is re-checked (replaced if it is
// gone or wedged) and the file opened once more.
func (s *Service) Download(ctx context.Context, owner, sandboxID, path string, now time.Time) (rc io.ReadCloser, size int64, err error) {
	start := time.Now()
	defer func() { s.observe(Filesystem, start, err) }()
	if err := checkPath(path); err != nil {
		return nil, 0, err
	}
	for attempt := 0; ; attempt++ {
		c, err := s.resolve(ctx, owner, sandboxID, Filesystem, now)
		if err != nil {
			return nil, 0, err
		}
		rc, size, err = s.Runtime.Download(ctx, c.target, path)
		if err == nil {
			return releasingReader{ReadCloser: rc, release: c.release}, size, nil
		}
		c.release()
		if !runtime.NoAnswer(err) {
			return nil, 0, err
		}
		replaced, _ := s.recover(ctx, c, err, now)
		if attempt > 0 || !replaced {
			return nil, 0, err
		}
	}
}

type releasingReader struct {
	io.ReadCloser
	release func()
}

func (r releasingReader) Close() error {
	defer r.release()
	return r.ReadCloser.Close()
}

func (s *Service) uploadTimeout() time.Duration {
	if s.UploadTimeout > 0 {
		return s.UploadTimeout
	}
	return 10 * time.Minute
}

func (s *Service) fileOp(ctx context.Context, owner, sandboxID string, now time.Time, retry bool, fn func(context.Context, *call) error) (err error) {
	start := time.Now()
	defer func() { s.observe(Filesystem, start, err) }()
	_, err = s.with(logctx.WithSandboxID(ctx, sandboxID), owner, sandboxID, Filesystem, now, retry, fn)
	return err
}

// with resolves the target, runs fn with the session held in use (and
// watched), and releases it. A call that got no answer from the runtime has
// the session re-checked and, if its container is gone or its runtime wedged,
// replaced; only a call that never reached Ship (the connection could not be
// made) runs once more when retry is set. A Ship HTTP error (4xx: the caller's
// mistake; 5xx: Ship answered) never puts the session in doubt.
func (s *Service) with(ctx context.Context, owner, sandboxID, capability string, now time.Time, retry bool, fn func(context.Context, *call) error) (*call, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.resolve(ctx, owner, sandboxID, capability, now)
		if err != nil {
			return nil, err
		}
		err = s.watch(ctx, c, fn)
		c.release()
		if err == nil || !runtime.NoAnswer(err) {
			return c, err
		}
		replaced, _ := s.recover(ctx, c, err, now)
		if !retry || attempt > 0 || !runtime.Unreachable(err) || !replaced {
			return c, err
		}
		s.Log.WarnContext(ctx, "runtime unreachable; session replaced, retrying once", "session_id", c.session.ID)
	}
}

// Terminal resolves the runtime target of an interactive terminal (needs
// shell). The runtime must answer /health first: the caller dials it directly,
// so a dead or wedged session is replaced here rather than failing the dial.
func (s *Service) Terminal(ctx context.Context, owner, sandboxID string, now time.Time) (runtime.Target, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.resolve(ctx, owner, sandboxID, Shell, now)
		if err != nil {
			return runtime.Target{}, err
		}
		c.release() // a terminal is long-lived; idle GC applies to it like to any client
		if attempt > 0 || s.Sessions.Responsive(ctx, c.target, 1) {
			return c.target, nil
		}
		if ctx.Err() != nil {
			return runtime.Target{}, ctx.Err()
		}
		if _, err := s.recover(ctx, c, nil, now); err != nil {
			return runtime.Target{}, err
		}
	}
}
