package kernel

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Start-up states reported by Manager.State (Ship's /health "kernel" field).
const (
	StateStarting   = "starting"    // a start is in progress
	StateReady      = "ready"       // the kernel runs and answers
	StateFailed     = "failed"      // the last start failed; the next Execute starts it again
	StateNotStarted = "not_started" // no kernel and no start (never started, or shut down)
	StateDead       = "dead"        // the kernel died; the next Execute restarts it
)

// ErrStartFailed is returned (wrapped, with the reason) by an Execute that
// waited for a kernel start that failed.
var ErrStartFailed = errors.New("the Python kernel failed to start")

// StartState is a snapshot of the kernel's start-up for health reports.
type StartState struct {
	State string
	// Error says why the last start failed (State == StateFailed).
	Error string
}

// startAttempt is one background start; done is closed when it ended, after
// err is set.
type startAttempt struct {
	done  chan struct{}
	err   error
	began time.Time
}

// StartBackground starts the kernel in the background unless a start is
// already in progress, and returns a channel closed when that start ended
// (its outcome shows in State). It returns at once: Ship serves everything
// but Python meanwhile, and Execute waits for the start within its own
// timeout. A failed start is not retried here; the next Execute tries again.
// Call it when there is no kernel (at boot): a dead kernel is replaced
// without the notice Execute would give.
func (m *Manager) StartBackground() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.startLocked().done
}

// startLocked returns the start in progress or begins one; m.mu is held.
func (m *Manager) startLocked() *startAttempt {
	if m.starting != nil {
		return m.starting
	}
	a := &startAttempt{done: make(chan struct{}), began: time.Now()}
	if m.closed {
		a.err = ErrClosed
		close(a.done)
		return a
	}
	m.starting = a
	m.bg.Add(1)
	go m.runStart(a)
	return a
}

// runStart is a background start: it is bound by Config.StartTimeout and
// Close, not by any caller, so that a caller giving up does not waste it.
func (m *Manager) runStart(a *startAttempt) {
	defer m.bg.Done()
	err := m.acquire(m.life, 0)
	if err == nil {
		_, _, err = m.ensure(m.life)
		m.release()
	}
	if err != nil && m.life.Err() != nil {
		err = ErrClosed
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		m.log.Error("kernel start failed; the next python call tries again", "err", err,
			"took", time.Since(a.began).Round(time.Millisecond))
	}
	m.mu.Lock()
	a.err = err
	m.starting = nil
	m.mu.Unlock()
	close(a.done)
}

// pendingStart returns the start an Execute has to wait for: the one in
// progress, or a new one when there is no kernel (first use, after a failed
// start, after Shutdown). nil when a kernel exists (alive or dead: a dead one
// is restarted by ensure, with a notice) or the manager is closed.
func (m *Manager) pendingStart() *startAttempt {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return nil
	case m.starting != nil:
		return m.starting
	case m.p == nil:
		return m.startLocked()
	}
	return nil
}

// awaitStart waits for a start, at most timeout (the call's own). ok is
// false when the call ends here: its timeout passed while the kernel was
// still starting (a TimedOut result, the code did not run), ctx ended, or the
// start failed.
func (m *Manager) awaitStart(ctx context.Context, a *startAttempt, timeout time.Duration) (waited time.Duration, res Result, err error, ok bool) {
	began := time.Now()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-a.done:
	case <-t.C:
		return timeout, Result{TimedOut: true, Error: fmt.Sprintf(
			"Code execution timed out after %s seconds: the Python kernel was still starting (for %s so far), so the code did not run. The start continues; try again.",
			seconds(timeout), time.Since(a.began).Round(100*time.Millisecond))}, nil, false
	case <-ctx.Done():
		err := fmt.Errorf("kernel: waiting for the kernel to start: %w", ctx.Err())
		return time.Since(began), failed(err), err, false
	}
	if a.err != nil {
		err := a.err
		if !errors.Is(err, ErrClosed) {
			err = fmt.Errorf("%w: %w (the next python call starts it again)", ErrStartFailed, a.err)
		}
		return time.Since(began), failed(err), err, false
	}
	return time.Since(began), Result{}, nil, true
}

// State reports the kernel's start-up state (StateStarting, StateReady,
// StateFailed with the reason, StateNotStarted, StateDead).
func (m *Manager) State() StartState {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return StartState{State: StateNotStarted}
	case m.launching || m.starting != nil:
		return StartState{State: StateStarting}
	case m.p != nil && m.p.alive():
		return StartState{State: StateReady}
	case m.p != nil:
		return StartState{State: StateDead}
	case m.startErr != nil:
		return StartState{State: StateFailed, Error: m.startErr.Error()}
	}
	return StartState{State: StateNotStarted}
}
