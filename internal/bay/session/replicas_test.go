package session_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/keylock"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/session/sessiontest"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

// cluster is several session managers ("replicas", each with its own store
// handle and in-process locks) on one database and one (fake) engine.
type cluster struct {
	ms  []*session.Manager
	st  *store.Store
	drv *sessiontest.Driver
	sb  *model.Sandbox
	p   *session.Profile
}

func newCluster(t *testing.T, dialect string, n int, lockTimeout time.Duration) *cluster {
	t.Helper()
	dsn := storetest.FreshDSN(t, dialect)
	drv := sessiontest.NewDriver()
	t.Cleanup(drv.Close)
	rt := runtime.New(runtime.Config{})
	t.Cleanup(rt.Close)
	c := &cluster{drv: drv}
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		st := storetest.OpenDSN(t, dialect, dsn)
		id := fmt.Sprintf("r%d", i)
		if err := st.Heartbeat(context.Background(), id, "test", now, now, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		c.ms = append(c.ms, session.New(st, drv, rt, keylock.New(), session.Config{
			InstanceID: "test", ReplicaID: id, Lease: time.Second, ReadyTimeout: 5 * time.Second,
			HealthTimeout: 200 * time.Millisecond, LockTimeout: lockTimeout,
		}, slog.New(slog.NewTextHandler(io.Discard, nil)), session.Hooks{}))
		if i == 0 {
			c.st = st
		}
	}
	c.sb = sessiontest.Sandbox(t, c.st, "o", "p")
	c.p = sessiontest.Profile("p", sessiontest.ShipSpec)
	return c
}

func (c *cluster) containers(t *testing.T) []driver.Session {
	t.Helper()
	list, err := c.drv.ListSessions(context.Background(), map[string]string{driver.LabelSandboxID: c.sb.ID})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// First calls of one sandbox on three replicas at once: one start, one
// container; every call gets that session.
func TestConcurrentFirstCallsOnReplicas(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			c := newCluster(t, d, 3, 10*time.Second)
			const calls = 30
			ids := make([]string, calls)
			errList := make([]error, calls)
			var wg sync.WaitGroup
			for i := 0; i < calls; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ss, release, err := c.ms[i%3].EnsureRunning(context.Background(), c.sb.ID, c.p, time.Now().UTC())
					if err != nil {
						errList[i] = err
						return
					}
					release()
					ids[i] = ss.ID
				}()
			}
			wg.Wait()
			for i, err := range errList {
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if ids[i] != ids[0] {
					t.Fatalf("calls got sessions %s and %s", ids[0], ids[i])
				}
			}
			if n := len(c.containers(t)); n != 1 {
				t.Fatalf("%d containers, want 1", n)
			}
		})
	}
}

// A start claimed by a replica that died (its heartbeat lapsed) is taken over
// at once by the next call, on a new session, and what it left is removed; a
// live replica's start is waited for, within the lock timeout.
func TestLapsedClaimIsTakenOverLiveOneWaitedFor(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			c := newCluster(t, d, 1, time.Second)
			now := time.Now().UTC()
			claim := func(replica string, alive bool) *model.Session {
				t.Helper()
				expires := now.Add(time.Hour)
				if !alive {
					expires = now.Add(-time.Minute)
				}
				if err := c.st.Heartbeat(ctx, replica, "test", now, now, expires); err != nil {
					t.Fatal(err)
				}
				ss := &model.Session{ID: model.NewID("sess"), SandboxID: c.sb.ID, ProfileID: "p", Token: "t",
					DesiredState: model.SessionRunning, ObservedState: model.SessionPending, CreatedAt: now, LastActiveAt: now}
				if err := c.st.CreateSession(ctx, ss); err != nil {
					t.Fatal(err)
				}
				ss.ObservedState = model.SessionStarting
				ss.StartedAt = &now
				if err := c.st.ClaimSessionStart(ctx, ss, replica, now.Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
				return ss
			}

			// A live replica's start: waited for, then "session is starting" (503).
			live := claim("alive", true)
			begin := time.Now()
			_, _, err := c.ms[0].EnsureRunning(ctx, c.sb.ID, c.p, now)
			if !errs.Is(err, errs.SessionNotReady) {
				t.Fatalf("while a live replica starts it: %v", err)
			}
			if waited := time.Since(begin); waited < 900*time.Millisecond {
				t.Fatalf("gave up after %s without waiting for the live start", waited)
			}
			if err := c.st.DeleteSession(ctx, live.ID); err != nil {
				t.Fatal(err)
			}

			// A dead replica's start, with the container it had created.
			dead := claim("dead", false)
			leftover, err := c.drv.CreateSession(ctx, driver.SessionSpec{ID: dead.ID, Labels: map[string]string{
				driver.LabelManaged: "true", driver.LabelSandboxID: c.sb.ID},
				Containers: []driver.ContainerSpec{{Name: "ship", Image: "ship:latest", Port: 8123}}})
			if err != nil {
				t.Fatal(err)
			}
			ss, release, err := c.ms[0].EnsureRunning(ctx, c.sb.ID, c.p, now)
			if err != nil {
				t.Fatalf("taking over a dead replica's start: %v", err)
			}
			release()
			if ss.ID == dead.ID {
				t.Fatal("the lapsed session was reused in place (its claimer, were it alive, would tear it down)")
			}
			list := c.containers(t)
			if len(list) != 1 || list[0].ID == leftover.ID {
				t.Fatalf("containers after the take-over: %+v", list)
			}
			if _, err := c.st.GetSession(ctx, dead.ID); err == nil {
				t.Fatal("the lapsed session row is still there")
			}
		})
	}
}

// Two replicas recovering the same dead container at once: both calls go on
// (one replaces it, the other uses the replacement), one container is left.
func TestConcurrentRecoveryOnReplicas(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			c := newCluster(t, d, 2, 10*time.Second)
			ctx := context.Background()
			ss, release, err := c.ms[0].EnsureRunning(ctx, c.sb.ID, c.p, time.Now().UTC())
			if err != nil {
				t.Fatal(err)
			}
			release()
			c.drv.Kill(ss.ContainerID)
			errList := make([]error, 2)
			var wg sync.WaitGroup
			for i := range errList {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errList[i] = c.ms[i].Recover(ctx, c.sb.ID, ss.ID, c.p, time.Now().UTC())
				}()
			}
			wg.Wait()
			for i, err := range errList {
				if err != nil {
					t.Errorf("recovery on replica %d: %v", i, err)
				}
			}
			running := 0
			for _, in := range c.containers(t) {
				if in.State == driver.StateRunning {
					running++
				}
			}
			if running != 1 {
				t.Fatalf("%d running containers after two recoveries, want 1", running)
			}
		})
	}
}
