// Package capability routes python, shell and filesystem calls to a sandbox's
// runtime: it checks the profile and the runtime advertise the capability,
// makes sure a session is running, calls Ship and records execution history.
package capability

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

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

	metaMu sync.Mutex
	meta   map[string]map[string]bool // endpoint+session → runtime capabilities
}

// call is a resolved target for one capability call.
type call struct {
	sandbox *model.Sandbox
	session *model.Session
	target  runtime.Target
	release func() // ends the session's in-use mark
}

func (s *Service) resolve(ctx context.Context, owner, sandboxID, capability string, now time.Time) (*call, error) {
	sb, err := s.Store.GetSandbox(ctx, owner, sandboxID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errs.New(errs.NotFound, "Resource not found")
		}
		return nil, err
	}
	if sb.Expired(now) {
		return nil, errs.Newf(errs.SandboxExpired, "sandbox is expired").
			With(map[string]any{"sandbox_id": sb.ID, "expires_at": model.FormatTime(*sb.ExpiresAt)})
	}
	p, ok := s.Config.Profile(sb.ProfileID)
	sp := s.Profiles[sb.ProfileID]
	if !ok || sp == nil || !p.HasCapability(capability) {
		available := []string{}
		if ok {
			available = p.Capabilities
		}
		return nil, errs.Newf(errs.CapabilityNotSupported, "Profile '%s' does not support capability: %s", sb.ProfileID, capability).
			With(map[string]any{"capability": capability, "available": available})
	}
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
	if err := s.checkRuntime(ctx, ss, t, capability); err != nil {
		release()
		return nil, err
	}
	return &call{sandbox: sb, session: ss, target: t, release: release}, nil
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
			s.Sessions.Suspect(ss.SandboxID)
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

// shipFailed marks the session for a re-check after a transport failure.
func (s *Service) shipFailed(c *call, err error) {
	if e, ok := errs.As(err); ok && (e.Code == errs.ShipError || e.Code == errs.Timeout) {
		s.Sessions.Suspect(c.session.SandboxID)
	}
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
}

// Python runs code in the sandbox's kernel.
func (s *Service) Python(ctx context.Context, owner, sandboxID, code string, timeout int, meta Meta, now time.Time) (res *PythonResult, err error) {
	start := time.Now()
	defer func() { s.observe(Python, start, err) }()
	var r *runtime.PythonResult
	c, err := s.with(ctx, owner, sandboxID, Python, now, true, func(c *call) (err error) {
		r, err = s.Runtime.Python(ctx, c.target, code, timeout)
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
		TimedOut: r.TimedOut, KernelRestarted: r.KernelRestarted, Notice: r.Notice}
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
}

// Shell runs a command with bash -lc.
func (s *Service) Shell(ctx context.Context, owner, sandboxID, command string, timeout int, cwd string, meta Meta, now time.Time) (res *ShellResult, err error) {
	start := time.Now()
	defer func() { s.observe(Shell, start, err) }()
	var r *runtime.ShellResult
	c, err := s.with(ctx, owner, sandboxID, Shell, now, true, func(c *call) (err error) {
		r, err = s.Runtime.Shell(ctx, c.target, command, timeout, cwd)
		return err
	})
	if err != nil {
		return nil, err
	}
	res = &ShellResult{Success: r.Success, Output: r.Stdout, ExitCode: r.ReturnCode, ExecutionTimeMs: time.Since(start).Milliseconds()}
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
	e := &model.Execution{
		ID: model.NewID("exec"), SandboxID: c.sandbox.ID, Owner: c.sandbox.Owner, SessionID: c.session.ID,
		ExecType: typ, Code: code, Success: ok, ExecutionTimeMs: ms, Output: out, Error: errS,
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
	err = s.fileOp(ctx, owner, sandboxID, now, true, func(c *call) error {
		content, err = s.Runtime.ReadFile(ctx, c.target, path)
		return err
	})
	return content, err
}

// WriteFile writes a text file.
func (s *Service) WriteFile(ctx context.Context, owner, sandboxID, path, content string, now time.Time) error {
	return s.fileOp(ctx, owner, sandboxID, now, true, func(c *call) error {
		return s.Runtime.WriteFile(ctx, c.target, path, content)
	})
}

// ListDir lists a directory.
func (s *Service) ListDir(ctx context.Context, owner, sandboxID, path string, now time.Time) (entries []json.RawMessage, err error) {
	err = s.fileOp(ctx, owner, sandboxID, now, true, func(c *call) error {
		entries, err = s.Runtime.ListDir(ctx, c.target, path)
		return err
	})
	return entries, err
}

// DeleteFile deletes a file or directory.
func (s *Service) DeleteFile(ctx context.Context, owner, sandboxID, path string, now time.Time) error {
	return s.fileOp(ctx, owner, sandboxID, now, true, func(c *call) error {
		return s.Runtime.DeleteFile(ctx, c.target, path)
	})
}

// Upload streams r into path.
func (s *Service) Upload(ctx context.Context, owner, sandboxID, path string, r io.Reader, now time.Time) (size int64, err error) {
	err = s.fileOp(ctx, owner, sandboxID, now, false, func(c *call) error { // the body can be read only once
		size, err = s.Runtime.Upload(ctx, c.target, path, r, s.uploadTimeout())
		return err
	})
	return size, err
}

// Download opens path for streaming; the caller closes the reader. The session
// stays in use (safe from idle GC) until then.
func (s *Service) Download(ctx context.Context, owner, sandboxID, path string, now time.Time) (rc io.ReadCloser, size int64, err error) {
	start := time.Now()
	defer func() { s.observe(Filesystem, start, err) }()
	c, err := s.resolve(ctx, owner, sandboxID, Filesystem, now)
	if err != nil {
		return nil, 0, err
	}
	rc, size, err = s.Runtime.Download(ctx, c.target, path)
	if err != nil {
		c.release()
		s.shipFailed(c, err)
		return nil, 0, err
	}
	return releasingReader{ReadCloser: rc, release: c.release}, size, nil
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

func (s *Service) fileOp(ctx context.Context, owner, sandboxID string, now time.Time, retry bool, fn func(*call) error) (err error) {
	start := time.Now()
	defer func() { s.observe(Filesystem, start, err) }()
	_, err = s.with(logctx.WithSandboxID(ctx, sandboxID), owner, sandboxID, Filesystem, now, retry, fn)
	return err
}

// with resolves the target, runs fn with the session held in use, and releases
// it. When the runtime could not be reached at all (its container died since
// the last probe) and retry is set, the session is re-checked — and replaced
// if it is gone — and fn runs once more: the first attempt never reached Ship.
func (s *Service) with(ctx context.Context, owner, sandboxID, capability string, now time.Time, retry bool, fn func(*call) error) (*call, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.resolve(ctx, owner, sandboxID, capability, now)
		if err != nil {
			return nil, err
		}
		err = fn(c)
		c.release()
		if err == nil {
			return c, nil
		}
		s.shipFailed(c, err)
		if !retry || attempt > 0 || !runtime.Unreachable(err) {
			return c, err
		}
		s.Log.WarnContext(ctx, "runtime unreachable; re-checking the session and retrying once", "session_id", c.session.ID)
	}
}

// Terminal resolves the runtime target of an interactive terminal (needs shell).
func (s *Service) Terminal(ctx context.Context, owner, sandboxID string, now time.Time) (runtime.Target, error) {
	c, err := s.resolve(ctx, owner, sandboxID, Shell, now)
	if err != nil {
		return runtime.Target{}, err
	}
	c.release() // a terminal is long-lived; idle GC applies to it like to any client
	return c.target, nil
}
