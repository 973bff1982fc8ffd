// Package browser runs one headless Chromium for the sandbox and executes
// the browser command language against it over the DevTools protocol
// (chromedp, over a pipe: the browser opens no debugging port).
//
// The browser starts on the first command, is restarted by the next command
// when it died (crash, out of memory, killed), and keeps its profile
// (cookies, local storage, cache) in a directory on the workspace volume, so
// that a rebuilt container finds it again. Commands run one at a time.
package browser

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"
)

// Config of a Manager.
type Config struct {
	// ExecPath is the Chromium binary (chromium-headless-shell or chromium).
	ExecPath string
	// Workspace is the directory every file path is confined to (/workspace).
	Workspace string
	// ProfileDir holds the browser profile (default <workspace>/.browser/profile).
	ProfileDir string
	// Flags are extra Chromium switches (name → value; true for bare switches).
	Flags map[string]any
	// NoSandbox runs Chromium without its own sandbox. Gull refuses it as root.
	NoSandbox bool
	// Width/Height of the viewport (1280x800).
	Width, Height int
	// MaxOutputBytes bounds a command's stdout (1 MiB).
	MaxOutputBytes int
	// StartTimeout bounds a browser start (30s).
	StartTimeout time.Duration
	Logger       *slog.Logger
}

func (c *Config) defaults() {
	if c.Workspace == "" {
		c.Workspace = "/workspace"
	}
	if c.ProfileDir == "" {
		c.ProfileDir = filepath.Join(c.Workspace, ".browser", "profile")
	}
	if c.Width == 0 {
		c.Width, c.Height = 1280, 800
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = 1 << 20
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// memoryFlags bound Chromium's memory: renderer processes are capped, the
// V8 heap of each is bounded and the disk cache is small. The container's
// memory limit does the rest (an OOM kill is a crash: the next call
// restarts the browser).
func memoryFlags() map[string]any {
	return map[string]any{
		"renderer-process-limit":      "4",
		"js-flags":                    "--max-old-space-size=512",
		"disk-cache-size":             "67108864",
		"disable-gpu":                 true,
		"disable-software-rasterizer": true,
		"mute-audio":                  true,
		"hide-scrollbars":             true,
		// chromedp turns the popup blocker off; a page must not open
		// windows without a user gesture (a loop of window.open).
		"disable-popup-blocking": false,
	}
}

// Manager owns the browser process and the session state.
type Manager struct {
	cfg Config
	// sem serialises commands (a channel so waiting honours contexts).
	sem chan struct{}

	mu       sync.Mutex // guards the fields below (read by Health without sem)
	alloc    context.Context
	cancel   context.CancelFunc
	bctx     context.Context // the browser's root context (first tab)
	proxy    string
	sandbox  string // sandbox id of the session, when the caller gave one
	started  time.Time
	restarts int

	sess *session // tabs, refs, routes; nil until started
}

// New returns a Manager; the browser starts with the first command.
func New(cfg Config) *Manager {
	cfg.defaults()
	return &Manager{cfg: cfg, sem: make(chan struct{}, 1)}
}

// Status is what /health reports.
type Status struct {
	Active   bool   // a browser process is running
	Ready    bool   // Chromium can be started (binary present) or is running
	Session  string // sandbox id of the session, if any
	PID      int
	Restarts int
}

// Status reports the browser's state without waiting for a running command.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Session: m.sandbox, Restarts: m.restarts}
	if m.bctx != nil && m.bctx.Err() == nil {
		st.Active = true
		if c := chromedp.FromContext(m.bctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
			st.PID = c.Browser.Process().Pid
		}
	}
	if fi, err := os.Stat(m.cfg.ExecPath); err == nil && !fi.IsDir() {
		st.Ready = true
	}
	return st
}

func (m *Manager) acquire(ctx context.Context) error {
	select {
	case m.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("another browser command is still running: %w", ctx.Err())
	}
}

func (m *Manager) release() { <-m.sem }

// ensure starts the browser when none runs (or it died). A proxy given
// (--proxy URL) sticks: the browser is restarted with it and keeps it until
// another is given ("off" for none); "" keeps the current one. It returns
// the session. Called with sem held.
func (m *Manager) ensure(ctx context.Context, proxy string) (*session, bool, error) {
	m.mu.Lock()
	alive := m.bctx != nil && m.bctx.Err() == nil
	switch proxy {
	case "":
		proxy = m.proxy
	case "off", "none":
		proxy = ""
	}
	sameProxy := m.proxy == proxy
	m.mu.Unlock()
	if alive && sameProxy {
		return m.sess, false, nil
	}
	restarted := false
	if m.bctx != nil {
		restarted = !alive
		if restarted {
			m.cfg.Logger.Warn("browser died; starting a new one", "restarts", m.restarts+1)
		}
		m.stop()
	}
	if err := m.start(ctx, proxy); err != nil {
		return nil, restarted, err
	}
	m.mu.Lock()
	if restarted {
		m.restarts++
	}
	m.mu.Unlock()
	return m.sess, restarted, nil
}

func (m *Manager) start(ctx context.Context, proxy string) error {
	t0 := time.Now()
	if err := os.MkdirAll(m.cfg.ProfileDir, 0o700); err != nil {
		return fmt.Errorf("create the browser profile directory: %w", err)
	}
	// A crashed browser leaves its singleton lock behind; the profile is ours
	// alone (one browser per container), so a stale lock is safe to drop.
	for _, f := range []string{"SingletonLock", "SingletonSocket", "SingletonCookie"} {
		_ = os.Remove(filepath.Join(m.cfg.ProfileDir, f))
	}
	home := filepath.Dir(m.cfg.ProfileDir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(m.cfg.ExecPath),
		chromedp.UserDataDir(m.cfg.ProfileDir),
		chromedp.WindowSize(m.cfg.Width, m.cfg.Height),
		// Chromium's own files (font cache, NSS db) stay beside the profile,
		// not among the user's files in the workspace.
		chromedp.Env("HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_CONFIG_HOME="+filepath.Join(home, "config")),
	)
	if m.cfg.NoSandbox {
		opts = append(opts, chromedp.NoSandbox)
	} else {
		opts = append(opts, chromedp.Flag("no-sandbox", false))
	}
	for k, v := range memoryFlags() {
		opts = append(opts, chromedp.Flag(k, v))
	}
	for k, v := range m.cfg.Flags {
		opts = append(opts, chromedp.Flag(k, v))
	}
	if proxy != "" {
		opts = append(opts, chromedp.ProxyServer(proxy))
	}
	out := &limitWriter{n: 16 << 10}
	opts = append(opts, chromedp.CombinedOutput(out))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(alloc)
	cancel := func() { cancelB(); cancelAlloc() }
	sctx, stop := context.WithTimeout(ctx, m.cfg.StartTimeout)
	defer stop()
	// The first Run starts the browser; its lifetime is bctx's, not sctx's:
	// only the wait is bounded (a start that hangs is abandoned below).
	errc := make(chan error, 1)
	go func() { errc <- chromedp.Do(bctx) }()
	var err error
	select {
	case err = <-errc:
	case <-sctx.Done():
		err = fmt.Errorf("the browser did not start within %v: %w", m.cfg.StartTimeout, sctx.Err())
	}
	if err != nil {
		cancel()
		msg := strings.TrimSpace(out.String())
		if msg != "" && !strings.Contains(err.Error(), msg) {
			return fmt.Errorf("start Chromium: %w; its output: %s", err, lastLines(msg, 8))
		}
		return fmt.Errorf("start Chromium: %w", err)
	}
	sess, err := newSession(bctx, m.cfg)
	if err != nil {
		cancel()
		return err
	}
	m.mu.Lock()
	m.alloc, m.cancel, m.bctx, m.proxy, m.sess, m.started = alloc, cancel, bctx, proxy, sess, time.Now()
	m.mu.Unlock()
	m.cfg.Logger.Info("browser started", "start_ms", time.Since(t0).Milliseconds(), "proxy", proxy != "",
		"profile", m.cfg.ProfileDir)
	return nil
}

// stop ends the browser (gracefully: Chromium flushes cookies to the profile).
func (m *Manager) stop() {
	m.mu.Lock()
	cancel, bctx, sess := m.cancel, m.bctx, m.sess
	m.alloc, m.cancel, m.bctx, m.sess = nil, nil, nil, nil
	m.mu.Unlock()
	if sess != nil {
		sess.close()
	}
	if bctx != nil && bctx.Err() == nil {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan struct{})
		go func() { _ = chromedp.Cancel(bctx); close(done) }()
		select {
		case <-done:
		case <-cctx.Done():
		}
		ccancel()
	}
	if cancel != nil {
		cancel()
	}
}

// Close stops the browser and forgets the session. It waits for a running
// command up to ctx.
func (m *Manager) Close(ctx context.Context) error {
	if err := m.acquire(ctx); err != nil {
		return err
	}
	defer m.release()
	m.stop()
	m.mu.Lock()
	m.sandbox = ""
	m.mu.Unlock()
	return nil
}

// bind records the sandbox the session belongs to.
func (m *Manager) bind(sandboxID string) {
	if sandboxID == "" {
		return
	}
	m.mu.Lock()
	m.sandbox = sandboxID
	m.mu.Unlock()
}

// Session returns the sandbox id the browser session is bound to.
func (m *Manager) Session() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sandbox
}

// limitWriter keeps the first n bytes of Chromium's output (for the error
// of a failed start).
type limitWriter struct {
	mu sync.Mutex
	b  strings.Builder
	n  int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
