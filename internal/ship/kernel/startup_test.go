package kernel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowArgv launches the real kernel after sleeping, so that its start takes
// at least delay.
func slowArgv(delay string) []string {
	return []string{"/bin/sh", "-c", "sleep " + delay + "; exec " + debianPython + ` -m ipykernel_launcher -f "$0"`, "{connection_file}"}
}

// gatedArgv fails (exit 3, with a message) until the file gate exists, then
// launches the real kernel.
func gatedArgv(gate string) []string {
	return []string{"/bin/sh", "-c", `if [ -e "$1" ]; then exec ` + debianPython + ` -m ipykernel_launcher -f "$0"; fi; echo "gate closed" >&2; exit 3`,
		"{connection_file}", gate}
}

func waitDone(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(60 * time.Second):
		t.Fatal("start did not end within 60s")
	}
}

// TestStartBackground: starting → ready. The start does not block the caller;
// a call whose timeout passes while the kernel starts gets a clear timed-out
// answer (the code did not run); concurrent calls wait and all run, in turn.
func TestStartBackground(t *testing.T) {
	cfg := testConfig(t)
	cfg.Argv = slowArgv("1.5")
	m := NewManager(cfg)
	t.Cleanup(func() { m.Close() })
	if st := m.State(); st.State != StateNotStarted {
		t.Fatalf("before: %+v", st)
	}
	began := time.Now()
	done := m.StartBackground()
	if d := time.Since(began); d > 200*time.Millisecond {
		t.Fatalf("StartBackground blocked for %v", d)
	}
	if again := m.StartBackground(); again != done {
		t.Error("a second StartBackground began another start")
	}
	if st := m.State(); st.State != StateStarting {
		t.Fatalf("state %+v, want starting", st)
	}
	// The starting kernel's process is known (Ship's reclaim spares it).
	waitFor(t, func() bool { return m.Pid() != 0 })
	startingPid := m.Pid()

	// Short timeout: answered at the timeout, not after the start.
	t0 := time.Now()
	res, err := m.Execute(context.Background(), Request{Code: "side_effect = 1", Timeout: 300 * time.Millisecond})
	if err != nil || res.Success || !res.TimedOut || res.ExecutionCount != nil ||
		!strings.Contains(res.Error, "timed out after 0.3 seconds") || !strings.Contains(res.Error, "still starting") {
		t.Fatalf("short timeout: %+v, %v", res, err)
	}
	if d := time.Since(t0); d < 250*time.Millisecond || d > time.Second {
		t.Errorf("short timeout answered after %v", d)
	}
	if st := m.State(); st.State != StateStarting {
		t.Fatalf("state after a timed-out call %+v, want still starting", st)
	}

	// Concurrent calls while starting: all wait, all run, one at a time.
	const n = 4
	results := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = m.Execute(context.Background(), Request{Code: "import os; print(os.getpid())", Timeout: 30 * time.Second})
		}()
	}
	wg.Wait()
	waitDone(t, done)
	pid := ""
	for i := range n {
		if errs[i] != nil || !results[i].Success || results[i].Restarted {
			t.Fatalf("call %d: %+v, %v", i, results[i], errs[i])
		}
		if pid == "" {
			pid = results[i].Text
		} else if results[i].Text != pid {
			t.Errorf("calls ran in different kernels: %q vs %q", results[i].Text, pid)
		}
	}
	if st := m.State(); st.State != StateReady {
		t.Fatalf("state %+v, want ready", st)
	}
	if m.Pid() != startingPid || pid != strconv.Itoa(startingPid) {
		t.Errorf("pid while starting %d, after %d, the kernel says %s", startingPid, m.Pid(), pid)
	}
	// The timed-out call's code never ran.
	if res := exec1(t, m, "'side_effect' in globals()", 0); res.Text != "False" {
		t.Errorf("timed-out call ran: %+v", res)
	}
}

// TestStartWaitCountsAgainstTimeout: a call's timeout bounds the wait for the
// start and its cell together (Bay's client waits timeout + a margin).
func TestStartWaitCountsAgainstTimeout(t *testing.T) {
	cfg := testConfig(t)
	cfg.Argv = slowArgv("1")
	cfg.InterruptGrace = 2 * time.Second
	m := NewManager(cfg)
	t.Cleanup(func() { m.Close() })
	m.StartBackground()
	t0 := time.Now()
	res, err := m.Execute(context.Background(), Request{Code: "print('ran', flush=True)\nimport time; time.sleep(30)", Timeout: 4 * time.Second})
	took := time.Since(t0)
	if err != nil || !res.TimedOut || res.Text != "ran" || !strings.Contains(res.Error, "timed out after 4 seconds") {
		t.Fatalf("%+v, %v", res, err)
	}
	if took < 3500*time.Millisecond || took > 5500*time.Millisecond {
		t.Errorf("answered after %v, want about the 4s timeout", took)
	}
}

// TestStartFailedRetriedOnNextCall: starting → failed (reported by State and
// by the call that waited) → the next call starts it again → ready.
func TestStartFailedRetriedOnNextCall(t *testing.T) {
	cfg := testConfig(t)
	gate := filepath.Join(t.TempDir(), "gate")
	cfg.Argv = gatedArgv(gate)
	m := NewManager(cfg)
	t.Cleanup(func() { m.Close() })

	waitDone(t, m.StartBackground())
	st := m.State()
	if st.State != StateFailed || !strings.Contains(st.Error, "exit status 3") || !strings.Contains(st.Error, "gate closed") {
		t.Fatalf("state %+v, want failed with the reason", st)
	}
	// The next call retries the start; it fails again and says so clearly.
	res, err := m.Execute(context.Background(), Request{Code: "1+1", Timeout: 30 * time.Second})
	if !errors.Is(err, ErrStartFailed) || res.Success || !strings.Contains(res.Error, "failed to start") ||
		!strings.Contains(res.Error, "gate closed") || !strings.Contains(res.Error, "next python call") {
		t.Fatalf("call during failure: %+v, %v", res, err)
	}
	if st := m.State(); st.State != StateFailed {
		t.Fatalf("state %+v", st)
	}
	// Once the kernel can start, the next call starts it and runs.
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := exec1(t, m, "1+1", 30*time.Second); !res.Success || res.Text != "2" || res.Restarted {
		t.Fatalf("after the cause is gone: %+v", res)
	}
	if st := m.State(); st.State != StateReady || st.Error != "" {
		t.Fatalf("state %+v, want ready", st)
	}
}

// TestStartWaitCanceled: a caller that goes away while the kernel starts
// returns at once; the start goes on and serves the next call.
func TestStartWaitCanceled(t *testing.T) {
	cfg := testConfig(t)
	cfg.Argv = slowArgv("1")
	m := NewManager(cfg)
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	res, err := m.Execute(ctx, Request{Code: "1", Timeout: 30 * time.Second}) // starts it on demand
	if !errors.Is(err, context.DeadlineExceeded) || res.Success || time.Since(t0) > time.Second {
		t.Fatalf("canceled wait: %+v, %v after %v", res, err, time.Since(t0))
	}
	if st := m.State(); st.State != StateStarting {
		t.Fatalf("state %+v, want still starting", st)
	}
	if res := exec1(t, m, "6*7", 30*time.Second); res.Text != "42" {
		t.Fatalf("%+v", res)
	}
}

// TestCloseDuringStart: Close ends a start in progress; a waiting call gets
// ErrClosed (goleak in TestMain checks that nothing is left running).
func TestCloseDuringStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.Argv = slowArgv("2")
	m := NewManager(cfg)
	done := m.StartBackground()
	errc := make(chan error, 1)
	go func() {
		_, err := m.Execute(context.Background(), Request{Code: "1", Timeout: 30 * time.Second})
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, done)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiting call: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting call did not return after Close")
	}
	if st := m.State(); st.State != StateNotStarted {
		t.Errorf("state after Close %+v", st)
	}
	if _, err := m.Execute(context.Background(), Request{Code: "1"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Execute after Close: %v", err)
	}
}
