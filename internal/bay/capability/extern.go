package capability

import (
	"context"
	"errors"
	"time"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// check performs the checks of a capability call that need no session: the
// sandbox is the owner's (404), not expired (409), and its profile has the
// capability (400 capability_not_supported).
func (s *Service) check(ctx context.Context, owner, sandboxID, capability string, now time.Time) (*model.Sandbox, *config.Profile, error) {
	sb := s.recentSandbox(owner, sandboxID, now)
	if sb == nil {
		var err error
		if sb, err = s.Store.GetSandbox(ctx, owner, sandboxID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, errs.New(errs.NotFound, "Resource not found")
			}
			return nil, nil, err
		}
		s.rememberSandbox(sb)
	}
	if sb.Expired(now) {
		return nil, nil, errs.Newf(errs.SandboxExpired, "sandbox is expired").
			With(map[string]any{"sandbox_id": sb.ID, "expires_at": model.FormatTime(*sb.ExpiresAt)})
	}
	p, ok := s.Config.Profile(sb.ProfileID)
	if !ok || s.Profiles[sb.ProfileID] == nil || !p.HasCapability(capability) {
		available := []string{}
		if ok {
			available = p.Capabilities
		}
		return nil, nil, errs.Newf(errs.CapabilityNotSupported, "Profile '%s' does not support capability: %s", sb.ProfileID, capability).
			With(map[string]any{"capability": capability, "available": available})
	}
	return sb, p, nil
}

// Check is the session-free part of a capability call, for capabilities
// served outside this package (browser): it returns the owner's sandbox and
// its profile, or the error a call would get.
func (s *Service) Check(ctx context.Context, owner, sandboxID, capability string, now time.Time) (*model.Sandbox, *config.Profile, error) {
	return s.check(ctx, owner, sandboxID, capability, now)
}

// Call is a capability call resolved for a caller outside this package: the
// sandbox, its running session, and the runtime container that serves the
// capability (routed by primary_for).
type Call struct {
	Sandbox *model.Sandbox
	Session *model.Session
	Target  runtime.Target
}

// Run makes a capability call the way python and shell calls are made: the
// checks, a running session (started on first use, idle deadline pushed), the
// runtime's /meta advertising the capability, fn run with the session held in
// use and watched, and a session whose runtime stopped answering replaced. fn
// runs a second time only when its first attempt never reached the runtime.
// The Call is returned whenever fn ran, with fn's error.
func (s *Service) Run(ctx context.Context, owner, sandboxID, capability string, now time.Time, fn func(ctx context.Context, c *Call) error) (out *Call, err error) {
	start := time.Now()
	defer func() { s.observe(capability, start, err) }()
	c, err := s.with(ctx, owner, sandboxID, capability, now, true, func(ctx context.Context, c *call) error {
		return fn(ctx, &Call{Sandbox: c.sandbox, Session: c.session, Target: c.target})
	})
	if c != nil {
		out = &Call{Sandbox: c.sandbox, Session: c.session, Target: c.target}
	}
	return out, err
}

// Record appends e to the execution history with the caps and tag
// normalization of python and shell rows. A failure is logged, not returned:
// the call ran, and losing its history row must not fail it.
func (s *Service) Record(ctx context.Context, e *model.Execution) {
	limit := s.MaxHistoryBytes
	if limit <= 0 {
		limit = DefaultMaxHistoryBytes
	}
	e.Code = capHistory(e.Code, limit)
	e.Output = capHistoryPtr(e.Output, limit)
	e.Error = capHistoryPtr(e.Error, limit)
	e.Tags = NormalizeTags(e.Tags)
	if err := s.Store.CreateExecution(context.WithoutCancel(ctx), e); err != nil {
		s.Log.ErrorContext(ctx, "recording execution history", "err", err)
	}
}

// sandboxMemory is how long a sandbox row read for a call serves the next
// calls' checks (one database read less per call). It is used only to let a
// call through: what it would refuse is read again. The fields the checks read
// change only by deletion, whose calls are refused further on (the session
// lookup reads the row itself unless the session was verified moments ago,
// and deletion drops that), and by a TTL extension, which only lets more
// through. A claimed warm sandbox changes owner: its old row does not match.
const sandboxMemory = time.Second

type recentRow struct {
	sb   *model.Sandbox // read-only once remembered
	read time.Time      // wall clock
}

// recentSandbox returns the owner's sandbox row read less than sandboxMemory
// ago, if it lets a call at now through; otherwise nil.
func (s *Service) recentSandbox(owner, id string, now time.Time) *model.Sandbox {
	s.rowsMu.Lock()
	r, ok := s.rows[id]
	s.rowsMu.Unlock()
	if !ok || time.Since(r.read) >= sandboxMemory || r.sb.Owner != owner || r.sb.DeletedAt != nil || r.sb.Expired(now) {
		return nil
	}
	return r.sb
}

func (s *Service) rememberSandbox(sb *model.Sandbox) {
	s.rowsMu.Lock()
	defer s.rowsMu.Unlock()
	if s.rows == nil || len(s.rows) >= 4096 {
		s.rows = map[string]recentRow{}
	}
	s.rows[sb.ID] = recentRow{sb: sb, read: time.Now()}
}
