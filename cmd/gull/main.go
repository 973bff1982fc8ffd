// Command gull is the browser runtime of a sandbox: the HTTP API (port 8115)
// that runs browser commands (open, snapshot -i, click @e3, ...) against one
// headless Chromium driven over the DevTools protocol, as uid 1000 beside the
// Ship container, sharing its /workspace.
//
// Settings (environment):
//
//	GULL_HOST / GULL_PORT      listen address (0.0.0.0:8115; the port falls back to SHIP_PORT,
//	                           which Bay sets to the profile's runtime_port)
//	GULL_TOKEN                 bearer token for every route but /health (falls
//	                           back to SHIP_TOKEN, which Bay sets on a session's containers)
//	GULL_WORKSPACE             workspace directory (/workspace)
//	GULL_PROFILE_DIR           browser profile (<workspace>/.browser/profile)
//	GULL_CHROMIUM              Chromium binary (chromium-headless-shell, then chromium, on PATH)
//	GULL_CHROMIUM_SANDBOX      on: use Chromium's own sandbox (needs user namespaces, which a
//	                           locked-down container does not give); off (default): --no-sandbox,
//	                           allowed only as a non-root user (docs/security.md)
//	GULL_EXEC_TIMEOUT          default command timeout (30s)
//	GULL_MAX_TIMEOUT           bound on a requested timeout (600s)
//	GULL_LOG_LEVEL             debug | info (default) | warn | error
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shipyard/shipyard/internal/gull/browser"
	"github.com/shipyard/shipyard/internal/gull/server"
	"github.com/shipyard/shipyard/internal/logctx"
)

func main() {
	var level slog.Level
	_ = level.UnmarshalText([]byte(env("GULL_LOG_LEVEL", "info")))
	log := slog.New(logctx.Handler{Handler: slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})}).With("service", "gull")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("gull stopped", "err", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v, ok := os.LookupEnv(k); ok && v != "" {
		return v
	}
	return def
}

func duration(k, def string) (time.Duration, error) {
	v := env(k, def)
	if d, err := time.ParseDuration(v); err == nil {
		return d, nil
	}
	var secs float64
	if _, err := fmt.Sscanf(v, "%g", &secs); err != nil || secs <= 0 {
		return 0, fmt.Errorf("%s=%q is not a duration", k, v)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

func run(ctx context.Context, log *slog.Logger) error {
	sandbox := env("GULL_CHROMIUM_SANDBOX", "off") == "on"
	if os.Geteuid() == 0 && !sandbox {
		return errors.New("gull runs Chromium without its own sandbox and therefore refuses to run as root: start the container with --user 1000:1000 (the image's default)")
	}
	token := env("GULL_TOKEN", os.Getenv("SHIP_TOKEN"))
	// Chromium and the pages it runs must not inherit the token.
	_ = os.Unsetenv("GULL_TOKEN")
	_ = os.Unsetenv("SHIP_TOKEN")
	// Page code runs as the same uid: keep it from reading this process.
	const prSetDumpable = 4
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		log.Warn("could not make gull non-dumpable", "err", errno)
	}
	def, err := duration("GULL_EXEC_TIMEOUT", "30s")
	if err != nil {
		return err
	}
	maxT, err := duration("GULL_MAX_TIMEOUT", "600s")
	if err != nil {
		return err
	}
	exe := env("GULL_CHROMIUM", browser.ExecPath("chromium-headless-shell", "chromium", "chromium-browser"))
	ws := env("GULL_WORKSPACE", "/workspace")
	mgr := browser.New(browser.Config{ExecPath: exe, Workspace: ws, ProfileDir: os.Getenv("GULL_PROFILE_DIR"),
		NoSandbox: !sandbox, Logger: log})
	srv := server.New(server.Options{Browser: mgr, Workspace: ws, Token: token, DefaultTimeout: def, MaxTimeout: maxT, Logger: log})
	// Bay tells every runtime container its port as SHIP_PORT (the profile's
	// runtime_port); GULL_PORT wins when set.
	ln, err := net.Listen("tcp", net.JoinHostPort(env("GULL_HOST", "0.0.0.0"), env("GULL_PORT", env("SHIP_PORT", "8115"))))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("gull listening", "addr", ln.Addr().String(), "chromium", exe, "workspace", ws, "uid", os.Geteuid(),
		"chromium_sandbox", sandbox, "auth", token != "")
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	if err := mgr.Close(sctx); err != nil {
		log.Warn("browser shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}
