package shiptest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// kernelCmd makes SHIP_KERNEL_CMD (split on spaces by Ship) run script with
// bash, the connection file as $0; script must not contain spaces (use
// ${IFS}). Only these tests use it to make the kernel slow or failing: the
// setting itself is Ship's ordinary kernel command line.
func kernelCmd(script string) string {
	return "bash -c " + script + " {connection_file}"
}

const realKernel = "exec${IFS}python3${IFS}-m${IFS}ipykernel_launcher${IFS}-f${IFS}$0"

type kernelHealth struct {
	Status      string `json:"status"`
	Kernel      string `json:"kernel"`
	KernelError string `json:"kernel_error"`
}

func (s *suite) kernelHealth(t *testing.T, withToken bool) kernelHealth {
	t.Helper()
	hdr := map[string]string{}
	if !withToken {
		hdr["Authorization"] = ""
	}
	status, b := s.do(t, "GET", "/health", nil, hdr)
	var h kernelHealth
	if err := json.Unmarshal(b, &h); status != 200 || err != nil {
		t.Fatalf("health: %d %s %v", status, b, err)
	}
	return h
}

// TestReadyBeforeKernel: with a kernel that takes 6 s to start, Ship is
// healthy (200, kernel "starting") and serves shell and files at once; a
// python call whose timeout passes during the start says so, and one with
// room waits for the kernel and runs.
func TestReadyBeforeKernel(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := Start(t, Options{Env: map[string]string{"SHIP_KERNEL_CMD": kernelCmd("sleep${IFS}6;" + realKernel)}})
	t.Logf("container start → /health 200: %v", c.StartToHealthy)
	s := &suite{t: t, ctx: ctx, c: c, cl: NewClient(c.Endpoint, c.Token)}

	if h := s.kernelHealth(t, false); h.Status != "healthy" || h.Kernel != "starting" {
		t.Fatalf("health right after start: %+v", h)
	}
	t0 := time.Now()
	if r := s.sh(t, map[string]any{"command": "echo hi; id -u"}); !r.Success || r.Stdout != "hi\n1000" {
		t.Fatalf("shell: %+v", r)
	}
	if err := s.cl.JSON(ctx, "/fs/write_file", map[string]any{"path": "early.txt", "content": "early"}, nil); err != nil {
		t.Fatal(err)
	}
	var rd struct {
		Content string `json:"content"`
	}
	if err := s.cl.JSON(ctx, "/fs/read_file", map[string]any{"path": "early.txt"}, &rd); err != nil || rd.Content != "early" {
		t.Fatalf("read: %+v %v", rd, err)
	}
	if h := s.kernelHealth(t, true); h.Kernel != "starting" {
		t.Fatalf("shell and files took %v: the kernel is %q already, the test proves nothing", time.Since(t0), h.Kernel)
	}
	t.Logf("shell + files while the kernel starts: %v", time.Since(t0))

	t1 := time.Now()
	r := s.py(t, "never = 1", 1)
	if r.Success || !r.TimedOut || r.Error == nil || !strings.Contains(*r.Error, "still starting") || r.ExecutionCount != nil {
		t.Fatalf("python with a 1 s timeout during the start: %+v", r)
	}
	if d := time.Since(t1); d > 3*time.Second {
		t.Errorf("timed-out call answered after %v", d)
	}

	t2 := time.Now()
	if r := s.py(t, "1+1", 60); !r.Success || r.text() != "2" {
		t.Fatalf("python waiting for the kernel: %+v", r)
	}
	t.Logf("python call waited %v for the kernel and ran", time.Since(t2))
	if r := s.py(t, "'never' in globals()", 30); r.text() != "False" {
		t.Errorf("the timed-out call ran: %+v", r)
	}
	if h := s.kernelHealth(t, false); h.Kernel != "ready" {
		t.Fatalf("health after the start: %+v", h)
	}
}

// TestKernelStartFailure: a kernel that cannot start leaves Ship healthy
// (kernel "failed", the reason for token holders), shell and files working,
// and python calls failing clearly; each retries the start, so once the cause
// is gone the next call works.
func TestKernelStartFailure(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := Start(t, Options{Env: map[string]string{"SHIP_KERNEL_CMD": kernelCmd(
		"test${IFS}-e${IFS}/workspace/kernel-ok&&" + realKernel + ";echo${IFS}no-kernel-here>&2;exit${IFS}3")}})
	s := &suite{t: t, ctx: ctx, c: c, cl: NewClient(c.Endpoint, c.Token)}

	var h kernelHealth
	deadline := time.Now().Add(30 * time.Second)
	for h = s.kernelHealth(t, true); h.Kernel != "failed"; h = s.kernelHealth(t, true) {
		if time.Now().After(deadline) {
			t.Fatalf("kernel never reported failed: %+v", h)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h.Status != "healthy" || !strings.Contains(h.KernelError, "exit status 3") || !strings.Contains(h.KernelError, "no-kernel-here") {
		t.Fatalf("health with the token: %+v", h)
	}
	if h := s.kernelHealth(t, false); h.Kernel != "failed" || h.KernelError != "" {
		t.Fatalf("health without the token: %+v", h)
	}

	if r := s.sh(t, map[string]any{"command": "echo still here"}); r.Stdout != "still here" {
		t.Fatalf("shell: %+v", r)
	}
	r := s.py(t, "1+1", 30)
	if r.Success || r.Error == nil || !strings.Contains(*r.Error, "failed to start") || !strings.Contains(*r.Error, "no-kernel-here") {
		t.Fatalf("python while the kernel cannot start: %+v", r)
	}
	// Remove the cause through the files API; the next call starts the kernel.
	if err := s.cl.JSON(ctx, "/fs/write_file", map[string]any{"path": "kernel-ok", "content": ""}, nil); err != nil {
		t.Fatal(err)
	}
	if r := s.py(t, "1+1", 60); !r.Success || r.text() != "2" {
		t.Fatalf("python after the cause is gone: %+v", r)
	}
	if h := s.kernelHealth(t, true); h.Kernel != "ready" || h.KernelError != "" {
		t.Fatalf("health after recovery: %+v", h)
	}
}
