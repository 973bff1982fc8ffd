package session_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/errs"
)

// TestDriverStartFailures: a session the driver placed but could not run in
// time, or could not place at all, is a clear session_not_ready (503) (retry
// later), not an internal error, and leaves nothing running.
func TestDriverStartFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"start timeout", driver.ErrStartTimeout, "did not start in time"},
		{"unschedulable", driver.ErrUnschedulable, "could not be scheduled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 0)
			e.drv.StartError = func(driver.SessionSpec) error { return tc.err }
			_, _, err := e.m.EnsureRunning(context.Background(), e.sb.ID, e.p, time.Now().UTC())
			be, ok := errs.As(err)
			if !ok || be.Code != errs.SessionNotReady { // the API answers it 503 with Retry-After
				t.Fatalf("EnsureRunning: %v (%T), want session_not_ready", err, err)
			}
			if !strings.Contains(be.Message, tc.want) {
				t.Errorf("message %q does not say %q", be.Message, tc.want)
			}
			if e.drv.Destroys.Load() != 1 {
				t.Errorf("%d sessions destroyed after the failed start, want 1", e.drv.Destroys.Load())
			}
		})
	}
}
