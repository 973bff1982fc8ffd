package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/session/sessiontest"
	"github.com/shipyard/shipyard/internal/bay/store"
)

type env struct {
	m   *session.Manager
	drv *sessiontest.Driver
	st  *store.Store
	sb  *model.Sandbox
	p   *session.Profile
}

// newEnv returns a manager over a real SQLite store and a fake driver, with
// one sandbox. probeEvery is the manager's probe interval (0 = default).
func newEnv(t *testing.T, probeEvery time.Duration) *env {
	t.Helper()
	st := sessiontest.Store(t)
	drv := sessiontest.NewDriver()
	t.Cleanup(drv.Close)
	m := sessiontest.Manager(t, st, drv, session.Config{
		InstanceID: "test", ReadyTimeout: 5 * time.Second, HealthTimeout: 200 * time.Millisecond,
		ProbeInterval: probeEvery, SingleInstance: true,
	})
	return &env{m: m, drv: drv, st: st, sb: sessiontest.Sandbox(t, st, "o", "p"),
		p: sessiontest.Profile("p", sessiontest.ShipSpec)}
}

func (e *env) ensure(t *testing.T) *model.Session {
	t.Helper()
	ss, release, err := e.m.EnsureRunning(context.Background(), e.sb.ID, e.p, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	release()
	return ss
}

// faults a test can inflict on a running session's container.
var faults = []struct {
	name         string
	fault        func(d *sessiontest.Driver, containerID string)
	wantReplaced bool
	wantState    string // what Current reports
}{
	{"healthy", func(*sessiontest.Driver, string) {}, false, model.SessionRunning},
	{"killed", func(d *sessiontest.Driver, id string) { d.Kill(id) }, true, model.SessionStopped},
	{"sigstopped", func(d *sessiontest.Driver, id string) { d.Ship(id).Stop() }, true, model.SessionFailed},
}

func TestRecoverReplacesOnlyADeadOrWedgedRuntime(t *testing.T) {
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 0)
			ss := e.ensure(t)
			tc.fault(e.drv, ss.ContainerID)
			start := time.Now()
			replaced, err := e.m.Recover(context.Background(), e.sb.ID, ss.ID, e.p, time.Now().UTC())
			if err != nil {
				t.Fatal(err)
			}
			if replaced != tc.wantReplaced {
				t.Fatalf("replaced = %v, want %v", replaced, tc.wantReplaced)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("recovery took %v", d)
			}
			next := e.ensure(t)
			if (next.ContainerID != ss.ContainerID) != tc.wantReplaced {
				t.Fatalf("container %s → %s (replaced %v)", ss.ContainerID, next.ContainerID, tc.wantReplaced)
			}
			if tc.wantReplaced && e.drv.Ship(ss.ContainerID) != nil {
				t.Fatal("the old container was not destroyed")
			}
			rt := runtime.New(runtime.Config{})
			defer rt.Close()
			if !rt.Healthy(context.Background(), runtime.Target{Endpoint: next.Endpoint, Token: next.Token}, time.Second) {
				t.Fatal("the session after recovery does not answer")
			}
			// A second Recover of the replaced session is a no-op.
			if again, err := e.m.Recover(context.Background(), e.sb.ID, ss.ID, e.p, time.Now().UTC()); err != nil || again {
				t.Fatalf("second recover: %v %v", again, err)
			}
		})
	}
}

func TestCurrentNeverReportsADeadOrWedgedRuntimeRunning(t *testing.T) {
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, time.Nanosecond) // nothing stays verified: every Current checks
			ss := e.ensure(t)
			tc.fault(e.drv, ss.ContainerID)
			sb, err := e.st.SandboxByID(context.Background(), e.sb.ID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.m.Current(context.Background(), sb)
			if err != nil {
				t.Fatal(err)
			}
			if got.ObservedState != tc.wantState {
				t.Fatalf("state %q, want %q", got.ObservedState, tc.wantState)
			}
		})
	}
}

// A wedged runtime is replaced by the next call once the session's last
// verification is older than the probe interval, even without a failed call.
func TestEnsureRunningReplacesAWedgedRuntime(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	ss := e.ensure(t)
	e.drv.Ship(ss.ContainerID).Stop()
	next := e.ensure(t)
	if next.ContainerID == ss.ContainerID {
		t.Fatal("a SIGSTOPped runtime was trusted")
	}
}

// A verified session is trusted for the probe interval: the hot path asks
// neither the engine nor the runtime.
func TestHotSessionIsNotProbed(t *testing.T) {
	e := newEnv(t, time.Minute)
	e.ensure(t)
	before := e.drv.Statuses.Load()
	for range 10 {
		e.ensure(t)
	}
	if n := e.drv.Statuses.Load() - before; n != 0 {
		t.Fatalf("%d engine probes on the hot path", n)
	}
}
