// Package cli_test drives the shipyard binary against a real Bay with real
// containers (SHIPYARD_E2E=1), including `shipyard shell` through a PTY.
package cli_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/shipyard/shipyard/test/baytest"
)

type cliEnv struct {
	bin, url string
	dir      string
}

// setup builds the binary and starts a Bay.
func setup(t *testing.T) *cliEnv {
	t.Helper()
	baytest.Skip(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "shipyard")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/shipyard/shipyard/cmd/shipyard")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	b := baytest.Start(t, baytest.Options{})
	return &cliEnv{bin: bin, url: b.URL, dir: dir}
}

func (e *cliEnv) command(args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, args...)
	cmd.Dir = e.dir
	// No config file from the machine: HOME and XDG point into the test.
	cmd.Env = append(os.Environ(), "SHIPYARD_ENDPOINT_URL="+e.url, "SHIPYARD_ACCESS_TOKEN="+baytest.APIKey,
		"HOME="+e.dir, "XDG_CONFIG_HOME="+e.dir)
	return cmd
}

// run runs the CLI and returns its exit code, stdout and stderr.
func (e *cliEnv) run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := e.command(args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

func (e *cliEnv) must(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := e.run(t, "", args...)
	if code != 0 {
		t.Fatalf("shipyard %s: exit %d\nstdout: %.2000q\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func TestCLI(t *testing.T) {
	e := setup(t)
	id := strings.TrimSpace(e.must(t, "create", "--ttl", "600"))
	if !strings.HasPrefix(id, "sandbox-") {
		t.Fatalf("create printed %q", id)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(e.must(t, "ls", "--json")), &list); err != nil || len(list) != 1 || list[0]["id"] != id {
		t.Fatalf("ls --json: %v %v", list, err)
	}
	if out := e.must(t, "ls"); !strings.HasPrefix(out, "ID") || !strings.Contains(out, id) {
		t.Fatalf("ls table:\n%s", out)
	}

	// exec: output, and the command's exit code as the CLI's.
	code, out, errOut := e.run(t, "", "exec", id, "--", "echo hello; echo oops >&2; exit 3")
	if code != 3 || strings.TrimSpace(out) != "hello" || !strings.Contains(errOut, "oops") {
		t.Fatalf("exec: %d %q %q", code, out, errOut)
	}
	if code, out, _ := e.run(t, "", "exec", "--python", id, "--", "print(6*7)"); code != 0 || strings.TrimSpace(out) != "42" {
		t.Fatalf("exec --python: %d %q", code, out)
	}
	code, _, errOut = e.run(t, "", "exec", "--python", id, "--", "1/0")
	if code != 1 || !strings.Contains(errOut, "ZeroDivisionError") {
		t.Fatalf("exec --python error: %d %q", code, errOut)
	}
	if code, out, _ := e.run(t, "x = 5\nprint(x * 2)\n", "exec", "--python", id, "--", "-"); code != 0 || strings.TrimSpace(out) != "10" {
		t.Fatalf("exec code from stdin: %d %q", code, out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(e.must(t, "exec", "--json", id, "--", "echo j")), &res); err != nil || res["exit_code"] != 0.0 || res["execution_id"] == "" {
		t.Fatalf("exec --json: %v %v", res, err)
	}

	// cp both ways, 2 MiB, byte for byte; a missing remote file is exit 3.
	blob := make([]byte, 2<<20)
	_, _ = rand.Read(blob)
	local := filepath.Join(e.dir, "blob.bin")
	os.WriteFile(local, blob, 0o644)
	e.must(t, "cp", local, id+":in/blob.bin")
	back := filepath.Join(e.dir, "back.bin")
	e.must(t, "cp", id+":in/blob.bin", back)
	if got, _ := os.ReadFile(back); !bytes.Equal(got, blob) {
		t.Fatalf("cp round trip differs (%d bytes back)", len(got))
	}
	if out := e.must(t, "cp", id+":in/blob.bin", "-"); len(out) != len(blob) {
		t.Fatalf("cp to stdout: %d bytes", len(out))
	}
	code, _, errOut = e.run(t, "", "cp", id+":nope.txt", filepath.Join(e.dir, "nope"))
	if code != 3 || !strings.Contains(errOut, "file_not_found") {
		t.Fatalf("cp missing: %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "nope")); !os.IsNotExist(err) {
		t.Fatalf("a failed cp left a file: %v", err)
	}

	// ttl, profiles, cargo.
	if out := e.must(t, "ttl", id, "60"); !strings.Contains(out, id+" expires at ") {
		t.Fatalf("ttl: %q", out)
	}
	if out := e.must(t, "profiles"); !strings.Contains(out, "python-default") {
		t.Fatalf("profiles:\n%s", out)
	}
	cargo := strings.TrimSpace(e.must(t, "cargo", "create", "--size", "32"))
	if out := e.must(t, "cargo", "ls", "--json"); !strings.Contains(out, cargo) {
		t.Fatalf("cargo ls: %s", out)
	}
	e.must(t, "cargo", "rm", cargo)
	if out := e.must(t, "cargo", "ls"); strings.Contains(out, cargo) {
		t.Fatalf("cargo still listed:\n%s", out)
	}

	// Errors: clear, on stderr, with Bay's code and meaningful exit codes.
	code, out, errOut = e.run(t, "", "get", "sandbox-000000000000")
	if code != 3 || out != "" || !strings.Contains(errOut, "(not_found, request id ") {
		t.Fatalf("get unknown: %d %q %q", code, out, errOut)
	}
	cmd := e.command("ls")
	cmd.Env = append(cmd.Env, "SHIPYARD_ACCESS_TOKEN=wrong")
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 4 {
		t.Fatalf("wrong token: %v", err)
	}

	e.must(t, "rm", id)
	if out := e.must(t, "ls"); strings.Contains(out, id) {
		t.Fatalf("removed sandbox still listed:\n%s", out)
	}
}

// `shipyard shell` through a PTY: keys in, screen out, resize, exit.
func TestCLIShell(t *testing.T) {
	e := setup(t)
	id := strings.TrimSpace(e.must(t, "create"))
	cmd := e.command("shell", id)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 90, Rows: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	s := &screen{}
	go func() { _, _ = io.Copy(s, ptmx) }()

	send := func(keys string) {
		if _, err := ptmx.WriteString(keys); err != nil {
			t.Fatal(err)
		}
	}
	send("echo hi-$((40+2))\r")
	s.waitFor(t, "hi-42")
	// The local terminal's size reached the remote one at start...
	send("stty size\r")
	s.waitFor(t, "20 90")
	// ...and a resize (SIGWINCH to the CLI) follows.
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: 111, Rows: 33}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.String(), "33 111") && time.Now().Before(deadline) {
		send("stty size\r")
		time.Sleep(300 * time.Millisecond)
	}
	s.waitFor(t, "33 111")
	// Ctrl-C is a key for the remote shell, not the end of the CLI.
	send("sleep 100\r")
	time.Sleep(300 * time.Millisecond)
	send("\x03")
	send("echo after-$((1+1))\r")
	s.waitFor(t, "after-2")
	send("exit\r")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shell exited with %v; screen:\n%s", err, s.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("shell did not exit; screen:\n%s", s.String())
	}
}

// cp on a terminal shows progress for a large file; piped, it shows none.
func TestCLICopyProgress(t *testing.T) {
	e := setup(t)
	id := strings.TrimSpace(e.must(t, "create"))
	blob := make([]byte, 8<<20)
	_, _ = rand.Read(blob)
	local := filepath.Join(e.dir, "big.bin")
	os.WriteFile(local, blob, 0o644)
	cmd := e.command("cp", local, id+":big.bin")
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	s := &screen{}
	go func() { _, _ = io.Copy(s, ptmx) }()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cp: %v\n%s", err, s.String())
	}
	s.waitFor(t, "100.0%  8.0 MiB / 8.0 MiB")
	s.waitFor(t, "big.bin → "+id+":big.bin (8.0 MiB)")
	if _, _, errOut := e.run(t, "", "cp", local, id+":big2.bin"); strings.Contains(errOut, "%") {
		t.Fatalf("progress on a pipe: %q", errOut)
	}
}

// screen collects what the PTY shows.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *screen) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(s.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q on the screen in 30 s:\n%s", want, s.String())
}
