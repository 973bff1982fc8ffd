package cli_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// exec streams: the first line is on the CLI's stdout long before the
// command ends. run/ps/logs/kill drive background processes.
func TestCLIStreamAndProcesses(t *testing.T) {
	e := setup(t)
	id := strings.TrimSpace(e.must(t, "create"))
	e.must(t, "exec", id, "--", "true") // start the session

	cmd := e.command("exec", id, "--", "for i in 1 2 3; do echo n$i; sleep 1; done; exit 4")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	line, err := rd.ReadString('\n')
	first := time.Since(begin)
	if err != nil || line != "n1\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	rest := new(strings.Builder)
	_, _ = rd.WriteTo(rest)
	err = cmd.Wait()
	total := time.Since(begin)
	if cmd.ProcessState.ExitCode() != 4 || rest.String() != "n2\nn3\n" {
		t.Fatalf("exec: exit %d (%v), rest %q", cmd.ProcessState.ExitCode(), err, rest.String())
	}
	t.Logf("first line after %v, exit after %v", first, total)
	if first > total-1500*time.Millisecond {
		t.Fatalf("first line after %v of %v: not streamed", first, total)
	}

	pid := strings.TrimSpace(e.must(t, "run", "--env", "WHO=cli", id, "--", "for i in 1 2 3; do echo l$i $WHO; sleep 0.2; done"))
	if pid == "" {
		t.Fatal("run printed no process id")
	}
	if out := e.must(t, "logs", "-f", id, pid); out != "l1 cli\nl2 cli\nl3 cli\n" {
		t.Fatalf("logs -f: %q", out)
	}
	if out := e.must(t, "logs", id, pid); out != "l1 cli\nl2 cli\nl3 cli\n" {
		t.Fatalf("logs: %q", out)
	}
	var ps []map[string]any
	if err := json.Unmarshal([]byte(e.must(t, "ps", "--json", id)), &ps); err != nil || len(ps) != 1 || ps[0]["process_id"] != pid || ps[0]["status"] != "completed" || ps[0]["exit_code"] != 0.0 {
		t.Fatalf("ps --json: %v %v", ps, err)
	}
	sleeper := strings.TrimSpace(e.must(t, "run", id, "--", "sleep 300"))
	if out := e.must(t, "ps", id); !strings.Contains(out, sleeper) || !strings.Contains(out, "running") {
		t.Fatalf("ps:\n%s", out)
	}
	if out := e.must(t, "kill", "--wait", "10s", id, sleeper); !strings.HasPrefix(out, sleeper+" ") || strings.Contains(out, "running") {
		t.Fatalf("kill: %q", out)
	}
	e.must(t, "kill", "--rm", id, sleeper)
	code, _, errOut := e.run(t, "", "logs", id, sleeper)
	if code != 3 || !strings.Contains(errOut, "process_not_found") {
		t.Fatalf("logs of a removed process: %d %q", code, errOut)
	}
	if code, _, errOut := e.run(t, "", "kill", "--signal", "BOGUS", id, pid); code != 1 || !strings.Contains(errOut, "signal") {
		t.Fatalf("bad signal: %d %q", code, errOut)
	}
}

// Ctrl-C on exec: the CLI exits 130 and, by default, the command is killed;
// with --no-kill it runs on.
func TestCLIExecInterrupt(t *testing.T) {
	e := setup(t)
	id := strings.TrimSpace(e.must(t, "create"))
	for _, noKill := range []bool{false, true} {
		marker := fmt.Sprintf("interrupted-%v", noKill)
		args := []string{"exec", id, "--", "echo go; sleep 2; touch " + marker}
		if noKill {
			args = append([]string{"exec", "--no-kill"}, args[1:]...)
		}
		cmd := e.command(args...)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "go\n" {
			t.Fatalf("first line %q %v", line, err)
		}
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Fatalf("exit code after Ctrl-C: %d", code)
		}
		time.Sleep(3 * time.Second)
		code, _, _ := e.run(t, "", "exec", id, "--", "test -e "+marker)
		if ran := code == 0; ran != noKill {
			t.Fatalf("--no-kill=%v: the command ran to the end: %v", noKill, ran)
		}
	}
}
