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
// staleStart: a session "starting" for longer than this was abandoned by a
// dead Bay; 0 means every starting session is (one Bay owns the database).
func (c *Collector) Reconcile(ctx context.Context, staleStart time.Duration) error {
	if c.reconciled != nil {
		defer close(c.reconciled)
	}
	now := c.Now()
	var (
		mu      sync.Mutex
		errList []error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 4)
	)
	for _, state := range []string{model.SessionPending, model.SessionStarting, model.SessionRunning} {
		list, err := c.Store.SessionsInState(ctx, state)
		if err != nil {
			return err
		}
		for _, ss := range list {
			switch state {
			case model.SessionPending, model.SessionStarting:
				if staleStart > 0 && ss.StartedAt != nil && now.Sub(*ss.StartedAt) < staleStart {
					continue // another replica is starting it
				}
			case model.SessionRunning:
				st, err := c.Driver.Status(ctx, ss.ContainerID)
				if err != nil {
					mu.Lock()
					errList = append(errList, err)
					mu.Unlock()
					continue
				}
				if st == driver.StateRunning {
					continue
				}
			}
			c.Log.InfoContext(ctx, "reconcile: dropping session", "session_id", ss.ID, "sandbox_id", ss.SandboxID, "state", state)
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := c.dropSession(ctx, ss); err != nil {
					mu.Lock()
					errList = append(errList, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
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

func (c *Collector) dropSession(ctx context.Context, ss *model.Session) error {
	unlock, err := c.Sessions.Lock(ctx, ss.SandboxID)
	if err != nil {
		return err
	}
	defer unlock()
	if err := c.Sessions.Destroy(ctx, ss); err != nil {
		return err
	}
	sb, err := c.Store.SandboxByID(ctx, ss.SandboxID)
	if err == nil && sb.CurrentSessionID == ss.ID {
		return c.Store.SetCurrentSession(ctx, sb.ID, "", sb.IdleExpiresAt)
	}
	return nil
}
