package term

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/creack/pty"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T) (*websocket.Conn, context.Context) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/.bay_env.sh", []byte("export PROFILE_T='from profile'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := New(Config{Dir: dir, EnvFile: dir + "/.bay_env.sh", Env: []string{"PATH=/usr/bin:/bin", "HOME=" + dir}})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/?cols=100&rows=30", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn, ctx
}

// readUntil reads frames until the accumulated output contains want.
func readUntil(t *testing.T, ctx context.Context, conn *websocket.Conn, want string) string {
	t.Helper()
	var all strings.Builder
	for !strings.Contains(all.String(), want) {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v; got %q", want, err, all.String())
		}
		if typ != websocket.MessageText {
			t.Fatalf("frame type %v", typ)
		}
		all.Write(data)
	}
	return all.String()
}

func TestTerminal(t *testing.T) {
	conn, ctx := start(t)
	send := func(s string, typ websocket.MessageType) {
		if err := conn.Write(ctx, typ, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send("echo \"$TERM/$PROFILE_T/$((6*7))\"\n", websocket.MessageText)
	readUntil(t, ctx, conn, "xterm-256color/from profile/42")
	send(`{"type":"resize","cols":123,"rows":45}`, websocket.MessageText)
	send("stty size\n", websocket.MessageBinary)
	readUntil(t, ctx, conn, "45 123")
	send("echo é€😀\n", websocket.MessageText)
	readUntil(t, ctx, conn, "é€😀")
	send("exit\n", websocket.MessageText)
	for {
		if _, _, err := conn.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Fatalf("close: %v", err)
			}
			break
		}
	}
}

func TestCloseKillsGroup(t *testing.T) {
	conn, ctx := start(t)
	if err := conn.Write(ctx, websocket.MessageText, []byte("sleep 300 & echo \"P\"\"ID=$!\"\n")); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	pidRE := regexp.MustCompile(`\nPID=(\d+)`)
	var pid int
	for pid == 0 {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("no pid in %q: %v", all.String(), err)
		}
		all.Write(data)
		if m := pidRE.FindStringSubmatch(all.String()); m != nil {
			pid, _ = strconv.Atoi(m[1])
		}
	}
	conn.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Fields(string(b))[2] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep %d survived the close", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCompleteUTF8(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"abc", 3},
		{"a\xc3", 1},
		{"a\xc3\xa9", 3},
		{"\xe2\x82", 0},
		{"x\xf0\x9f\x98", 1},
		{"x\xf0\x9f\x98\x80", 5},
		{"\x80\x80", 2},
	}
	for _, tt := range tests {
		if got := completeUTF8([]byte(tt.in)); got != tt.want {
			t.Errorf("%q: %d want %d", tt.in, got, tt.want)
		}
	}
}

// TestReclaimOnExhaustion: when the shell cannot be started for lack of
// process slots, the terminal reclaims slots, retries, says so, and is
// tracked as a live session (so that a sweep spares it).
func TestReclaimOnExhaustion(t *testing.T) {
	dir := t.TempDir()
	reclaims := 0
	h := New(Config{Dir: dir, Env: []string{"PATH=/usr/bin:/bin", "HOME=" + dir},
		Reclaim: func(context.Context) (int, error) { reclaims++; return 5, nil }})
	failures := 1
	h.startPTY = func(c *exec.Cmd, ws *pty.Winsize, a *syscall.SysProcAttr) (*os.File, error) {
		if failures > 0 {
			failures--
			return nil, &os.PathError{Op: "fork/exec", Path: c.Path, Err: syscall.EAGAIN}
		}
		return pty.StartWithAttrs(c, ws, a)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	readUntil(t, ctx, conn, "5 stray processes were killed")
	if reclaims != 1 {
		t.Errorf("reclaims %d", reclaims)
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte("echo $$\n")); err != nil {
		t.Fatal(err)
	}
	sessions := h.Sessions()
	if len(sessions) != 1 {
		t.Fatalf("sessions %v", sessions)
	}
	readUntil(t, ctx, conn, strconv.Itoa(sessions[0]))

	// Still exhausted after the reclaim: the socket closes with the reason.
	failures = 2
	conn2, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.CloseNow()
	_, _, err = conn2.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusInternalError || !strings.Contains(err.Error(), "out of process slots") {
		t.Errorf("second terminal: %v", err)
	}
}
