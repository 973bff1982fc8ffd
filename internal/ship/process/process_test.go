package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newRunner(t *testing.T, mod func(*Config)) (*Runner, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{EnvFile: filepath.Join(dir, ".bay_env.sh"), Env: []string{"PATH=/usr/bin:/bin", "HOME=" + dir}}
	if mod != nil {
		mod(&cfg)
	}
	r := New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return r, dir
}

func TestRun(t *testing.T) {
	r, dir := newRunner(t, func(c *Config) { c.MaxOutputBytes = 1000 })
	if err := os.WriteFile(filepath.Join(dir, ".bay_env.sh"), []byte("export PROFILE_X='a:b c'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		spec       Spec
		code       int
		stdout     string
		stderr     string
		timedOut   bool
		truncated  bool
		maxElapsed time.Duration
	}{
		{name: "echo", spec: Spec{Command: "echo hello"}, stdout: "hello"},
		{name: "exit code and stderr", spec: Spec{Command: "echo oops >&2; exit 3"}, code: 3, stderr: "oops"},
		{name: "profile env sourced", spec: Spec{Command: "echo \"$PROFILE_X\""}, stdout: "a:b c"},
		{name: "env map", spec: Spec{Command: `echo "$FOO"`, Env: map[string]string{"FOO": "x'y"}}, stdout: "x'y"},
		{name: "cwd", spec: Spec{Command: "pwd", Dir: filepath.Join(dir, "sub")}, stdout: filepath.Join(dir, "sub")},
		{name: "missing cwd fails like cd", spec: Spec{Command: "echo no", Dir: filepath.Join(dir, "nope")}, code: 1,
			stderr: "No such file or directory"},
		{name: "no shell", spec: Spec{Command: `printf '%s|' "a b" c`, NoShell: true, Dir: dir}, stdout: "a b|c|"},
		{name: "timeout keeps output", spec: Spec{Command: "echo before; sleep 30; echo after", Timeout: 300 * time.Millisecond},
			code: -1, stdout: "before", timedOut: true, maxElapsed: 3 * time.Second},
		{name: "timeout with a grandchild holding the pipe", spec: Spec{Command: "echo a; (sleep 30; echo b) & sleep 30", Timeout: 300 * time.Millisecond},
			code: -1, stdout: "a", timedOut: true, maxElapsed: 3 * time.Second},
		{name: "truncated", spec: Spec{Command: "head -c 5000 /dev/zero | tr '\\0' x"}, stdout: strings.Repeat("x", 1000) + "\n... [output truncated: 4000 bytes omitted]", truncated: true},
		{name: "control bytes cost their JSON escaping", spec: Spec{Command: "head -c 1000 /dev/zero; echo x"}, stdout: strings.Repeat("\x00", 166) + "\n... [output truncated: 836 bytes omitted]", truncated: true},
		{name: "truncated inside a rune", spec: Spec{Command: "printf '€%.0s' $(seq 400)"}, stdout: strings.Repeat("€", 333) + "\n... [output truncated: 201 bytes omitted]", truncated: true},
		{name: "killed by signal", spec: Spec{Command: "kill -TERM $$"}, code: -15},
		{name: "leftover background child does not block", spec: Spec{Command: "sleep 30 & echo started"}, stdout: "started",
			maxElapsed: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, err := r.Run(context.Background(), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if res.ReturnCode != tt.code || res.Stdout != tt.stdout || !strings.Contains(res.Stderr, tt.stderr) ||
				res.TimedOut != tt.timedOut || res.Truncated != tt.truncated {
				t.Fatalf("got %+v", res)
			}
			if res.Pid <= 0 {
				t.Fatalf("pid %d", res.Pid)
			}
			if tt.maxElapsed > 0 && time.Since(start) > tt.maxElapsed {
				t.Fatalf("took %v", time.Since(start))
			}
		})
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	r, dir := newRunner(t, nil)
	pidFile := filepath.Join(dir, "child.pid")
	res, err := r.Run(context.Background(), Spec{Command: fmt.Sprintf("sleep 60 & echo $! > %s; wait", pidFile), Timeout: 300 * time.Millisecond})
	if err != nil || !res.TimedOut {
		t.Fatalf("%+v %v", res, err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports a live, non-zombie process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestRunErrors(t *testing.T) {
	r, _ := newRunner(t, nil)
	tests := []struct {
		name string
		spec Spec
		err  error
	}{
		{"bad env name", Spec{Command: "true", Env: map[string]string{"1X": "a"}}, ErrInvalidEnv},
		{"env name with =", Spec{Command: "true", Env: map[string]string{"A=B": "a"}}, ErrInvalidEnv},
		{"nul value", Spec{Command: "true", Env: map[string]string{"A": "a\x00"}}, ErrInvalidEnv},
		{"empty", Spec{Command: "  "}, ErrEmpty},
		{"empty no shell", Spec{Command: "", NoShell: true}, ErrEmpty},
		{"bad quote", Spec{Command: "echo 'x", NoShell: true}, ErrUnterminatedQuote},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Run(context.Background(), tt.spec)
			if !errors.Is(err, tt.err) || res.ReturnCode != -1 {
				t.Fatalf("got %+v, %v; want %v", res, err, tt.err)
			}
		})
	}
}

func TestRunContextCancel(t *testing.T) {
	r, _ := newRunner(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := r.Run(ctx, Spec{Command: "sleep 30"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestBackground(t *testing.T) {
	r, _ := newRunner(t, nil)
	ctx := context.Background()
	long, err := r.Start(ctx, Spec{Command: "echo up; echo err >&2; sleep 60"})
	if err != nil {
		t.Fatal(err)
	}
	if len(long.ProcessID) != 8 || long.Status != StatusRunning || long.Pid <= 0 {
		t.Fatalf("%+v", long)
	}
	short, err := r.Start(ctx, Spec{Command: "echo done; exit 2"})
	if err != nil {
		t.Fatal(err)
	}
	info, out, err := r.Wait(ctx, short.ProcessID, 5*time.Second)
	if err != nil || info.Status != StatusFailed || info.ExitCode == nil || *info.ExitCode != 2 || out.Stdout != "done\n" || info.FinishedAt == nil {
		t.Fatalf("%+v %+v %v", info, out, err)
	}
	if got := r.List(); len(got) != 2 || r.Running() != 1 {
		t.Fatalf("list %+v running %d", got, r.Running())
	}
	// Output of the running one is readable while it runs.
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, out, err = r.Get(long.ProcessID)
		if err != nil {
			t.Fatal(err)
		}
		if out.Stdout == "up\n" && out.Stderr == "err\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("output %+v", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	info, _, err = r.Wait(ctx, long.ProcessID, 100*time.Millisecond)
	if err != nil || info.Status != StatusRunning {
		t.Fatalf("wait timeout: %+v %v", info, err)
	}
	info, _, err = r.Kill(ctx, long.ProcessID)
	if err != nil || info.Status != StatusKilled || *info.ExitCode != -9 {
		t.Fatalf("kill: %+v %v", info, err)
	}
	if _, _, err := r.Get("deadbeef"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
}

func TestBackgroundBounds(t *testing.T) {
	r, _ := newRunner(t, func(c *Config) { c.MaxRunning = 2; c.KeepFinished = 3; c.RingBytes = 16 })
	ctx := context.Background()
	var ids []string
	for i := 0; i < 6; i++ {
		in, err := r.Start(ctx, Spec{Command: fmt.Sprintf("printf '%%s' %s", strings.Repeat(strconv.Itoa(i), 40))})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Wait(ctx, in.ProcessID, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, in.ProcessID)
	}
	list := r.List()
	if len(list) != 3 || list[0].ProcessID != ids[3] || list[2].ProcessID != ids[5] {
		t.Fatalf("kept %+v, want the last 3 of %v", list, ids)
	}
	_, out, err := r.Get(ids[5])
	if err != nil || out.Stdout != "... [output truncated: 24 bytes omitted]\n"+strings.Repeat("5", 16) || out.StdoutDropped != 24 {
		t.Fatalf("ring: %+v %v", out, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := r.Start(ctx, Spec{Command: "sleep 60"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Start(ctx, Spec{Command: "sleep 60"}); !errors.Is(err, ErrTooMany) {
		t.Fatalf("third running: %v", err)
	}
}

func TestRing(t *testing.T) {
	tests := []struct {
		size    int
		writes  []string
		want    string
		dropped int64
	}{
		{4, []string{"ab"}, "ab", 0},
		{4, []string{"ab", "cd"}, "abcd", 0},
		{4, []string{"ab", "cde"}, "bcde", 1},
		{4, []string{"abcdefgh"}, "efgh", 4},
		{4, []string{"abc", "d", "e", "fg", "hijkl"}, "ijkl", 8},
		{3, []string{"a", "b", "c", "d", "e"}, "cde", 2},
	}
	for _, tt := range tests {
		r := NewRing(tt.size)
		for _, w := range tt.writes {
			_, _ = r.Write([]byte(w))
		}
		got, dropped := r.Snapshot()
		if string(got) != tt.want || dropped != tt.dropped {
			t.Errorf("%v: got %q/%d want %q/%d", tt.writes, got, dropped, tt.want, tt.dropped)
		}
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  error
	}{
		{"a b  c", []string{"a", "b", "c"}, nil},
		{`'a b' "c d" e\ f`, []string{"a b", "c d", "e f"}, nil},
		{`"a\"b" 'it'\''s'`, []string{`a"b`, "it's"}, nil},
		{`""`, []string{""}, nil},
		{"", nil, nil},
		{`"x`, nil, ErrUnterminatedQuote},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		if !errors.Is(err, tt.err) || fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
			t.Errorf("Split(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// failStarts makes the first n starts fail as fork does without process slots.
func failStarts(r *Runner, n int) {
	left := n
	var mu sync.Mutex
	r.startCmd = func(c *exec.Cmd) error {
		mu.Lock()
		defer mu.Unlock()
		if left > 0 {
			left--
			return &os.PathError{Op: "fork/exec", Path: c.Path, Err: syscall.EAGAIN}
		}
		return c.Start()
	}
}

func TestReclaimOnExhaustion(t *testing.T) {
	var reclaims int
	var keptGroups []int
	var r *Runner
	r, _ = newRunner(t, func(c *Config) {
		c.Reclaim = func(context.Context) (int, error) {
			reclaims++
			keptGroups = r.Groups()
			return 3, nil
		}
	})
	ctx := context.Background()
	bg, err := r.Start(ctx, Spec{Command: "sleep 60"})
	if err != nil || bg.Notice != "" {
		t.Fatalf("start: %+v %v", bg, err)
	}

	tests := []struct {
		name     string
		fails    int
		wantErr  bool
		reclaims int
	}{
		{name: "no exhaustion", fails: 0, reclaims: 0},
		{name: "reclaimed and retried", fails: 1, reclaims: 1},
		{name: "still exhausted", fails: 2, wantErr: true, reclaims: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reclaims = 0
			failStarts(r, tt.fails)
			res, err := r.Run(ctx, Spec{Command: "echo ok"})
			if (err != nil) != tt.wantErr || reclaims != tt.reclaims {
				t.Fatalf("err %v, reclaims %d", err, reclaims)
			}
			if tt.reclaims > 0 && !strings.Contains(res.Notice, "3 stray processes") {
				t.Errorf("notice %q", res.Notice)
			}
			if tt.wantErr && !strings.Contains(err.Error(), "retry failed too") {
				t.Errorf("error %q", err)
			}
			if !tt.wantErr && res.Stdout != "ok" {
				t.Errorf("stdout %q", res.Stdout)
			}
			if tt.reclaims > 0 && !slices.Contains(keptGroups, bg.Pid) {
				t.Errorf("background group %d not kept: %v", bg.Pid, keptGroups)
			}
		})
	}
	failStarts(r, 1)
	info, err := r.Start(ctx, Spec{Command: "sleep 60"})
	if err != nil || !strings.Contains(info.Notice, "stray processes") {
		t.Fatalf("background start after reclaim: %+v %v", info, err)
	}
}

// TestForegroundLeavesBackgroundChildren: a server started with & by a
// foreground command keeps running after the command returns (agents rely on
// it); only a timeout kills the command's group.
func TestForegroundLeavesBackgroundChildren(t *testing.T) {
	r, dir := newRunner(t, nil)
	pidFile := filepath.Join(dir, "server.pid")
	res, err := r.Run(context.Background(), Spec{Command: fmt.Sprintf("sleep 60 >/dev/null 2>&1 & echo $! > %s", pidFile)})
	if err != nil || res.ReturnCode != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("background child %d gone after the command returned: %v", pid, err)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func TestShorten(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 10, "abcdefghij"},
		{"abcdefghijk", 10, "abcdefg…"},
		{"ééééé", 8, "éé…"},
	}
	for _, tt := range tests {
		if got := shorten(tt.in, tt.n); got != tt.want || len(got) > tt.n || !utf8.ValidString(got) {
			t.Errorf("shorten(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
	r, _ := newRunner(t, nil)
	long := "true " + strings.Repeat("# padding ", 10_000)
	info, err := r.Start(context.Background(), Spec{Command: long})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Command) > maxCommandShown {
		t.Errorf("command kept: %d bytes", len(info.Command))
	}
}

// TestReclaimWhenCrowded: with almost no process slots left a command would
// start and then fail to fork inside, so Reclaim runs before the start.
func TestReclaimWhenCrowded(t *testing.T) {
	for _, crowded := range []bool{false, true} {
		reclaims := 0
		r, _ := newRunner(t, func(c *Config) {
			c.Reclaim = func(context.Context) (int, error) { reclaims++; return 5, nil }
			c.Crowded = func() bool { return crowded }
		})
		res, err := r.Run(context.Background(), Spec{Command: "echo ok"})
		if err != nil || res.Stdout != "ok" {
			t.Fatalf("crowded=%v: %+v %v", crowded, res, err)
		}
		want := 0
		if crowded {
			want = 1
		}
		if reclaims != want || (crowded != strings.Contains(res.Notice, "5 stray processes")) {
			t.Errorf("crowded=%v: %d reclaims, notice %q", crowded, reclaims, res.Notice)
		}
	}
}
