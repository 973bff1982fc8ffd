package gc

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/model"
)

// Reconcile brings records and the driver back in line after Bay stopped at
// any moment (even SIGKILL): starts left half-done are undone, sessions whose
// containers are gone are dropped, half-finished deletes are finished and
// containers and volumes without a record are removed. Running sessions keep
// running (their kernels and variables survive the restart).
//
// With several replicas on one database, a replica's start-up never undoes
// what another live replica is doing: a pending or starting session is
// dropped only when its claim lapsed (its replica is dead, its start is
// overdue, or it was this replica's previous process); a running one only when
// the engine says its container is not running; and each drop is conditional
// on the row's version, so a session another replica moved on meanwhile stays.
func (c *Collector) Reconcile(ctx context.Context) error {
	if c.reconciled != nil {
		defer close(c.reconciled)
	}
	now := c.Now()
	var errList []error
	if err := c.lapsedStarts(ctx, now, c.holder); err != nil {
		errList = append(errList, err)
	}
	running, err := c.Store.SessionsInState(ctx, model.SessionRunning)
	if err != nil {
		return errors.Join(append(errList, err)...)
	}
	// One listing, taken after the rows were read: a session recorded running
	// then is listed unless its containers are gone.
	var dead []*model.Session
	if len(running) > 0 {
		list, err := c.Driver.ListSessions(ctx, map[string]string{driver.LabelManaged: "true"})
		if err != nil {
			errList = append(errList, err)
		} else {
			seen := make(map[string]driver.State, len(list))
			for _, s := range list {
				seen[s.ID] = s.State
			}
			for _, ss := range running {
				if seen[ss.ID] != driver.StateRunning {
					dead = append(dead, ss)
				}
			}
		}
	}
	if err := c.dropSessions(ctx, dead, "its container is not running"); err != nil {
		errList = append(errList, err)
	}
	for _, name := range []string{ExpiredSandbox, OrphanCargo, OrphanContainer} {
		tr := TaskResult{TaskName: name}
		var err error
		switch name {
		case ExpiredSandbox: // only the leftovers of deletes, not TTL expiry (that is GC's schedule)
			err = c.deletedLeftovers(ctx, &tr)
		case OrphanCargo:
			err = c.orphanCargos(ctx, &tr)
		case OrphanContainer:
			err = c.orphanContainers(ctx, &tr)
		}
		if err != nil {
			errList = append(errList, err)
		}
		if tr.CleanedCount > 0 {
			c.Log.InfoContext(ctx, "reconcile: removed leftovers", "task", name, "count", tr.CleanedCount)
		}
	}
	return errors.Join(errList...)
}

// lapsedStarts drops the sessions left pending or starting by a start that
// will not finish. self names this replica at start-up (its own claims are a
// previous process's; with one Bay on the database every such session is);
// "" in a GC pass, where this replica's claims are its own starts in progress.
func (c *Collector) lapsedStarts(ctx context.Context, now time.Time, self string) error {
	var list []*model.Session
	if c.Config.SingleInstance && self != "" {
		for _, state := range []string{model.SessionPending, model.SessionStarting} {
			l, err := c.Store.SessionsInState(ctx, state)
			if err != nil {
				return err
			}
			list = append(list, l...)
		}
	} else {
		var err error
		if list, err = c.Store.LapsedStarts(ctx, now, now.Add(-c.Config.Lease), self); err != nil {
			return err
		}
	}
	return c.dropSessions(ctx, list, "its start will not finish")
}

// dropSessions drops sessions (bounded concurrency).
func (c *Collector) dropSessions(ctx context.Context, list []*model.Session, why string) error {
	var (
		mu      sync.Mutex
		errList []error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 4)
	)
	for _, ss := range list {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.dropSession(ctx, ss, why); err != nil {
				mu.Lock()
				errList = append(errList, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errList...)
}

// dropSession removes the row if it still has the version seen (state before
// side effects: a crash after it leaves containers that orphan GC finds), then
// its containers, then the sandbox's pointer to it.
func (c *Collector) dropSession(ctx context.Context, ss *model.Session, why string) error {
	unlock, err := c.Sessions.Lock(ctx, ss.SandboxID)
	if err != nil {
		return err
	}
	defer unlock()
	ok, err := c.Store.DeleteSessionIfVersion(ctx, ss.ID, ss.Version)
	if err != nil || !ok {
		return err // !ok: moved on since it was listed (another replica has it)
	}
	c.Log.InfoContext(ctx, "reconcile: dropping session: "+why, "session_id", ss.ID, "sandbox_id", ss.SandboxID,
		"state", ss.ObservedState)
	if err := c.Sessions.Destroy(ctx, ss); err != nil {
		return err
	}
	sb, err := c.Store.SandboxByID(ctx, ss.SandboxID)
	if err == nil && sb.CurrentSessionID == ss.ID {
		return c.Store.SetCurrentSession(ctx, sb.ID, "", sb.IdleExpiresAt)
	}
	return nil
}
