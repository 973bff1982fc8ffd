// Package term serves an interactive terminal over WebSocket: a login bash on a
// PTY, as the sandbox user, in the workspace. Text and binary frames are input,
// except a text frame {"type":"resize","cols":C,"rows":R}; output goes out as
// text frames (invalid UTF-8 replaced). Closing the socket kills the terminal's
// whole process group.
package term

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/creack/pty"
)

// Config of the terminal handler.
type Config struct {
	Shell      string // default /bin/bash
	Dir        string // working directory (the workspace)
	EnvFile    string // sourced before the interactive shell when readable
	Env        []string
	Credential *syscall.Credential // nil = run as Ship's own user
	// MaxSessions bounds concurrent terminals (default 16).
	MaxSessions int
	// AnyOrigin accepts upgrades whatever their Origin header. Safe when every
	// request must carry a bearer token (a browser cannot add one to a
	// cross-site WebSocket handshake), so proxies may forward a browser's
	// Origin; without a token, cross-origin upgrades are refused.
	AnyOrigin bool
	Logger    *slog.Logger
	// Reclaim, when set, is called once when the shell cannot be started for
	// lack of process slots (EAGAIN); it kills stray processes and returns how
	// many. The start is then retried once and the terminal says so.
	Reclaim func(ctx context.Context) (int, error)
}

// Handler serves /term/ws. Close ends every open terminal.
type Handler struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	mu       sync.Mutex
	sessions map[int]struct{} // session ids (= shell pids) of live terminals

	startPTY func(*exec.Cmd, *pty.Winsize, *syscall.SysProcAttr) (*os.File, error) // tests inject failures
}

// New returns a terminal handler.
func New(cfg Config) *Handler {
	if cfg.Shell == "" {
		cfg.Shell = "/bin/bash"
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Handler{cfg: cfg, ctx: ctx, cancel: cancel, sem: make(chan struct{}, cfg.MaxSessions), sessions: make(map[int]struct{}), startPTY: pty.StartWithAttrs}
}

// Sessions returns the session ids of the live terminals (each terminal's
// shell leads its own session).
func (h *Handler) Sessions() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]int, 0, len(h.sessions))
	for sid := range h.sessions {
		out = append(out, sid)
	}
	return out
}

// start starts the shell on a PTY; when that fails for lack of process
// slots and Reclaim is set, it reclaims slots and retries once (notice then
// says so).
func (h *Handler) start(ctx context.Context, ws *pty.Winsize) (cmd *exec.Cmd, ptmx *os.File, notice string, err error) {
	attrs := func() *syscall.SysProcAttr {
		return &syscall.SysProcAttr{Setsid: true, Setctty: true, Credential: h.cfg.Credential}
	}
	cmd = h.command()
	ptmx, err = h.startPTY(cmd, ws, attrs())
	if err == nil || h.cfg.Reclaim == nil || !errors.Is(err, syscall.EAGAIN) {
		return cmd, ptmx, "", err
	}
	n, rerr := h.cfg.Reclaim(ctx)
	if rerr != nil {
		h.cfg.Logger.WarnContext(ctx, "reclaiming process slots", "err", rerr)
	}
	notice = fmt.Sprintf("The sandbox was out of process slots: %d stray processes were killed to free them.", n)
	cmd = h.command()
	ptmx, err = h.startPTY(cmd, ws, attrs())
	if err != nil {
		return nil, nil, notice, fmt.Errorf("%w (%s The retry failed too.)", err, notice)
	}
	return cmd, ptmx, notice, nil
}

// Close kills all terminals and waits for them to end.
func (h *Handler) Close() {
	h.cancel()
	h.wg.Wait()
}

func dim(r *http.Request, name string, def uint16) uint16 {
	v, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil || v < 1 || v > 1000 {
		return def
	}
	return uint16(v)
}

type resize struct {
	Type string `json:"type"`
	Cols int    `json:"cols"`
	Rows int    `json:"rows"`
}

func (h *Handler) command() *exec.Cmd {
	script := "exec " + h.cfg.Shell + " -l"
	if h.cfg.EnvFile != "" {
		q := "'" + h.cfg.EnvFile + "'"
		script = "[ -r " + q + " ] && . " + q + "\n" + script
	}
	cmd := exec.Command(h.cfg.Shell, "-lc", script)
	cmd.Dir = h.cfg.Dir
	cmd.Env = append(append([]string{}, h.cfg.Env...), "TERM=xterm-256color")
	return cmd
}

// ServeHTTP upgrades to WebSocket and runs one terminal until either side ends.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case h.sem <- struct{}{}:
		defer func() { <-h.sem }()
	default:
		http.Error(w, `{"detail":"too many terminals open"}`, http.StatusTooManyRequests)
		return
	}
	h.wg.Add(1)
	defer h.wg.Done()
	log := h.cfg.Logger
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: h.cfg.AnyOrigin})
	if err != nil {
		log.WarnContext(r.Context(), "terminal upgrade failed", "err", err)
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	ws := &pty.Winsize{Cols: dim(r, "cols", 80), Rows: dim(r, "rows", 24)}
	cmd, ptmx, notice, err := h.start(ctx, ws)
	if err != nil {
		log.ErrorContext(ctx, "terminal start failed", "err", err)
		reason := "failed to start terminal"
		if errors.Is(err, syscall.EAGAIN) {
			reason = "failed to start terminal: out of process slots"
		}
		conn.Close(websocket.StatusInternalError, reason)
		return
	}
	pid := cmd.Process.Pid
	h.mu.Lock()
	h.sessions[pid] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.sessions, pid)
		h.mu.Unlock()
	}()
	log.InfoContext(ctx, "terminal opened", "pid", pid)
	if notice != "" {
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		_ = conn.Write(wctx, websocket.MessageText, []byte("[ship] "+notice+"\r\n"))
		wcancel()
	}
	var once sync.Once
	cleanup := func() {
		once.Do(func() {
			// Interactive bash puts jobs in their own process groups: kill the
			// whole session the terminal leads, not only its group.
			killSession(pid)
			ptmx.Close()
			_ = cmd.Wait()
		})
	}
	defer cleanup()
	// Ship shutting down: say so and end the terminal.
	stop := context.AfterFunc(h.ctx, func() { conn.Close(websocket.StatusGoingAway, "server shutting down") })
	defer stop()

	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		h.pump(ctx, conn, ptmx)
		// The shell ended (or the socket failed): close politely; this also
		// ends the Read loop below.
		conn.Close(websocket.StatusNormalClosure, "")
	}()

	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			break
		}
		if typ == websocket.MessageText && len(data) > 0 && data[0] == '{' {
			var rs resize
			if json.Unmarshal(data, &rs) == nil && rs.Type == "resize" {
				if rs.Cols > 0 && rs.Rows > 0 && rs.Cols <= 1000 && rs.Rows <= 1000 {
					_ = pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(rs.Cols), Rows: uint16(rs.Rows)})
				}
				continue
			}
		}
		if _, err := ptmx.Write(data); err != nil {
			break
		}
	}
	cleanup()
	// A process that left the session may still hold the tty open and keep the
	// reader blocked; do not wait for it forever.
	select {
	case <-outDone:
	case <-time.After(2 * time.Second):
		cancel()
	}
	log.InfoContext(r.Context(), "terminal closed", "pid", pid)
}

// killSession SIGKILLs every process whose session id is sid.
func killSession(sid int) {
	for round := 0; round < 3; round++ {
		found := false
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			// Fields after the command name (which may hold spaces and parens).
			i := bytes.LastIndexByte(b, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(string(b[i+1:]))
			// f[0]=state f[1]=ppid f[2]=pgrp f[3]=session
			if len(f) > 3 && f[3] == strconv.Itoa(sid) && f[0] != "Z" {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				found = true
			}
		}
		if !found {
			return
		}
	}
}

// pump copies PTY output to the socket as text frames, never splitting a UTF-8
// sequence across frames.
func (h *Handler) pump(ctx context.Context, conn *websocket.Conn, ptmx *os.File) {
	buf := make([]byte, 32<<10)
	var carry []byte
	for {
		n, err := ptmx.Read(buf[len(carry):])
		if n > 0 {
			data := buf[:len(carry)+n]
			cut := completeUTF8(data)
			out := bytes.ToValidUTF8(data[:cut], []byte("\uFFFD"))
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			werr := conn.Write(wctx, websocket.MessageText, out)
			cancel()
			if werr != nil {
				return
			}
			carry = append(carry[:0], data[cut:]...)
			copy(buf, carry)
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, syscall.EIO) {
				h.cfg.Logger.DebugContext(ctx, "terminal read", "err", fmt.Errorf("read pty: %w", err))
			}
			return
		}
	}
}

// completeUTF8 returns the length of the prefix of b that does not end inside
// an incomplete (but possibly valid) UTF-8 sequence.
func completeUTF8(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		c := b[i]
		if c < 0x80 {
			return len(b)
		}
		if c >= 0xC0 { // leading byte
			need := 2
			switch {
			case c >= 0xF0:
				need = 4
			case c >= 0xE0:
				need = 3
			}
			if len(b)-i < need {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}
