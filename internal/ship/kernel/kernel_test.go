package kernel

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

// debianPython is Debian's interpreter, which has python3-ipykernel; the
// python3 on PATH on the dev machine may not.
const debianPython = "/usr/bin/python3"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testConfig(t testing.TB) Config {
	t.Helper()
	if out, err := exec.Command(debianPython, "-c", "import ipykernel").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import ipykernel (apt-get install -y python3-ipykernel python3-matplotlib): %v: %s",
			debianPython, err, out)
	}
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return Config{
		Argv:     []string{debianPython, "-m", "ipykernel_launcher", "-f", "{connection_file}"},
		Dir:      t.TempDir(),
		InitCode: DefaultInitCode,
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level})),
	}
}

// testWriter sends logs to t.Log, so they show with -v or on failure.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// startManager starts a kernel with cfg and closes it at the end of the test.
func startManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	m := NewManager(cfg)
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return m
}

func exec1(t testing.TB, m *Manager, code string, timeout time.Duration) Result {
	t.Helper()
	res, err := m.Execute(context.Background(), Request{Code: code, Timeout: timeout})
	if err != nil {
		t.Fatalf("Execute(%q): %v", code, err)
	}
	return res
}

func TestExecute(t *testing.T) {
	m := startManager(t, testConfig(t))
	tests := []struct {
		name      string
		code      string
		wantText  string
		wantOK    bool
		wantError string // substring of Error
	}{
		{name: "assign", code: "x = 40", wantOK: true},
		{name: "state persists", code: "x + 2", wantText: "42", wantOK: true},
		{name: "print and expression", code: "print('hello')\n6*7", wantText: "hello\n42", wantOK: true},
		{name: "stderr", code: "import sys; print('oops', file=sys.stderr)", wantText: "oops", wantOK: true},
		{name: "exception", code: "1/0", wantError: "ZeroDivisionError"},
		{name: "output before exception", code: "print('before')\nraise ValueError('bad value')", wantText: "before", wantError: "bad value"},
		{name: "syntax error", code: "def (:", wantError: "SyntaxError"},
		{name: "none result", code: "None", wantOK: true},
		{name: "unicode", code: "print('héllo ✓')", wantText: "héllo ✓", wantOK: true},
		{name: "no stdin", code: "input('name? ')", wantError: "StdinNotImplementedError"},
		{name: "init leaves no names", code: "[n for n in dir() if 'shipyard' in n]", wantText: "[]", wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := exec1(t, m, tt.code, 10*time.Second)
			if res.Success != tt.wantOK {
				t.Errorf("Success = %v, want %v (Error %q)", res.Success, tt.wantOK, res.Error)
			}
			if res.Text != tt.wantText {
				t.Errorf("Text = %q, want %q", res.Text, tt.wantText)
			}
			if tt.wantError == "" && res.Error != "" {
				t.Errorf("Error = %q, want none", res.Error)
			}
			if !strings.Contains(res.Error, tt.wantError) {
				t.Errorf("Error = %q, want it to contain %q", res.Error, tt.wantError)
			}
			if res.ExecutionCount == nil {
				t.Errorf("ExecutionCount = nil")
			}
			if res.TimedOut || res.Restarted {
				t.Errorf("TimedOut=%v Restarted=%v", res.TimedOut, res.Restarted)
			}
		})
	}
}

func TestExecutionCount(t *testing.T) {
	m := startManager(t, testConfig(t))
	first := exec1(t, m, "1", 0)
	second := exec1(t, m, "2", 0)
	if first.ExecutionCount == nil || second.ExecutionCount == nil {
		t.Fatalf("counts = %v, %v", first.ExecutionCount, second.ExecutionCount)
	}
	if *second.ExecutionCount != *first.ExecutionCount+1 {
		t.Errorf("counts = %d, %d; want consecutive", *first.ExecutionCount, *second.ExecutionCount)
	}
	res, err := m.Execute(context.Background(), Request{Code: "y = 5\nprint('quiet')", Silent: true})
	if err != nil || !res.Success || res.ExecutionCount != nil || res.Text != "quiet" {
		t.Errorf("silent: %+v, %v; want success, no count, text", res, err)
	}
	third := exec1(t, m, "y", 0)
	if third.Text != "5" || *third.ExecutionCount != *second.ExecutionCount+1 {
		t.Errorf("after silent: text %q count %d", third.Text, *third.ExecutionCount)
	}
}

func TestRichOutput(t *testing.T) {
	m := startManager(t, testConfig(t))
	pngMagic := []byte("\x89PNG\r\n\x1a\n")
	tests := []struct {
		name       string
		code       string
		wantImages int
		wantText   string
		wantData   string // a MIME type expected in Data
	}{
		{name: "plt.show", code: "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()", wantImages: 1},
		{name: "figure left open", code: "import matplotlib.pyplot as plt\nplt.figure(); plt.bar(['a', 'b'], [3, 5]);", wantImages: 1},
		{name: "two figures", code: "import matplotlib.pyplot as plt\nfor i in range(2):\n    plt.figure(); plt.plot([i, i+1])\nplt.show()", wantImages: 2},
		{name: "html", code: "from IPython.display import HTML\nHTML('<b>hi</b>')", wantText: "<IPython.core.display.HTML object>", wantData: "text/html"},
		{name: "display text", code: "from IPython.display import display\ndisplay('shown')", wantText: "'shown'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := exec1(t, m, tt.code, 30*time.Second)
			if !res.Success {
				t.Fatalf("Error: %s", res.Error)
			}
			if len(res.Images) != tt.wantImages {
				t.Fatalf("%d images, want %d (text %q, data %v)", len(res.Images), tt.wantImages, res.Text, res.Data)
			}
			for _, img := range res.Images {
				b, err := base64.StdEncoding.DecodeString(img["image/png"])
				if err != nil || !bytes.HasPrefix(b, pngMagic) {
					t.Errorf("image is not a base64 PNG (err %v, %d bytes)", err, len(b))
				}
			}
			if tt.wantText != "" && res.Text != tt.wantText {
				t.Errorf("Text = %q, want %q", res.Text, tt.wantText)
			}
			if tt.wantData != "" && len(res.Data[tt.wantData]) == 0 {
				t.Errorf("Data = %v, want %s", res.Data, tt.wantData)
			}
		})
	}
}

// An environment that selects a non-GUI backend must not silently lose plots.
func TestPlotWithAggInEnvironment(t *testing.T) {
	cfg := testConfig(t)
	cfg.Env = append(os.Environ(), "MPLBACKEND=Agg")
	cfg.InitCode = DefaultInitCode + EnvInitCode(map[string]string{"PROFILE_VAR": "it's \"quoted\"\n✓"})
	m := startManager(t, cfg)
	res := exec1(t, m, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()", 30*time.Second)
	if len(res.Images) != 1 {
		t.Errorf("got %d images (error %q)", len(res.Images), res.Error)
	}
	res = exec1(t, m, "import os; print(repr(os.environ['PROFILE_VAR']))", 0)
	if want := `'it\'s "quoted"\n✓'`; res.Text != want {
		t.Errorf("PROFILE_VAR = %s (error %q), want %s", res.Text, res.Error, want)
	}
}

func TestTimeout(t *testing.T) {
	m := startManager(t, testConfig(t))
	exec1(t, m, "keep = 'still here'", 0)
	began := time.Now()
	res := exec1(t, m, "import time\nprint('started')\ntime.sleep(60)\nprint('never')", 2*time.Second)
	took := time.Since(began)
	t.Logf("timed-out cell returned after %s", took)
	if took < 2*time.Second || took > 4*time.Second {
		t.Errorf("took %s, want ~2s", took)
	}
	if res.Success || !res.TimedOut || res.Restarted {
		t.Errorf("Success=%v TimedOut=%v Restarted=%v", res.Success, res.TimedOut, res.Restarted)
	}
	if !strings.HasPrefix(res.Error, "Code execution timed out after 2 seconds") || !strings.Contains(res.Error, "KeyboardInterrupt") {
		t.Errorf("Error = %q", res.Error)
	}
	if res.Text != "started" {
		t.Errorf("Text = %q, want the output printed before the timeout", res.Text)
	}
	after := exec1(t, m, "print(keep)", 0)
	if !after.Success || after.Text != "still here" {
		t.Errorf("after timeout: %+v", after)
	}
}

func TestTimeoutUninterruptible(t *testing.T) {
	cfg := testConfig(t)
	cfg.InterruptGrace = 500 * time.Millisecond
	m := startManager(t, cfg)
	exec1(t, m, "lost = 1", 0)
	code := "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass"
	res := exec1(t, m, code, time.Second)
	if !res.TimedOut || !res.Restarted || res.Notice == "" || m.Status() != StatusAlive {
		t.Fatalf("res = %+v, status %s", res, m.Status())
	}
	after := exec1(t, m, "lost", 0)
	if after.Success || !strings.Contains(after.Error, "NameError") || after.Restarted {
		t.Errorf("after restart: %+v", after)
	}
}

func TestConcurrentExecutesAreSerialized(t *testing.T) {
	m := startManager(t, testConfig(t))
	exec1(t, m, "import time\nrunning = 0", 0)
	const n = 6
	var wg sync.WaitGroup
	results := make([]Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := fmt.Sprintf("running += 1\nassert running == 1\nprint('begin %d')\ntime.sleep(0.05)\nprint('end %d')\nrunning -= 1\n%d", i, i, i)
			results[i], errs[i] = m.Execute(context.Background(), Request{Code: code, Timeout: 10 * time.Second})
		}()
	}
	wg.Wait()
	for i := range n {
		want := fmt.Sprintf("begin %d\nend %d\n%d", i, i, i)
		if errs[i] != nil || !results[i].Success || results[i].Text != want {
			t.Errorf("call %d: %+v, %v; want text %q", i, results[i], errs[i], want)
		}
	}
}

func TestQueueTimeout(t *testing.T) {
	cfg := testConfig(t)
	cfg.QueueTimeout = 200 * time.Millisecond
	m := startManager(t, cfg)
	done := make(chan Result)
	go func() {
		res, _ := m.Execute(context.Background(), Request{Code: "import time; time.sleep(1)", Timeout: 5 * time.Second})
		done <- res
	}()
	time.Sleep(100 * time.Millisecond)
	_, err := m.Execute(context.Background(), Request{Code: "1"})
	if !errors.Is(err, ErrBusy) {
		t.Errorf("second Execute: %v, want ErrBusy", err)
	}
	if res := <-done; !res.Success {
		t.Errorf("first: %+v", res)
	}
}

func TestKernelDeath(t *testing.T) {
	tests := []struct {
		name string
		kill func(t *testing.T, m *Manager) Result // returns the result of the dying cell, if any
	}{
		{name: "os._exit", kill: func(t *testing.T, m *Manager) Result {
			return exec1(t, m, "print('bye', flush=True)\nimport os; os._exit(1)", 10*time.Second)
		}},
		{name: "SIGKILL while idle", kill: func(t *testing.T, m *Manager) Result {
			if err := syscall.Kill(m.Pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			return Result{}
		}},
		{name: "SIGKILL during a cell", kill: func(t *testing.T, m *Manager) Result {
			pid := m.Pid()
			time.AfterFunc(300*time.Millisecond, func() { syscall.Kill(pid, syscall.SIGKILL) })
			return exec1(t, m, "import time; time.sleep(30)", 10*time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := startManager(t, testConfig(t))
			exec1(t, m, "state = 1", 0)
			oldPid := m.Pid()
			res := tt.kill(t, m)
			if res.Error != "" && (res.Success || !strings.Contains(res.Error, "Kernel died") || !strings.Contains(res.Error, "state")) {
				t.Errorf("dying cell: %+v", res)
			}
			waitFor(t, func() bool { return m.Status() == StatusDead })
			res = exec1(t, m, "state", 0)
			if !res.Restarted || res.Notice == "" || res.Success || !strings.Contains(res.Error, "NameError") {
				t.Errorf("next cell: %+v; want Restarted, a notice and a NameError", res)
			}
			if m.Status() != StatusAlive || m.Pid() == oldPid {
				t.Errorf("status %s pid %d (old %d)", m.Status(), m.Pid(), oldPid)
			}
			if res := exec1(t, m, "1+1", 0); res.Restarted || res.Text != "2" {
				t.Errorf("third cell: %+v", res)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	m := NewManager(testConfig(t))
	defer m.Close()
	ctx := context.Background()
	if st := m.Status(); st != StatusNotStarted {
		t.Fatalf("status %s", st)
	}
	if err := m.Shutdown(ctx); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Shutdown before start: %v", err)
	}
	// Execute starts the kernel on demand.
	if res := exec1(t, m, "v = 1; v", 0); res.Text != "1" || res.Restarted {
		t.Fatalf("first: %+v", res)
	}
	if err := m.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if res := exec1(t, m, "v", 0); !strings.Contains(res.Error, "NameError") || res.Restarted {
		t.Fatalf("after Restart: %+v", res)
	}
	pid := m.Pid()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st != StatusNotStarted {
		t.Fatalf("status after Shutdown %s", st)
	}
	assertGone(t, pid)
	if res := exec1(t, m, "2", 0); res.Text != "2" || res.Restarted {
		t.Fatalf("after Shutdown: %+v", res)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Execute(ctx, Request{Code: "1"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Execute after Close: %v", err)
	}
}

func TestRestartDuringCell(t *testing.T) {
	m := startManager(t, testConfig(t))
	done := make(chan Result)
	go func() {
		res, _ := m.Execute(context.Background(), Request{Code: "import time\nprint('working')\ntime.sleep(30)", Timeout: 20 * time.Second})
		done <- res
	}()
	time.Sleep(500 * time.Millisecond)
	if err := m.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.Success || !strings.Contains(res.Error, "Kernel was restarted during execution") || res.Text != "working" {
		t.Errorf("running cell: %+v", res)
	}
	if res := exec1(t, m, "1+1", 0); res.Text != "2" || res.Restarted {
		t.Errorf("after restart: %+v", res)
	}
}

func TestCloseKillsProcessGroup(t *testing.T) {
	m := startManager(t, testConfig(t))
	res := exec1(t, m, "import subprocess\np = subprocess.Popen(['sleep', '300'])\nprint(p.pid)", 0)
	child, err := strconv.Atoi(res.Text)
	if err != nil {
		t.Fatalf("child pid: %+v", res)
	}
	pid := m.Pid()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, pid)
	assertGone(t, child)
}

func TestCancel(t *testing.T) {
	m := startManager(t, testConfig(t))
	exec1(t, m, "kept = 7", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	began := time.Now()
	res, err := m.Execute(ctx, Request{Code: "import time; time.sleep(30)", Timeout: 20 * time.Second})
	if !errors.Is(err, context.DeadlineExceeded) || res.Success || time.Since(began) > 2*time.Second {
		t.Fatalf("canceled: %+v, %v after %s", res, err, time.Since(began))
	}
	// The interrupted cell settles in the background; the next call waits for
	// it and sees its own output only.
	after := exec1(t, m, "kept", 0)
	if !after.Success || after.Text != "7" {
		t.Errorf("after cancel: %+v", after)
	}
}

func TestTruncation(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxOutputBytes = 100
	m := startManager(t, cfg)
	res := exec1(t, m, "print('é' * 500)", 0)
	head, _, marked := strings.Cut(res.Text, "\n... [output truncated: ")
	if !res.Truncated || !marked || len(head) > 100 || !strings.HasPrefix(res.Text, "éé") {
		t.Errorf("res = %+v (len %d)", res, len(res.Text))
	}
	if strings.ContainsRune(res.Text, '\uFFFD') || !utf8.ValidString(res.Text) {
		t.Errorf("cut inside a rune: %q", res.Text)
	}
}

func TestHeartbeatLoss(t *testing.T) {
	cfg := testConfig(t)
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	m := startManager(t, cfg)
	// A stopped process answers nothing; the heartbeat notices.
	if err := syscall.Kill(m.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return m.Status() == StatusDead })
	res := exec1(t, m, "1+1", 0)
	if !res.Restarted || !strings.Contains(res.Notice, "heartbeat") || res.Text != "2" {
		t.Errorf("res = %+v", res)
	}
}

func TestRunAsUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to switch user")
	}
	cfg := testConfig(t)
	const nobody = 65534
	cfg.UID, cfg.GID = nobody, nobody
	dir, err := os.MkdirTemp("", "kernel-as-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cfg.Dir = dir
	cfg.Env = []string{"HOME=" + cfg.Dir, "PATH=/usr/bin:/bin", "SHIP_TEST=1"}
	m := startManager(t, cfg)
	res := exec1(t, m, "import os\nprint(os.getuid(), os.getgid(), os.getcwd() == os.environ['HOME'], os.environ['SHIP_TEST'])", 0)
	if want := "65534 65534 True 1"; res.Text != want {
		t.Errorf("Text = %q (error %q), want %q", res.Text, res.Error, want)
	}
}

func TestStartFailure(t *testing.T) {
	cfg := testConfig(t)
	cfg.Argv = []string{debianPython, "-c", "import sys; print('no kernel here', file=sys.stderr); sys.exit(3)"}
	m := NewManager(cfg)
	defer m.Close()
	err := m.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "no kernel here") {
		t.Fatalf("Start: %v", err)
	}
	if st := m.Status(); st != StatusNotStarted {
		t.Errorf("status %s", st)
	}
}

func BenchmarkExecuteOnePlusOne(b *testing.B) {
	m := startManager(b, testConfig(b))
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		res, err := m.Execute(ctx, Request{Code: "1+1"})
		if err != nil || res.Text != "2" {
			b.Fatalf("%+v, %v", res, err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertGone checks that pid no longer runs (a zombie that is not our child
// counts as gone: only its own parent can reap it).
func assertGone(t *testing.T, pid int) {
	t.Helper()
	waitFor(t, func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// "pid (comm) S ppid ..."
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		return fields[0] == "Z" && fields[1] != strconv.Itoa(os.Getpid())
	})
}
