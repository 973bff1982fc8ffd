package gc_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/gc"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/session/sessiontest"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// env is a collector over a real SQLite store and the fake driver, with one
// sandbox whose session runs.
type env struct {
	c   *gc.Collector
	drv *sessiontest.Driver
	st  *store.Store
	sb  *model.Sandbox
	ss  *model.Session
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := sessiontest.Store(t)
	drv := sessiontest.NewDriver()
	t.Cleanup(drv.Close)
	sm := sessiontest.Manager(t, st, drv, session.Config{InstanceID: "test", ReadyTimeout: 5 * time.Second,
		HealthTimeout: 200 * time.Millisecond, SingleInstance: true})
	sb := sessiontest.Sandbox(t, st, "o", "p")
	p := sessiontest.Profile("p", sessiontest.ShipSpec, sessiontest.GullSpec)
	ss, release, err := sm.EnsureRunning(context.Background(), sb.ID, p, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	release()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &gc.Collector{Store: st, Driver: drv, Sessions: sm, Now: time.Now, Log: log,
		Config: gc.Config{InstanceID: "test", SingleInstance: true, Lease: time.Minute}}
	c.Init()
	return &env{c: c, drv: drv, st: st, sb: sb, ss: ss}
}

// session makes a session behind Bay's back, running.
func (e *env) session(t *testing.T, id string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.drv.CreateSession(ctx, driver.SessionSpec{ID: id, Labels: labels,
		Containers: []driver.ContainerSpec{{Name: "ship", Image: "ship:latest", Port: 8123}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.drv.StartSession(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func (e *env) exists(id string) bool {
	_, err := e.drv.InspectSession(context.Background(), id)
	return !errors.Is(err, driver.ErrNotFound)
}

func ours(extra ...string) map[string]string {
	l := map[string]string{driver.LabelManaged: "true", driver.LabelInstanceID: "test"}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// orphan_container removes a session of this Bay that has no record (all of
// it), and nothing else: not a live session, not another Bay's, not one not
// shaped like Bay's.
func TestOrphanContainer(t *testing.T) {
	e := newEnv(t)
	e.session(t, "sess-orphan", ours(driver.LabelSandboxID, "sandbox-gone", driver.LabelCargoID, "ws-gone"))
	e.session(t, "sess-other-bay", map[string]string{driver.LabelManaged: "true", driver.LabelInstanceID: "other",
		driver.LabelSandboxID: "sandbox-x", driver.LabelCargoID: "ws-x"})
	e.session(t, "sess-odd", ours())
	e.session(t, "sess-unmanaged", map[string]string{"team": "other"})

	res, err := e.c.Run(context.Background(), []string{gc.OrphanContainer})
	if err != nil {
		t.Fatal(err)
	}
	tr := res.(*gc.Result).Results[0]
	if tr.CleanedCount != 1 || tr.SkippedCount != 1 || len(tr.Errors) != 0 {
		t.Fatalf("orphan_container: %+v (want 1 cleaned, the odd one skipped)", tr)
	}
	for id, want := range map[string]bool{"sess-orphan": false, e.ss.ID: true, "sess-other-bay": true, "sess-odd": true, "sess-unmanaged": true} {
		if got := e.exists(id); got != want {
			t.Errorf("session %s exists %v, want %v", id, got, want)
		}
	}
}

// Reconcile drops a running session whose containers are gone (one of two
// is enough) and clears the sandbox's pointer to it; the next call would
// start a new one. Orphans go too.
func TestReconcileDropsDeadSessions(t *testing.T) {
	e := newEnv(t)
	e.session(t, "sess-orphan", ours(driver.LabelSandboxID, "sandbox-gone", driver.LabelCargoID, "ws-gone"))
	browser := e.ss.Containers[1]
	if browser.Name != "browser" || browser.ContainerID == "" {
		t.Fatalf("containers %+v", e.ss.Containers)
	}
	e.drv.Kill(browser.ContainerID)
	if err := e.c.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.GetSession(context.Background(), e.ss.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session of a dead container kept: %v", err)
	}
	if e.exists(e.ss.ID) || e.exists("sess-orphan") {
		t.Fatal("reconcile left the dead session or the orphan in the driver")
	}
	sb, err := e.st.SandboxByID(context.Background(), e.sb.ID)
	if err != nil || sb.CurrentSessionID != "" {
		t.Fatalf("sandbox %+v, %v: want its session pointer cleared", sb, err)
	}
}

// Reconcile keeps a running session whose containers run (a Bay restart
// keeps kernels alive).
func TestReconcileKeepsLiveSessions(t *testing.T) {
	e := newEnv(t)
	if err := e.c.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.GetSession(context.Background(), e.ss.ID); err != nil || !e.exists(e.ss.ID) {
		t.Fatalf("live session dropped: %v", err)
	}
}
