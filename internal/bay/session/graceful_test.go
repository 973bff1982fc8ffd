package session_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/session/sessiontest"
)

// stopRecorder records which sessions were stopped gracefully before
// being destroyed.
type stopRecorder struct {
	*sessiontest.Driver
	mu        sync.Mutex
	stopped   []string
	destroyed map[string]bool
	early     []string // stopped after being destroyed: wrong order
}

func (d *stopRecorder) StopSession(ctx context.Context, id string) error {
	d.mu.Lock()
	d.stopped = append(d.stopped, id)
	if d.destroyed[id] {
		d.early = append(d.early, id)
	}
	d.mu.Unlock()
	return d.Driver.StopSession(ctx, id)
}

func (d *stopRecorder) DestroySession(ctx context.Context, id string) error {
	d.mu.Lock()
	d.destroyed[id] = true
	d.mu.Unlock()
	return d.Driver.DestroySession(ctx, id)
}

// A session with a Gull container is stopped gracefully (Chromium saves its
// cookies to the cargo) before it is destroyed; one of Ship alone is not
// waited for.
func TestDestroyAllStopsBrowserGracefully(t *testing.T) {
	e := newEnv(t, 0)
	drv := &stopRecorder{Driver: sessiontest.NewDriver(), destroyed: map[string]bool{}}
	t.Cleanup(drv.Close)
	m := sessiontest.Manager(t, e.st, drv, session.Config{InstanceID: "test", ReadyTimeout: 5 * time.Second,
		HealthTimeout: 200 * time.Millisecond, SingleInstance: true})
	p := sessiontest.Profile("p", sessiontest.ShipSpec, sessiontest.GullSpec)
	ss, release, err := m.EnsureRunning(context.Background(), e.sb.ID, p, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	release()
	if err := m.DestroyAll(context.Background(), e.sb.ID); err != nil {
		t.Fatal(err)
	}
	drv.mu.Lock()
	if len(drv.stopped) != 1 || drv.stopped[0] != ss.ID || len(drv.early) != 0 || !drv.destroyed[ss.ID] {
		t.Fatalf("stopped %v (want the session %s, before destroy), destroyed %v", drv.stopped, ss.ID, drv.destroyed)
	}
	drv.mu.Unlock()

	// Ship alone: destroyed without a graceful stop.
	p.Containers = p.Containers[:1]
	ss, release, err = m.EnsureRunning(context.Background(), e.sb.ID, p, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	release()
	if err := m.DestroyAll(context.Background(), e.sb.ID); err != nil {
		t.Fatal(err)
	}
	drv.mu.Lock()
	defer drv.mu.Unlock()
	if len(drv.stopped) != 1 || !drv.destroyed[ss.ID] {
		t.Fatalf("a Ship-only session: stopped %v, destroyed %v (want destroyed, not stopped)", drv.stopped, drv.destroyed)
	}
}
