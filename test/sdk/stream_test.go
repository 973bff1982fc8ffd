package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

// The first line of a slow loop reaches the SDK long before the loop ends,
// events come in order, and the result closes the stream.
func TestSDKStreaming(t *testing.T) {
	_, c := start(t)
	ctx := ctxT(t, 3*time.Minute)
	sb, err := c.CreateSandbox(ctx, shipyard.CreateSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecPython(ctx, sb.ID, shipyard.PythonExecRequest{Code: "import time"}); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	s, err := c.StreamPython(ctx, sb.ID, shipyard.PythonExecRequest{
		Code: "import sys\nfor i in range(4):\n    print(i, flush=True)\n    time.sleep(0.5)\nprint('e', file=sys.stderr)\n1/0"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Streamed() {
		t.Skip("this Bay does not stream yet (it answered JSON)")
	}
	var first time.Duration
	var stdout, order []string
	for ev := range s.Events() {
		if first == 0 && ev.Type == shipyard.EventStdout {
			first = time.Since(begin)
		}
		order = append(order, ev.Type)
		if ev.Type == shipyard.EventStdout {
			stdout = append(stdout, ev.Text)
		}
	}
	total := time.Since(begin)
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	res := s.Result()
	if res == nil || res.Success || res.ExecutionID == "" {
		t.Fatalf("result = %+v", res)
	}
	if got := strings.Join(stdout, ""); got != "0\n1\n2\n3\n" {
		t.Fatalf("stdout %q; events %v", got, order)
	}
	joined := strings.Join(order, ",")
	if !strings.HasSuffix(joined, "exception,result") || !strings.Contains(joined, "stderr") {
		t.Fatalf("event order %s", joined)
	}
	t.Logf("first stdout after %v, result after %v", first, total)
	if first > total-1500*time.Millisecond {
		t.Fatalf("first output after %v, the whole run %v: not streamed", first, total)
	}

	// Shell: the same through Copy, and the exit code in the result.
	var out, errOut strings.Builder
	sh, err := c.StreamShell(ctx, sb.ID, shipyard.ShellExecRequest{Command: "echo a; echo b >&2; exit 7"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := sh.Copy(&out, &errOut)
	if err != nil || r.ExitCode == nil || *r.ExitCode != 7 || out.String() != "a\n" || errOut.String() != "b\n" {
		t.Fatalf("shell stream: %+v %v out %q err %q", r, err, out.String(), errOut.String())
	}
	// A client that goes away mid-stream: the command runs on by default,
	// and is killed with KillOnDisconnect.
	for _, kill := range []bool{false, true} {
		marker := fmt.Sprintf("/workspace/after-disconnect-%v", kill)
		cctx, cancel := context.WithCancel(ctx)
		s, err := c.StreamShell(cctx, sb.ID, shipyard.ShellExecRequest{
			Command: "echo started; sleep 2; touch " + marker, KillOnDisconnect: kill})
		if err != nil {
			t.Fatal(err)
		}
		if !s.Next() || s.Event().Text != "started\n" {
			t.Fatalf("first event %+v %v", s.Event(), s.Err())
		}
		cancel()
		if s.Next() || !errors.Is(s.Err(), context.Canceled) {
			t.Fatalf("after cancel: %+v %v", s.Event(), s.Err())
		}
		time.Sleep(3 * time.Second)
		r, err := c.ExecShell(ctx, sb.ID, shipyard.ShellExecRequest{Command: "test -e " + marker})
		if err != nil {
			t.Fatal(err)
		}
		if ran := *r.ExitCode == 0; ran == kill {
			t.Fatalf("kill_on_disconnect=%v: the command ran to the end: %v", kill, ran)
		}
	}

	// An error answered before the stream starts is a typed error.
	if _, err := c.StreamShell(ctx, "sandbox-000000000000", shipyard.ShellExecRequest{Command: "true"}); !errors.Is(err, shipyard.ErrNotFound) {
		t.Fatalf("unknown sandbox: %v", err)
	}
}

// Background processes: start, follow, wait, signal, remove.
func TestSDKProcesses(t *testing.T) {
	_, c := start(t)
	ctx := ctxT(t, 3*time.Minute)
	sb, err := c.CreateSandbox(ctx, shipyard.CreateSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.StartProcess(ctx, sb.ID, shipyard.StartProcessRequest{
		Command: "for i in 1 2 3; do echo line$i $GREETING; sleep 0.3; done", Env: map[string]string{"GREETING": "hi"}})
	if shipyard.IsStatus(err, 404) && !shipyard.IsCode(err, shipyard.CodeNotFound) {
		t.Skip("this Bay has no /processes route yet")
	}
	if err != nil {
		t.Fatal(err)
	}
	if p.ProcessID == "" || p.Status != shipyard.ProcessRunning {
		t.Fatalf("started %+v", p)
	}
	var out strings.Builder
	last, err := c.FollowProcess(ctx, sb.ID, p.ProcessID, &out, shipyard.FollowOptions{Poll: 100 * time.Millisecond})
	if err != nil || out.String() != "line1 hi\nline2 hi\nline3 hi\n" || last.Status != shipyard.ProcessCompleted || last.ExitCode == nil || *last.ExitCode != 0 {
		t.Fatalf("follow: %q %+v %v", out.String(), last, err)
	}
	// Reading again from the middle gives the rest.
	part, err := c.ProcessOutputFrom(ctx, sb.ID, p.ProcessID, int64(len("line1 hi\n")), 0)
	if err != nil || part.Output != "line2 hi\nline3 hi\n" {
		t.Fatalf("from offset: %+v %v", part, err)
	}

	long, err := c.StartProcess(ctx, sb.ID, shipyard.StartProcessRequest{Command: "sleep 300"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.WaitProcess(ctx, sb.ID, long.ProcessID, 200*time.Millisecond)
	if err != nil || !w.TimedOut || w.Status != shipyard.ProcessRunning {
		t.Fatalf("wait on a sleeper: %+v %v", w, err)
	}
	list, err := c.ListProcesses(ctx, sb.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := c.SignalProcess(ctx, sb.ID, long.ProcessID, "TERM"); err != nil {
		t.Fatal(err)
	}
	w, err = c.WaitProcess(ctx, sb.ID, long.ProcessID, 10*time.Second)
	if err != nil || w.TimedOut || w.Status == shipyard.ProcessRunning {
		t.Fatalf("after TERM: %+v %v", w, err)
	}
	if err := c.RemoveProcess(ctx, sb.ID, long.ProcessID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetProcess(ctx, sb.ID, long.ProcessID); !errors.Is(err, shipyard.ErrProcessNotFound) {
		t.Fatalf("removed process: %v", err)
	}
}
