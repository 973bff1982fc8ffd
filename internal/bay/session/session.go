// Package session keeps a sandbox's compute running: ensure_running starts a
// session (one container, or several on a private network) on first use,
// replaces one whose container died, and tears sessions down. Starts are
// serialized per sandbox by an in-process lock that honours deadlines plus
// database guards, so several Bay replicas never start two: one live session
// row per sandbox (a unique index), and a claim on it (state starting, the
// claiming replica, a deadline) won by a conditional update. A replica that
// finds another live replica's claim waits for that start and uses its
// session; a claim whose replica died (its heartbeat lapsed) or whose start is
// overdue is taken over.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/keylock"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// ContainerSpec is one container of a profile.
type ContainerSpec struct {
	Name         string
	Image        string
	RuntimeType  string // ship | gull
	Port         int
	Env          map[string]string // profile/container env incl. proxy variables
	Resources    driver.Resources
	Capabilities []string
	PrimaryFor   []string
}

// Profile is what a session is started from.
type Profile struct {
	ID          string
	Containers  []ContainerSpec // first = primary
	ProfileEnv  map[string]string
	IdleTimeout time.Duration
	Runtime     string // OCI runtime ("" = default)
	NoNetwork   bool
	Egress      *driver.Egress // network: {allow: [...]}; nil = full (or none)
}

// Config holds the knobs of starting sessions.
type Config struct {
	InstanceID       string
	ReplicaID        string        // this process among the replicas (claims name it)
	Lease            time.Duration // replica lease; an unclaimed session row gets min(Lease, 5s) of grace (default 15s)
	ReadyTimeout     time.Duration // give up waiting for /health (default 120s)
	ReadyPollInitial time.Duration // first poll interval (default 25ms)
	ReadyPollMax     time.Duration // poll interval cap (default 100ms)
	HealthTimeout    time.Duration // per /health attempt (default 2s)
	LockTimeout      time.Duration // max wait for the sandbox lock (default ReadyTimeout+30s)
	ProbeInterval    time.Duration // how often a running session's container is re-checked (default 5s)
	RetryAfterSingle time.Duration // 503 retry hint (1s)
	RetryAfterMulti  time.Duration // (1.5s)
	// SingleInstance: this Bay is the only one using the database (SQLite), so
	// a session found "starting" while we hold the sandbox lock was abandoned
	// by a Bay that died, and is taken over at once.
	SingleInstance bool
}

// startGrace is how long past the ready timeout a start may take (engine
// create and start) before its claim is overdue.
const startGrace = 30 * time.Second

// Store is what the manager needs from persistence.
type Store interface {
	SessionClaim(ctx context.Context, id string, now time.Time) (store.Claim, error)
	ClaimSessionStart(ctx context.Context, ss *model.Session, replica string, until time.Time) error
	DeleteSessionIfVersion(ctx context.Context, id string, version int64) (bool, error)
	SandboxByID(ctx context.Context, id string) (*model.Sandbox, error)
	GetSession(ctx context.Context, id string) (*model.Session, error)
	SessionsOf(ctx context.Context, sandboxID string) ([]*model.Session, error)
	CreateSession(ctx context.Context, ss *model.Session) error
	UpdateSession(ctx context.Context, ss *model.Session) error
	DeleteSession(ctx context.Context, id string) error
	SetCurrentSession(ctx context.Context, sandboxID, sessionID string, idleExpires *time.Time) error
	TouchSandbox(ctx context.Context, id string, idleExpires *time.Time, now time.Time) error
	CargoByID(ctx context.Context, id string) (*model.Cargo, error)
}

// Manager starts, checks and destroys sessions.
type Manager struct {
	store Store
	drv   driver.Driver
	rt    *runtime.Client
	locks *keylock.Locks
	cfg   Config
	log   *slog.Logger
	hooks Hooks

	mu       sync.Mutex
	hot      map[string]*hotSession // sandbox id → its running session, recently verified
	inflight map[string]int         // sandbox id → calls between EnsureRunning and their release
}

// Hooks observe session starts (metrics) and inject faults (tests). All optional.
type Hooks struct {
	Started    func(d time.Duration)
	StartError func()
	// BeforeStart runs after the container is created and recorded, before it starts.
	BeforeStart func(ctx context.Context, ss *model.Session) error
}

// New returns a manager.
func New(st Store, drv driver.Driver, rt *runtime.Client, locks *keylock.Locks, cfg Config, log *slog.Logger, hooks Hooks) *Manager {
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 120 * time.Second
	}
	if cfg.ReadyPollInitial <= 0 {
		cfg.ReadyPollInitial = 25 * time.Millisecond
	}
	if cfg.ReadyPollMax <= 0 {
		cfg.ReadyPollMax = 100 * time.Millisecond
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 2 * time.Second
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = cfg.ReadyTimeout + 30*time.Second
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 5 * time.Second
	}
	if cfg.RetryAfterSingle <= 0 {
		cfg.RetryAfterSingle = time.Second
	}
	if cfg.RetryAfterMulti <= 0 {
		cfg.RetryAfterMulti = 1500 * time.Millisecond
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 15 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Manager{store: st, drv: drv, rt: rt, locks: locks, cfg: cfg, log: log, hooks: hooks,
		hot: map[string]*hotSession{}, inflight: map[string]int{}}
}

// Lock takes the sandbox's lock, bounded by the lock timeout and ctx.
func (m *Manager) Lock(ctx context.Context, sandboxID string) (func(), error) {
	lctx, cancel := context.WithTimeout(ctx, m.cfg.LockTimeout)
	defer cancel()
	unlock, err := m.locks.Lock(lctx, sandboxID)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, m.notReady(sandboxID, false, "Session is starting")
	}
	return unlock, nil
}

func (m *Manager) notReady(sandboxID string, multi bool, msg string) error {
	ra := m.cfg.RetryAfterSingle
	if multi {
		ra = m.cfg.RetryAfterMulti
	}
	return &errs.Error{Code: errs.SessionNotReady, Message: msg, RetryAfter: ra,
		Details: map[string]any{"sandbox_id": sandboxID, "retry_after_ms": ra.Milliseconds()}}
}

// Current returns the sandbox's current session, or nil. A running session
// not verified in the last probe interval is checked first (engine state, one
// /health with the probe deadline), so a dead or wedged runtime is never
// reported as running: the copy returned then says stopped (its container is
// gone) or failed (it stopped answering); the next call replaces it.
func (m *Manager) Current(ctx context.Context, sb *model.Sandbox) (*model.Session, error) {
	if sb.CurrentSessionID == "" {
		return nil, nil
	}
	ss, err := m.store.GetSession(ctx, sb.CurrentSessionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil || ss.ObservedState != model.SessionRunning || m.recentlyVerified(ss) {
		return ss, err
	}
	switch v := m.check(ctx, ss, 1); v {
	case verdictGone, verdictUnresponsive:
		m.forget(ss.SandboxID)
		seen := *ss
		seen.ObservedState = model.SessionStopped
		if v == verdictUnresponsive {
			seen.ObservedState = model.SessionFailed
		}
		return &seen, nil
	}
	return ss, nil
}

func (m *Manager) recentlyVerified(ss *model.Session) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hot[ss.SandboxID]
	return h != nil && h.ss.ID == ss.ID && time.Since(h.verified) < m.cfg.ProbeInterval
}

// EnsureRunning returns a running session of the sandbox, starting one if needed,
// and pushes the idle deadline to now + profile idle timeout. The session is
// held in use until release is called: GC never reclaims a session mid-call.
func (m *Manager) EnsureRunning(ctx context.Context, sandboxID string, p *Profile, now time.Time) (ss *model.Session, release func(), err error) {
	unlock, err := m.Lock(ctx, sandboxID)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	ss, err = m.ensureLocked(ctx, sandboxID, p, now)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	m.inflight[sandboxID]++
	m.mu.Unlock()
	var once sync.Once
	return ss, func() {
		once.Do(func() {
			m.mu.Lock()
			if m.inflight[sandboxID]--; m.inflight[sandboxID] <= 0 {
				delete(m.inflight, sandboxID)
			}
			m.mu.Unlock()
		})
	}, nil
}

// InUse reports whether calls are running against the sandbox's session.
// Reclaimers check it with the sandbox lock held.
func (m *Manager) InUse(sandboxID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inflight[sandboxID] > 0
}

// hotSession lets the common call — a running session verified moments ago —
// skip the database: every change to a session goes through this manager under
// the sandbox lock and drops the entry (a change by another replica shows up as
// an unreachable runtime, which drops it too).
type hotSession struct {
	ss       *model.Session // read-only once cached
	verified time.Time      // wall clock: when its container was last seen running
	touched  time.Time      // domain clock: when idle_expires_at was last pushed
}

// touchEvery is how stale idle_expires_at may get before a call writes it again.
func touchEvery(p *Profile) time.Duration { return min(p.IdleTimeout/100, 10*time.Second) }

func (m *Manager) ensureLocked(ctx context.Context, sandboxID string, p *Profile, now time.Time) (*model.Session, error) {
	m.mu.Lock()
	h := m.hot[sandboxID]
	m.mu.Unlock()
	if h != nil && time.Since(h.verified) < m.cfg.ProbeInterval {
		if now.Sub(h.touched) >= touchEvery(p) {
			idle := now.Add(p.IdleTimeout)
			if err := m.store.TouchSandbox(ctx, sandboxID, &idle, now); err != nil {
				return nil, err
			}
			m.mu.Lock()
			h.touched = now
			m.mu.Unlock()
		}
		return h.ss, nil
	}
	sb, err := m.store.SandboxByID(ctx, sandboxID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errs.New(errs.NotFound, "Resource not found")
		}
		return nil, err
	}
	if sb.DeletedAt != nil {
		return nil, errs.New(errs.NotFound, "Resource not found")
	}
	idle := now.Add(p.IdleTimeout)
	begin := time.Now()
	deadline := begin.Add(m.cfg.LockTimeout)
	poll := 25 * time.Millisecond
	for {
		if time.Now().After(deadline) {
			return nil, m.notReady(sb.ID, len(p.Containers) > 1, "Session is starting")
		}
		ss, err := m.liveSession(ctx, sb)
		if err != nil {
			return nil, err
		}
		if ss != nil && ss.ObservedState == model.SessionRunning {
			v := m.check(ctx, ss, 2)
			if v == verdictHealthy {
				if sb.CurrentSessionID != ss.ID {
					err = m.store.SetCurrentSession(ctx, sb.ID, ss.ID, &idle)
				} else {
					err = m.store.TouchSandbox(ctx, sb.ID, &idle, now)
				}
				if err == nil {
					m.markVerified(ss, now)
				}
				return ss, err
			}
			m.log.WarnContext(ctx, "replacing session: "+v.String(), "session_id", ss.ID)
			m.teardown(ctx, ss)
			ss.ObservedState = model.SessionPending
			ss.ContainerID, ss.Endpoint, ss.Containers, ss.Network = "", "", nil, ""
		} else if ss != nil && (ss.ObservedState == model.SessionStarting || ss.ObservedState == model.SessionPending) &&
			!m.cfg.SingleInstance {
			// Another replica may be starting it right now: wait for its start
			// while its claim stands, take it over when the claim lapsed.
			cur := now.Add(time.Since(begin))
			c, err := m.store.SessionClaim(ctx, ss.ID, cur)
			if errors.Is(err, store.ErrNotFound) {
				continue // gone meanwhile; look again
			}
			if err != nil {
				return nil, err
			}
			// An unclaimed row is claimed by its inserter within milliseconds;
			// one older than a few seconds was left by a failure.
			if c.Live(cur, m.cfg.ReplicaID, min(m.cfg.Lease, 5*time.Second)) {
				if err := sleep(ctx, min(poll, time.Until(deadline))); err != nil {
					return nil, err
				}
				poll = min(2*poll, 250*time.Millisecond)
				continue
			}
			// Lapsed: remove that row (only the version seen: nobody moved it on
			// since) and start a new session. A new id, so that the lapsed
			// claimer, should it still live, tears down only its own containers.
			m.log.WarnContext(ctx, "taking over a lapsed session start", "session_id", ss.ID,
				"claimed_by", c.Replica, "claimer_alive", c.ReplicaAlive)
			ok, err := m.store.DeleteSessionIfVersion(ctx, ss.ID, ss.Version)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			m.teardown(ctx, ss)
			ss = nil
		}
		if ss != nil && (ss.ContainerID != "" || len(ss.Containers) > 0) {
			// A failed or abandoned start may have left containers behind.
			m.teardown(ctx, ss)
			ss.ContainerID, ss.Endpoint, ss.Containers, ss.Network = "", "", nil, ""
		}
		created := ss == nil
		if created {
			ss = &model.Session{
				ID: model.NewID("sess"), SandboxID: sb.ID, ProfileID: p.ID, Token: newToken(),
				DesiredState: model.SessionRunning, ObservedState: model.SessionPending,
				CreatedAt: now, LastActiveAt: now,
			}
			if err := m.store.CreateSession(ctx, ss); err != nil {
				if errors.Is(err, store.ErrConflict) {
					continue // another replica inserted one; look again
				}
				return nil, err
			}
		}
		// Point the sandbox at the session first: while it starts, and if it
		// fails, the sandbox's status says so. Its idle deadline moves too, so
		// no GC pass (on any replica) takes the session for idle mid-start.
		if sb.CurrentSessionID != ss.ID {
			if err := m.store.SetCurrentSession(ctx, sb.ID, ss.ID, &idle); err != nil {
				if created {
					// Unclaimed, the row would make the next call wait out its
					// grace for a start nobody makes: remove it (best effort).
					_, _ = m.store.DeleteSessionIfVersion(context.WithoutCancel(ctx), ss.ID, ss.Version)
				}
				return nil, err
			}
			sb.CurrentSessionID = ss.ID
		}
		if err := m.start(ctx, sb, ss, p, now); err != nil {
			if errors.Is(err, errClaimLost) {
				continue // another replica claimed it first: wait for that start
			}
			return nil, err
		}
		if err := m.store.TouchSandbox(ctx, sb.ID, &idle, now); err != nil {
			return nil, err
		}
		m.markVerified(ss, now)
		return ss, nil
	}
}

// errClaimLost: another replica claimed the session's start first.
var errClaimLost = errors.New("session: start claimed by another replica")

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// liveSession finds the sandbox's session that is not stopped.
func (m *Manager) liveSession(ctx context.Context, sb *model.Sandbox) (*model.Session, error) {
	list, err := m.store.SessionsOf(ctx, sb.ID)
	if err != nil {
		return nil, err
	}
	var failed *model.Session
	for _, ss := range list {
		switch ss.ObservedState {
		case model.SessionPending, model.SessionStarting, model.SessionRunning:
			return ss, nil
		case model.SessionFailed:
			failed = ss
		}
	}
	return failed, nil // a failed session is retried in place
}

// verdict is what a check found out about a running session.
type verdict int

const (
	verdictHealthy      verdict = iota // running and answering (or the engine could not tell)
	verdictGone                        // a container exited or was removed
	verdictUnresponsive                // running, but its runtime does not answer /health
)

func (v verdict) String() string {
	switch v {
	case verdictGone:
		return "its container is gone"
	case verdictUnresponsive:
		return "its runtime stopped answering"
	}
	return "healthy"
}

// check asks the engine whether the session's containers run, then each
// runtime's /health with the probe deadline, up to attempts times. /health is
// answered by Ship's HTTP server while a cell or command runs, so a busy
// runtime passes; a stopped (SIGSTOP) or starved one does not. An engine error
// trusts the record, as upstream does.
func (m *Manager) check(ctx context.Context, ss *model.Session, attempts int) verdict {
	if m.Gone(ctx, ss) {
		return verdictGone
	}
	for _, t := range targets(ss) {
		if !m.Responsive(ctx, t, attempts) && ctx.Err() == nil {
			return verdictUnresponsive
		}
	}
	return verdictHealthy
}

// Gone reports whether the driver says a container of the session exited or
// no longer exists (a driver error says no: the record is trusted).
func (m *Manager) Gone(ctx context.Context, ss *model.Session) bool {
	obs, err := m.drv.InspectSession(ctx, ss.ID)
	if errors.Is(err, driver.ErrNotFound) {
		return true
	}
	if err != nil {
		m.log.WarnContext(ctx, "session probe failed; trusting the record", "session_id", ss.ID, "err", err)
		return false
	}
	if obs.State != driver.StateRunning {
		return true
	}
	return len(obs.Containers) < len(ss.Containers) // one removed behind the driver's back
}

func targets(ss *model.Session) []runtime.Target {
	if len(ss.Containers) == 0 {
		return []runtime.Target{{Endpoint: ss.Endpoint, Token: ss.Token}}
	}
	out := make([]runtime.Target, 0, len(ss.Containers))
	for _, c := range ss.Containers {
		out = append(out, runtime.Target{Endpoint: c.Endpoint, Token: ss.Token})
	}
	return out
}

// Responsive reports whether the runtime answers /health within the probe
// deadline in one of attempts tries.
func (m *Manager) Responsive(ctx context.Context, t runtime.Target, attempts int) bool {
	for i := 0; i < max(attempts, 1); i++ {
		if m.rt.Healthy(ctx, t, m.cfg.HealthTimeout) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
	}
	return false
}

// Recover re-checks the sandbox's session after a call to it got no answer.
// When failed (the session the call used) is still the sandbox's session and
// its container is gone or its runtime stopped answering, the session is
// replaced at once: its containers are destroyed and new ones start on the
// same cargo volume (files stay; memory state is lost). It reports whether it
// replaced the session.
func (m *Manager) Recover(ctx context.Context, sandboxID, failed string, p *Profile, now time.Time) (bool, error) {
	return m.replace(ctx, sandboxID, failed, p, now, true)
}

// Replace replaces the session without probing it again: the caller has just
// seen its runtime fail /health. A no-op when failed is no longer the
// sandbox's running session.
func (m *Manager) Replace(ctx context.Context, sandboxID, failed string, p *Profile, now time.Time) (bool, error) {
	return m.replace(ctx, sandboxID, failed, p, now, false)
}

func (m *Manager) replace(ctx context.Context, sandboxID, failed string, p *Profile, now time.Time, probe bool) (bool, error) {
	m.forget(sandboxID)
	unlock, err := m.Lock(ctx, sandboxID)
	if err != nil {
		return false, err
	}
	defer unlock()
	ss, err := m.store.GetSession(ctx, failed)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // already replaced or destroyed
	}
	if err != nil {
		return false, err
	}
	if ss.ObservedState != model.SessionRunning {
		return false, nil
	}
	v := verdictUnresponsive
	if probe {
		if v = m.check(ctx, ss, 2); v == verdictHealthy {
			return false, nil
		}
	}
	m.log.WarnContext(ctx, "recovering session: "+v.String(), "session_id", ss.ID)
	m.teardown(ctx, ss)
	ss.ObservedState = model.SessionFailed // retried in place by ensureLocked, whatever happens next
	ss.ContainerID, ss.Endpoint, ss.Containers, ss.Network = "", "", nil, ""
	if err := m.store.UpdateSession(ctx, ss); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
		return true, err
	}
	// (A conflict: another replica replaced it meanwhile; ensureLocked waits
	// for that start or uses its session.)
	if _, err := m.ensureLocked(ctx, sandboxID, p, now); err != nil {
		return true, err
	}
	return true, nil
}

func (m *Manager) markVerified(ss *model.Session, now time.Time) {
	m.mu.Lock()
	m.hot[ss.SandboxID] = &hotSession{ss: ss, verified: time.Now(), touched: now}
	m.mu.Unlock()
}

// forget drops the cached session of the sandbox.
func (m *Manager) forget(sandboxID string) {
	m.mu.Lock()
	delete(m.hot, sandboxID)
	m.mu.Unlock()
}

func newToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// start brings ss up from pending/failed; on any failure it removes what it
// created and records the session as failed.
func (m *Manager) start(ctx context.Context, sb *model.Sandbox, ss *model.Session, p *Profile, now time.Time) (err error) {
	begin := time.Now()
	ss.ObservedState = model.SessionStarting
	ss.DesiredState = model.SessionRunning
	ss.ProfileID = p.ID
	ss.StartedAt = &now
	if err := m.store.ClaimSessionStart(ctx, ss, m.cfg.ReplicaID, now.Add(m.cfg.ReadyTimeout+startGrace)); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return errClaimLost
		}
		return err
	}
	defer func() {
		if err == nil {
			if m.hooks.Started != nil {
				m.hooks.Started(time.Since(begin))
			}
			return
		}
		if m.hooks.StartError != nil {
			m.hooks.StartError()
		}
		// Clean up with a context that survives the caller's cancellation.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		m.teardown(cctx, ss)
		ss.ObservedState = model.SessionFailed
		ss.ContainerID, ss.Endpoint, ss.Containers, ss.Network = "", "", nil, ""
		if uerr := m.store.UpdateSession(cctx, ss); uerr != nil {
			m.log.ErrorContext(cctx, "recording failed session", "session_id", ss.ID, "err", uerr)
		}
		m.log.WarnContext(ctx, "session start failed", "session_id", ss.ID, "err", err)
	}()

	cargo, err := m.store.CargoByID(ctx, sb.CargoID)
	if err != nil {
		return fmt.Errorf("session: cargo %s: %w", sb.CargoID, err)
	}
	spec := m.sessionSpec(sb, ss, p, cargo.DriverRef)
	created, err := m.drv.CreateSession(ctx, spec)
	if err != nil {
		return m.driverError(sb, p, "create", err)
	}
	ss.Containers = make([]model.ContainerInfo, len(p.Containers))
	for i, c := range p.Containers {
		ss.Containers[i] = model.ContainerInfo{Name: c.Name, RuntimeType: c.RuntimeType, Capabilities: c.Capabilities, Status: "created"}
		if oc := created.Container(c.Name); oc != nil {
			ss.Containers[i].ContainerID = oc.ID
		}
	}
	ss.ContainerID = ss.Containers[0].ContainerID
	// Record the containers before starting them: a crash from here on leaves a
	// record GC and reconcile can follow.
	if err := m.store.UpdateSession(ctx, ss); err != nil {
		return err
	}
	if m.hooks.BeforeStart != nil {
		if err := m.hooks.BeforeStart(ctx, ss); err != nil {
			return err
		}
	}
	started, err := m.drv.StartSession(ctx, ss.ID)
	if err != nil {
		return m.driverError(sb, p, "start", err)
	}
	var wg sync.WaitGroup
	errc := make([]error, len(ss.Containers))
	for i := range ss.Containers {
		oc := started.Container(ss.Containers[i].Name)
		if oc == nil || oc.Endpoint == "" {
			errc[i] = fmt.Errorf("driver started no container %s", ss.Containers[i].Name)
			continue
		}
		ss.Containers[i].Endpoint = oc.Endpoint
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.waitReady(ctx, runtime.Target{Endpoint: oc.Endpoint, Token: ss.Token}); err != nil {
				errc[i] = err
				return
			}
			ss.Containers[i].Status = "running"
		}()
	}
	wg.Wait()
	if err := errors.Join(errc...); err != nil {
		var e *errs.Error
		if errors.As(err, &e) {
			return e
		}
		return fmt.Errorf("session: %w", err)
	}
	ss.Endpoint = ss.Containers[0].Endpoint
	ss.ObservedState = model.SessionRunning
	ss.LastActiveAt = now
	if err := m.store.UpdateSession(ctx, ss); err != nil {
		return err
	}
	return nil
}

// driverError turns the driver's error vocabulary into the client's: a
// missing image is the deployment's gap (503 profile_unavailable naming it),
// an unschedulable session a retry later (503 session_not_ready); the details
// (nodes, events) go to the log only.
func (m *Manager) driverError(sb *model.Sandbox, p *Profile, op string, err error) error {
	images := make([]string, 0, len(p.Containers))
	for _, c := range p.Containers {
		if !slices.Contains(images, c.Image) {
			images = append(images, c.Image)
		}
	}
	switch {
	case errors.Is(err, driver.ErrImageNotFound) && op == "create":
		return errs.Newf(errs.ProfileUnavailable, "Runtime image %s of profile %s is not available where sandboxes run "+
			"(no registry could provide it; build or load it there, e.g. make image / make image-data)", strings.Join(images, ", "), p.ID).Wrap(err)
	case errors.Is(err, driver.ErrImageNotFound): // Kubernetes learns it only when the pod runs
		return errs.Newf(errs.ProfileUnavailable, "Runtime image %s of profile %s could not be pulled where the sandbox "+
			"was scheduled (load it into the nodes' image store or a registry they reach)", strings.Join(images, ", "), p.ID).Wrap(err)
	case errors.Is(err, driver.ErrStartTimeout): // placed, but not running in time: the details go to the log
		return m.notReady(sb.ID, len(p.Containers) > 1, "The sandbox's runtime did not start in time; try again later").(*errs.Error).Wrap(err)
	case errors.Is(err, driver.ErrUnschedulable):
		return m.notReady(sb.ID, len(p.Containers) > 1, "The sandbox's runtime could not be scheduled (no node fits its "+
			"resources, its volume is not bound, or a quota is exhausted); try again later").(*errs.Error).Wrap(err)
	}
	return fmt.Errorf("session: %s: %w", op, err)
}

// sessionSpec is what the driver creates for ss: the profile's containers on
// the sandbox's cargo volume, labelled for GC and reconcile.
func (m *Manager) sessionSpec(sb *model.Sandbox, ss *model.Session, p *Profile, volume string) driver.SessionSpec {
	multi := len(p.Containers) > 1
	spec := driver.SessionSpec{
		ID: ss.ID,
		Labels: map[string]string{
			driver.LabelManaged: "true", driver.LabelOwner: sb.Owner, driver.LabelSandboxID: sb.ID,
			driver.LabelCargoID: sb.CargoID, driver.LabelProfileID: p.ID, driver.LabelInstanceID: m.cfg.InstanceID,
		},
		Volume: volume, Runtime: p.Runtime, NoNetwork: p.NoNetwork, Egress: p.Egress,
	}
	for _, c := range p.Containers {
		labels := map[string]string{}
		if multi {
			labels[driver.LabelContainerName] = c.Name
			labels[driver.LabelRuntimeType] = c.RuntimeType
		}
		spec.Containers = append(spec.Containers, driver.ContainerSpec{
			Name: c.Name, Image: c.Image, Env: m.containerEnv(sb, ss, p, c, multi), Port: c.Port,
			Labels: labels, Resources: c.Resources,
		})
	}
	return spec
}

func (m *Manager) containerEnv(sb *model.Sandbox, ss *model.Session, p *Profile, c ContainerSpec, multi bool) map[string]string {
	env := maps.Clone(c.Env)
	if env == nil {
		env = map[string]string{}
	}
	if len(p.ProfileEnv) > 0 {
		// Upstream's ':'-joined form for old images, and JSON so values with ':' survive.
		keys := make([]string, 0, len(p.ProfileEnv))
		for k := range p.ProfileEnv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		pairs := make([]string, 0, len(keys))
		for _, k := range keys {
			pairs = append(pairs, k+"="+p.ProfileEnv[k])
		}
		env["BAY_PROFILE_ENV"] = strings.Join(pairs, ":")
		j, _ := json.Marshal(p.ProfileEnv)
		env["BAY_PROFILE_ENV_JSON"] = string(j)
	}
	env["BAY_SESSION_ID"] = ss.ID
	env["BAY_SANDBOX_ID"] = sb.ID
	env["BAY_WORKSPACE_PATH"] = "/workspace"
	env["SHIP_TOKEN"] = ss.Token
	env["SHIP_PORT"] = strconv.Itoa(c.Port)
	if multi {
		env["BAY_CONTAINER_NAME"] = c.Name
	}
	return env
}

// waitReady polls /health with backoff until 200 or the ready timeout.
func (m *Manager) waitReady(ctx context.Context, t runtime.Target) error {
	deadline := time.Now().Add(m.cfg.ReadyTimeout)
	interval := m.cfg.ReadyPollInitial
	for {
		if m.rt.Healthy(ctx, t, m.cfg.HealthTimeout) {
			return nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return errs.New(errs.SessionNotReady, "Runtime failed to become ready").Wrap(errors.New("readiness timeout"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(interval, remaining)):
		}
		interval = min(interval*2, m.cfg.ReadyPollMax)
	}
}

// teardown removes what the driver runs of the session (not its row).
func (m *Manager) teardown(ctx context.Context, ss *model.Session) {
	m.forget(ss.SandboxID)
	if err := m.drv.DestroySession(ctx, ss.ID); err != nil {
		m.log.ErrorContext(ctx, "destroying session", "session_id", ss.ID, "err", err)
	}
}

// Destroy removes a session's containers and its row.
func (m *Manager) Destroy(ctx context.Context, ss *model.Session) error {
	m.teardown(ctx, ss)
	return m.store.DeleteSession(ctx, ss.ID)
}

// DestroyAll removes every session of a sandbox and clears its pointer. Call with the lock held.
func (m *Manager) DestroyAll(ctx context.Context, sandboxID string) error {
	m.forget(sandboxID)
	list, err := m.store.SessionsOf(ctx, sandboxID)
	if err != nil {
		return err
	}
	m.stopGracefully(ctx, list)
	var errList []error
	for _, ss := range list {
		if err := m.Destroy(ctx, ss); err != nil {
			errList = append(errList, err)
		}
	}
	if err := m.store.SetCurrentSession(ctx, sandboxID, "", nil); err != nil {
		errList = append(errList, err)
	}
	return errors.Join(errList...)
}
