// Package gc reclaims what sandboxes leave behind: idle sessions, expired
// sandboxes, orphaned cargos and containers. Each task re-checks its condition
// under the sandbox's lock before acting, so a call racing with GC never loses
// its session mid-request. One pass runs at a time across the deployment,
// under a database lease renewed while the pass runs: several Bay replicas
// sharing PostgreSQL take turns, and a holder killed mid-pass loses the lease
// when it expires (replica.lease_seconds) for another replica to take over.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shipyard/shipyard/internal/bay/api"
	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/replica"
	"github.com/shipyard/shipyard/internal/bay/sandbox"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// Task names (upstream).
const (
	IdleSession     = "idle_session"
	ExpiredSandbox  = "expired_sandbox"
	OrphanCargo     = "orphan_cargo"
	OrphanContainer = "orphan_container"
)

// Order is the order tasks run in.
var Order = []string{IdleSession, ExpiredSandbox, OrphanCargo, OrphanContainer}

// TaskResult is one task's outcome (upstream shape).
type TaskResult struct {
	TaskName     string   `json:"task_name"`
	CleanedCount int      `json:"cleaned_count"`
	SkippedCount int      `json:"skipped_count"`
	Errors       []string `json:"errors"`
}

// Result is one pass's outcome (upstream shape).
type Result struct {
	Results      []TaskResult `json:"results"`
	TotalCleaned int          `json:"total_cleaned"`
	TotalErrors  int          `json:"total_errors"`
	DurationMs   int64        `json:"duration_ms"`
}

// Observer receives pass and task outcomes (metrics). Optional.
type Observer interface {
	GCPass(d time.Duration, err error)
	GCTask(task string, cleaned, errors int)
}

// Config selects and paces the tasks.
type Config struct {
	Enabled      bool // background loop on
	RunOnStartup bool
	Interval     time.Duration
	InstanceID   string
	// ReplicaID is this process (the lease holder); Lease how long the GC
	// lease lasts unrenewed, and how long a replica silent that long is dead.
	ReplicaID string
	Lease     time.Duration
	// SingleInstance: this Bay is the only one on the database (SQLite).
	SingleInstance bool
	Tasks          map[string]bool // task → enabled
	// LockWait bounds how long a task waits for a busy sandbox before skipping it.
	LockWait time.Duration
	// KeepBusy: idle reclaim skips a sandbox for which Busy reports a running
	// background process.
	KeepBusy bool
}

// Collector runs GC passes.
type Collector struct {
	Store     *store.Store
	Driver    driver.Driver
	Sessions  *session.Manager
	Sandboxes *sandbox.Service
	Config    Config
	Now       func() time.Time
	Log       *slog.Logger
	Observer  Observer
	// Busy reports whether a sandbox's runtime has a running background
	// process (one short call to it); used with Config.KeepBusy. Optional.
	Busy func(ctx context.Context, sandboxID string) bool

	holder     string
	reconciled chan struct{} // closed once start-up reconcile is over
	running    sync.Mutex
	mu         sync.Mutex
	busy       bool
	last       *Result
}

// Init prepares the collector (holder id for the lease).
func (c *Collector) Init() {
	c.holder = c.Config.ReplicaID
	if c.holder == "" {
		c.holder = c.Config.InstanceID + "/" + model.NewID("gc")
	}
	if c.Config.LockWait <= 0 {
		c.Config.LockWait = 2 * time.Second
	}
	if c.Config.Lease <= 0 {
		c.Config.Lease = 15 * time.Second
	}
}

// ExpectReconcile makes passes wait until Reconcile has run (call before starting it).
func (c *Collector) ExpectReconcile() { c.reconciled = make(chan struct{}) }

func (c *Collector) awaitReconcile(ctx context.Context) error {
	if c.reconciled == nil {
		return nil
	}
	select {
	case <-c.reconciled:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs one pass now (the admin route). names restricts the tasks (all enabled when empty).
func (c *Collector) Run(ctx context.Context, names []string) (any, error) {
	// A pass right after start-up sees what reconcile left, not what it is fixing.
	if err := c.awaitReconcile(ctx); err != nil {
		return nil, err
	}
	if !c.running.TryLock() {
		return nil, api.ErrGCBusy
	}
	defer c.running.Unlock()
	return c.pass(ctx, names)
}

func (c *Collector) pass(ctx context.Context, names []string) (*Result, error) {
	c.setBusy(true)
	defer c.setBusy(false)
	start := time.Now()
	now := c.Now()
	held, release, ok, err := replica.Hold(ctx, c.Store, "gc", c.holder, c.Config.Lease, c.Now, c.Log)
	if err != nil {
		return nil, fmt.Errorf("gc: lease: %w", err)
	}
	if !ok {
		return nil, api.ErrGCBusy // another replica is collecting
	}
	defer release()
	ctx = held // a lost lease stops the pass

	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	res := &Result{Results: []TaskResult{}}
	for _, name := range Order {
		if len(names) > 0 && !want[name] {
			continue
		}
		if len(names) == 0 && !c.Config.Tasks[name] {
			continue
		}
		tr := c.runTask(ctx, name, now)
		res.Results = append(res.Results, tr)
		res.TotalCleaned += tr.CleanedCount
		res.TotalErrors += len(tr.Errors)
		if c.Observer != nil {
			c.Observer.GCTask(name, tr.CleanedCount, len(tr.Errors))
		}
	}
	// Housekeeping with no task of its own: idempotency records past their TTL
	// (a key reused later replaces its expired record too; this bounds the table),
	// starts whose replica died with nobody calling the sandbox since (so no
	// sandbox stays starting), and the rows of replicas dead for a day.
	if _, err := c.Store.DeleteExpiredIdempotency(ctx, now); err != nil {
		c.Log.WarnContext(ctx, "gc: expired idempotency keys", "err", err)
	}
	if err := c.lapsedStarts(ctx, now, ""); err != nil {
		c.Log.WarnContext(ctx, "gc: lapsed session starts", "err", err)
	}
	if _, err := c.Store.DeleteDeadReplicas(ctx, now.Add(-24*time.Hour)); err != nil {
		c.Log.WarnContext(ctx, "gc: dead replicas", "err", err)
	}
	res.DurationMs = time.Since(start).Milliseconds()
	if c.Observer != nil {
		c.Observer.GCPass(time.Since(start), nil)
	}
	c.mu.Lock()
	c.last = res
	c.mu.Unlock()
	if res.TotalCleaned > 0 || res.TotalErrors > 0 {
		c.Log.InfoContext(ctx, "gc pass", "cleaned", res.TotalCleaned, "errors", res.TotalErrors, "duration_ms", res.DurationMs)
	}
	return res, nil
}

func (c *Collector) setBusy(b bool) {
	c.mu.Lock()
	c.busy = b
	c.mu.Unlock()
}

func (c *Collector) runTask(ctx context.Context, name string, now time.Time) TaskResult {
	tr := TaskResult{TaskName: name, Errors: []string{}}
	var err error
	switch name {
	case IdleSession:
		err = c.idleSessions(ctx, now, &tr)
	case ExpiredSandbox:
		err = c.expiredSandboxes(ctx, now, &tr)
	case OrphanCargo:
		err = c.orphanCargos(ctx, &tr)
	case OrphanContainer:
		err = c.orphanContainers(ctx, &tr)
	}
	if err != nil {
		tr.Errors = append(tr.Errors, "Task failed: "+err.Error())
	}
	return tr
}

// withSandbox runs fn under the sandbox's lock with a fresh read of the row;
// a sandbox busy beyond LockWait is skipped.
func (c *Collector) withSandbox(ctx context.Context, id string, tr *TaskResult, fn func(sb *model.Sandbox) (bool, error)) {
	lctx, cancel := context.WithTimeout(ctx, c.Config.LockWait)
	unlock, err := c.Sessions.Lock(lctx, id)
	cancel()
	if err != nil {
		tr.SkippedCount++
		return
	}
	defer unlock()
	sb, err := c.Store.SandboxByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		tr.SkippedCount++
		return
	}
	if err == nil {
		var done bool
		done, err = fn(sb)
		if err == nil {
			if done {
				tr.CleanedCount++
			} else {
				tr.SkippedCount++
			}
			return
		}
	}
	tr.Errors = append(tr.Errors, fmt.Sprintf("sandbox %s: %v", id, err))
}

// idleSessions: idle_expires_at passed → sessions and containers removed, cargo kept.
func (c *Collector) idleSessions(ctx context.Context, now time.Time, tr *TaskResult) error {
	f, no := false, false
	list, err := c.Store.FindSandboxes(ctx, store.SandboxFilter{IdleBefore: &now, Deleted: &no, Warm: &f})
	if err != nil {
		return err
	}
	for _, sb := range list {
		// Asked before taking the lock: a slow runtime must not hold up calls.
		if c.Config.KeepBusy && c.Busy != nil && c.Busy(ctx, sb.ID) {
			tr.SkippedCount++
			continue
		}
		c.withSandbox(ctx, sb.ID, tr, func(sb *model.Sandbox) (bool, error) {
			if sb.DeletedAt != nil || sb.Warm || sb.IdleExpiresAt == nil || !sb.IdleExpiresAt.Before(now) || c.Sessions.InUse(sb.ID) {
				return false, nil
			}
			return true, c.Sessions.DestroyAll(ctx, sb.ID)
		})
	}
	return nil
}

// expiredSandboxes: TTL passed → soft-delete, sessions and managed cargo removed.
// Also finishes deletes a crash cut short (sessions of deleted sandboxes).
func (c *Collector) expiredSandboxes(ctx context.Context, now time.Time, tr *TaskResult) error {
	f, no := false, false
	list, err := c.Store.FindSandboxes(ctx, store.SandboxFilter{ExpiredBefore: &now, Deleted: &no, Warm: &f})
	if err != nil {
		return err
	}
	for _, sb := range list {
		c.withSandbox(ctx, sb.ID, tr, func(sb *model.Sandbox) (bool, error) {
			if sb.DeletedAt != nil || sb.Warm || !sb.Expired(now) || c.Sessions.InUse(sb.ID) {
				return false, nil
			}
			if _, err := c.Store.SoftDeleteSandbox(ctx, sb.ID, now); err != nil {
				return false, err
			}
			return true, c.Sandboxes.Release(ctx, sb)
		})
	}
	return c.deletedLeftovers(ctx, tr)
}

// deletedLeftovers finishes deletes a crash cut short: sessions of deleted sandboxes.
func (c *Collector) deletedLeftovers(ctx context.Context, tr *TaskResult) error {
	leftovers, err := c.Store.SessionsOfDeletedSandboxes(ctx)
	if err != nil {
		return err
	}
	for _, ss := range leftovers {
		if err := c.Sessions.Destroy(ctx, ss); err != nil {
			tr.Errors = append(tr.Errors, fmt.Sprintf("session %s: %v", ss.ID, err))
			continue
		}
		tr.CleanedCount++
	}
	return nil
}

// orphanCargos: managed cargo whose sandbox is gone and which no container
// uses → volume and record removed. Volumes of this instance with no record at
// all are removed too.
func (c *Collector) orphanCargos(ctx context.Context, tr *TaskResult) error {
	// Volumes are listed before records are read: a volume is always recorded
	// before it is created, so one seen here without a record is truly orphaned.
	vols, err := c.Driver.ListVolumes(ctx, map[string]string{driver.LabelManaged: "true", driver.LabelInstanceID: c.Config.InstanceID})
	if err != nil {
		return err
	}
	list, err := c.Store.OrphanCargos(ctx)
	if err != nil {
		return err
	}
	for _, cg := range list {
		users, err := c.Driver.ListSessions(ctx, map[string]string{driver.LabelManaged: "true", driver.LabelCargoID: cg.ID})
		if err != nil {
			tr.Errors = append(tr.Errors, fmt.Sprintf("cargo %s: %v", cg.ID, err))
			continue
		}
		if len(users) > 0 {
			tr.SkippedCount++
			continue
		}
		if err := c.Driver.DeleteVolume(ctx, cg.DriverRef); err != nil {
			tr.Errors = append(tr.Errors, fmt.Sprintf("cargo %s: %v", cg.ID, err))
			continue
		}
		if err := c.Store.DeleteCargo(ctx, cg.ID); err != nil {
			tr.Errors = append(tr.Errors, fmt.Sprintf("cargo %s: %v", cg.ID, err))
			continue
		}
		tr.CleanedCount++
	}
	if len(vols) == 0 {
		return nil
	}
	refs, err := c.Store.AllCargoRefs(ctx)
	if err != nil {
		return err
	}
	for _, v := range vols {
		if refs[v] {
			continue
		}
		if err := c.Driver.DeleteVolume(ctx, v); err != nil {
			if errors.Is(err, driver.ErrInUse) {
				tr.SkippedCount++
				continue
			}
			tr.Errors = append(tr.Errors, fmt.Sprintf("volume %s: %v", v, err))
			continue
		}
		tr.CleanedCount++
	}
	return nil
}

// orphanContainers: a session labelled bay.managed=true with this Bay's
// instance id and no session record → removed (all its containers, its
// network or pod). Nothing else is touched.
func (c *Collector) orphanContainers(ctx context.Context, tr *TaskResult) error {
	list, err := c.Driver.ListSessions(ctx, map[string]string{driver.LabelManaged: "true", driver.LabelInstanceID: c.Config.InstanceID})
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return nil
	}
	ids := make([]string, 0, len(list))
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	// Read after listing: a session row always exists before its containers.
	sessions, err := c.Store.SessionsByID(ctx, ids)
	if err != nil {
		return err
	}
	for _, s := range list {
		if s.ID == "" || sessions[s.ID] != nil {
			continue
		}
		if s.Labels[driver.LabelSandboxID] == "" || s.Labels[driver.LabelCargoID] == "" {
			tr.SkippedCount++ // not shaped like ours; leave it
			continue
		}
		if err := c.Driver.DestroySession(ctx, s.ID); err != nil {
			tr.Errors = append(tr.Errors, fmt.Sprintf("session %s: %v", s.ID, err))
			continue
		}
		tr.CleanedCount++
	}
	return nil
}

// Status is the admin status document (upstream shape).
func (c *Collector) Status() any {
	c.mu.Lock()
	busy := c.busy
	c.mu.Unlock()
	tasks := map[string]map[string]bool{}
	for _, n := range Order {
		tasks[n] = map[string]bool{"enabled": c.Config.Tasks[n]}
	}
	return map[string]any{"enabled": c.Config.Enabled, "is_running": busy, "instance_id": c.Config.InstanceID,
		"interval_seconds": int(c.Config.Interval.Seconds()), "tasks": tasks}
}

// Loop runs passes every interval (and once at start when configured) until ctx ends.
func (c *Collector) Loop(ctx context.Context) {
	if !c.Config.Enabled {
		return
	}
	if c.awaitReconcile(ctx) != nil {
		return
	}
	if c.Config.RunOnStartup {
		c.background(ctx)
	}
	t := time.NewTicker(c.Config.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.background(ctx)
		}
	}
}

func (c *Collector) background(ctx context.Context) {
	if !c.running.TryLock() {
		return
	}
	defer c.running.Unlock()
	if _, err := c.pass(ctx, nil); err != nil && !errors.Is(err, api.ErrGCBusy) && ctx.Err() == nil {
		c.Log.ErrorContext(ctx, "gc pass failed", "err", err)
		if c.Observer != nil {
			c.Observer.GCPass(0, err)
		}
	}
}
