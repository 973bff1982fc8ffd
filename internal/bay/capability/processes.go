package capability

import (
	"context"
	"errors"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/logctx"
)

// Background processes live in Ship: Bay keeps no record of them, so they
// outlive Bay restarts and a handle is valid for as long as the sandbox's
// session runs. Starting one starts the session if needed; the other calls
// never start one (a process cannot be in a session that is not running).

// errNoSession: the sandbox has no running session, so no processes.
var errNoSession = errors.New("no running session")

// processNotFound is the error for an unknown process id.
func processNotFound(id string) error {
	return errs.Newf(errs.ProcessNotFound, "Process not found: %s", id).With(map[string]any{"process_id": id})
}

// processErr maps Ship's 404 for a process to process_not_found.
func processErr(err error, id string) error {
	if e, ok := errs.As(err); ok && e.Code == errs.NotFound {
		return processNotFound(id)
	}
	if errors.Is(err, errNoSession) {
		return processNotFound(id)
	}
	return err
}

// StartProcess starts a background command in the sandbox (starting its
// session if needed). cwd is a validated workspace-relative path or "".
func (s *Service) StartProcess(ctx context.Context, owner, sandboxID, command, cwd string, env map[string]string, now time.Time) (p *runtime.Process, err error) {
	start := time.Now()
	defer func() { s.observe(Shell, start, err) }()
	// Not retried: a start that may have reached Ship must not run twice.
	_, err = s.with(logctx.WithSandboxID(ctx, sandboxID), owner, sandboxID, Shell, now, false, func(ctx context.Context, c *call) (err error) {
		p, err = s.Runtime.StartProcess(ctx, c.target, command, cwd, env)
		return err
	})
	return p, err
}

// onLive runs fn against the sandbox's running session; errNoSession when
// there is none (nothing is started for it).
func (s *Service) onLive(ctx context.Context, owner, sandboxID string, now time.Time, fn func(context.Context, *call) error) error {
	sb, err := s.Store.GetSandbox(ctx, owner, sandboxID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errs.New(errs.NotFound, "Resource not found")
		}
		return err
	}
	if sb.Expired(now) {
		return errs.Newf(errs.SandboxExpired, "sandbox is expired").
			With(map[string]any{"sandbox_id": sb.ID, "expires_at": model.FormatTime(*sb.ExpiresAt)})
	}
	ss, err := s.Sessions.Current(ctx, sb)
	if err != nil {
		return err
	}
	if ss == nil || ss.ObservedState != model.SessionRunning {
		return errNoSession
	}
	// Reads are safe to repeat.
	_, err = s.with(ctx, owner, sandboxID, Shell, now, true, fn)
	return err
}

// Processes lists the sandbox's background processes (none without a running session).
func (s *Service) Processes(ctx context.Context, owner, sandboxID string, now time.Time) (ps []runtime.Process, err error) {
	err = s.onLive(ctx, owner, sandboxID, now, func(ctx context.Context, c *call) (err error) {
		ps, err = s.Runtime.Processes(ctx, c.target)
		return err
	})
	if errors.Is(err, errNoSession) {
		return []runtime.Process{}, nil
	}
	return ps, err
}

// Process returns one background process.
func (s *Service) Process(ctx context.Context, owner, sandboxID, id string, now time.Time) (p *runtime.Process, err error) {
	err = s.onLive(ctx, owner, sandboxID, now, func(ctx context.Context, c *call) (err error) {
		p, err = s.Runtime.GetProcess(ctx, c.target, id)
		return err
	})
	return p, processErr(err, id)
}

// ProcessOutput reads a background process's output from offset.
func (s *Service) ProcessOutput(ctx context.Context, owner, sandboxID, id string, offset int64, maxBytes int, now time.Time) (o *runtime.ProcessOutput, err error) {
	err = s.onLive(ctx, owner, sandboxID, now, func(ctx context.Context, c *call) (err error) {
		o, err = s.Runtime.ReadProcessOutput(ctx, c.target, id, offset, maxBytes)
		return err
	})
	return o, processErr(err, id)
}

// WaitProcess waits up to timeout for a background process to end.
func (s *Service) WaitProcess(ctx context.Context, owner, sandboxID, id string, timeout time.Duration, now time.Time) (p *runtime.Process, err error) {
	err = s.onLive(ctx, owner, sandboxID, now, func(ctx context.Context, c *call) (err error) {
		p, err = s.Runtime.WaitProcess(ctx, c.target, id, timeout)
		return err
	})
	return p, processErr(err, id)
}

// SignalProcess sends a signal to a background process's group.
func (s *Service) SignalProcess(ctx context.Context, owner, sandboxID, id, signal string, now time.Time) (p *runtime.Process, err error) {
	err = s.onLive(ctx, owner, sandboxID, now, func(ctx context.Context, c *call) (err error) {
		p, err = s.Runtime.SignalProcess(ctx, c.target, id, signal)
		return err
	})
	return p, processErr(err, id)
}

// RemoveProcess kills a background process's group if it runs and forgets it.
func (s *Service) RemoveProcess(ctx context.Context, owner, sandboxID, id string, now time.Time) error {
	err := s.onLive(ctx, owner, sandboxID, now, func(ctx context.Context, c *call) error {
		return s.Runtime.RemoveProcess(ctx, c.target, id)
	})
	return processErr(err, id)
}

// HasRunningProcesses reports whether the sandbox's running session has a
// running background process, from Ship's /health (one short call). Any
// doubt (no session, no answer, an old Ship) is false.
func (s *Service) HasRunningProcesses(ctx context.Context, sandboxID string) bool {
	sb, err := s.Store.SandboxByID(ctx, sandboxID)
	if err != nil || sb.CurrentSessionID == "" {
		return false
	}
	ss, err := s.Store.GetSession(ctx, sb.CurrentSessionID)
	if err != nil || ss.ObservedState != model.SessionRunning {
		return false
	}
	t := runtime.Target{Endpoint: ss.Endpoint, Token: ss.Token}
	if p, ok := s.Config.Profile(sb.ProfileID); ok && len(ss.Containers) > 1 {
		if c, ok := p.ContainerFor(Shell); ok {
			for _, ci := range ss.Containers {
				if ci.Name == c.Name {
					t.Endpoint = ci.Endpoint
				}
			}
		}
	}
	h, err := s.Runtime.Health(ctx, t, 2*time.Second)
	return err == nil && h.ProcessesRunning != nil && *h.ProcessesRunning > 0
}
