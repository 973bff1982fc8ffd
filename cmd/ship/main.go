// Command ship is the in-sandbox runtime: the HTTP API (port 8123) that runs
// Python in a Jupyter kernel, shell commands, file operations and a terminal
// for the sandbox user (uid 1000) inside one container.
//
// Every setting is a flag and an environment variable (`ship -h` lists them;
// the flag wins over the variable). The main ones:
//
//	SHIP_HOST / SHIP_PORT        listen address (0.0.0.0:8123)
//	SHIP_TOKEN                   bearer token for every route but /health
//	SHIP_WORKSPACE               workspace directory (/workspace)
//	SHIP_SKILLS_DIR              built-in skills copied to <workspace>/skills/<name> (/app/skills)
//	SHIP_UID / SHIP_GID          user code runs as these when Ship runs as root (1000/1000)
//	SHIP_EXEC_TIMEOUT            default python/shell timeout (30s; a bare number is seconds)
//	SHIP_MAX_EXEC_TIMEOUT        bound on any requested timeout (1h)
//	SHIP_KERNEL_START_TIMEOUT    kernel start bound (60s)
//	SHIP_KERNEL_QUEUE_TIMEOUT    wait for the running cell before giving up (60s)
//	SHIP_KERNEL_INTERRUPT_GRACE  after interrupting a timed-out cell, restart past this (5s)
//	SHIP_MAX_OUTPUT_BYTES        captured output per stream / per cell (1 MiB)
//	SHIP_MAX_RESULT_BYTES        all output of one python execution together (4 MiB)
//	SHIP_RECLAIM                 kill stray processes when out of process slots: auto | on | off
//	SHIP_PROCESS_OUTPUT_BYTES    ring buffer per stream of a background process (64 KiB)
//	SHIP_MAX_BACKGROUND          running background processes (64)
//	SHIP_KEEP_FINISHED           finished background processes kept readable (16)
//	SHIP_MAX_TERMINALS           concurrent terminals (16)
//	SHIP_MAX_BODY_BYTES          JSON body cap (64 MiB)
//	SHIP_MAX_UPLOAD_BYTES        upload cap (1 GiB)
//	SHIP_MAX_READ_BYTES          /fs/read_file cap (32 MiB; larger files: /fs/download)
//	SHIP_SHUTDOWN_TIMEOUT        graceful shutdown bound (10s)
//	SHIP_LOG_LEVEL / SHIP_LOG_FORMAT  info; auto (json, text on a terminal) | json | text
//	SHIP_KERNEL_CMD              kernel argv ({connection_file} substituted; default: kernel.Launcher)
//	SHIP_IMAGE, SHIP_IMAGE_DIGEST, GIT_SHA  reported by /meta
//
// Profile environment: BAY_PROFILE_ENV ("K=V:K2=V2", upstream) and
// BAY_PROFILE_ENV_JSON ({"K":"V"}, values may contain ':') are written to
// <workspace>/.bay_env.sh and given to user code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shipyard/shipyard/internal/logctx"
	"github.com/shipyard/shipyard/internal/ship/boot"
	"github.com/shipyard/shipyard/internal/ship/cgroup"
	"github.com/shipyard/shipyard/internal/ship/files"
	"github.com/shipyard/shipyard/internal/ship/kernel"
	"github.com/shipyard/shipyard/internal/ship/process"
	"github.com/shipyard/shipyard/internal/ship/server"
	"github.com/shipyard/shipyard/internal/ship/sweep"
	"github.com/shipyard/shipyard/internal/ship/term"
	"github.com/shipyard/shipyard/internal/ship/workspace"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], lookupEnv)
	if err != nil {
		if errors.Is(err, errHelp()) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ship:", err)
		os.Exit(2)
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("ship stopped", "err", err)
		os.Exit(1)
	}
}

func newLogger(cfg config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, opts)
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text" // a person at a terminal
		}
	}
	if format == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	return slog.New(logctx.Handler{Handler: h}).With("service", "ship")
}

// privileges decides how user code is run. As root, Ship drops to uid/gid for
// every child (and gives files it creates to them); it needs CAP_SETUID,
// CAP_SETGID and CAP_CHOWN for that and refuses to run user code as root
// otherwise. As any other user (the image default, and Bay's --user 1000:1000
// with all capabilities dropped) children simply run as that user.
func privileges(cfg config) (*syscall.Credential, *boot.Owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil, nil
	}
	if err := haveCaps(0, 6, 7); err != nil { // CAP_CHOWN, CAP_SETGID, CAP_SETUID
		return nil, nil, fmt.Errorf("running as root without the capabilities to drop privileges (%w); run the container with --user %d:%d", err, cfg.UID, cfg.GID)
	}
	return &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), Groups: []uint32{}},
		&boot.Owner{UID: cfg.UID, GID: cfg.GID}, nil
}

func nonDumpable() error {
	const prSetDumpable = 4
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", errno)
	}
	return nil
}

func haveCaps(bits ...uint) error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			var eff uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &eff); err != nil {
				return fmt.Errorf("parse CapEff: %w", err)
			}
			for _, bit := range bits {
				if eff&(1<<bit) == 0 {
					return fmt.Errorf("capability %d missing", bit)
				}
			}
			return nil
		}
	}
	return errors.New("no CapEff in /proc/self/status")
}

func run(ctx context.Context, cfg config, log *slog.Logger) error {
	start := time.Now()
	cred, owner, err := privileges(cfg)
	if err != nil {
		return err
	}
	// User code runs as the same uid when Ship is started as 1000: make Ship
	// non-dumpable so that code cannot ptrace it or read its memory (other
	// requests in flight). Children get the flag reset by execve. The token is
	// still in the container's environment (PID 1's); it only guards this
	// sandbox's own Ship against other network peers, so its user knowing it
	// grants nothing new.
	if err := nonDumpable(); err != nil {
		log.Warn("could not make ship non-dumpable", "err", err)
	}
	if os.Getpid() == 1 {
		log.Warn("ship runs as PID 1: orphaned processes will not be reaped; use an init (the image runs tini)")
	}
	// Threads count against the pids limit too, and the Go runtime dies when
	// it cannot create one: park a few now, while slots are free, so that
	// Ship keeps working when user code has taken every slot.
	reserveThreads(16)
	if err := boot.PrepareWorkspace(cfg.Workspace, owner); err != nil {
		return err
	}
	root, err := workspace.New(cfg.Workspace)
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	profile, present, dropped, err := boot.ParseProfileEnv(cfg.ProfileEnv, cfg.ProfileEnvSet, cfg.ProfileEnvJSON, cfg.ProfileEnvJSONSet)
	if err != nil {
		log.Error("profile environment", "err", err)
	}
	if len(dropped) > 0 {
		log.Warn("profile environment entries dropped (invalid names or NUL in values)", "names", dropped)
	}
	envFile := filepath.Join(root.Dir(), boot.EnvFileName)
	if present {
		if _, err := boot.WriteEnvFile(root.Dir(), profile, owner); err != nil {
			log.Error("writing profile environment failed", "err", err)
		}
	}
	childEnv := boot.ChildEnv(os.Environ(), root.Dir(), cfg.User, profile)

	var fileOwner *files.Owner
	if owner != nil {
		fileOwner = &files.Owner{UID: owner.UID, GID: owner.GID}
	}
	// When user code has taken every process slot, a failed spawn kills the
	// processes Ship does not track as live and retries once. The sweeper
	// needs the runner, terminal and kernel, which need it: they are
	// assigned below, before anything can spawn.
	var (
		runner   *process.Runner
		terminal *term.Handler
		kern     *kernel.Manager
		reclaim  func(context.Context) (int, error)
	)
	if reclaimOn(cfg.Reclaim) {
		sw := sweep.New("/proc", func() sweep.Keep {
			return sweep.Keep{Groups: append(runner.Groups(), kern.Pid()), Sessions: terminal.Sessions()}
		}, log)
		reclaim = sw.Sweep
	}
	runner = process.New(process.Config{
		EnvFile: envFile, Env: childEnv, Credential: cred,
		MaxOutputBytes: cfg.MaxOutputBytes, RingBytes: cfg.ProcessOutputBytes,
		MaxRunning: cfg.MaxBackground, KeepFinished: cfg.KeepFinished, Logger: log, Reclaim: reclaim,
		Crowded: func() bool { return sweep.Crowded("/sys/fs/cgroup") },
		Memory:  cgroup.Default(),
	})
	terminal = term.New(term.Config{Dir: root.Dir(), EnvFile: envFile, Env: childEnv, Credential: cred,
		MaxSessions: cfg.MaxTerminals, AnyOrigin: cfg.Token != "", Logger: log, Reclaim: reclaim})
	kcfg := kernel.Config{
		Argv: strings.Fields(cfg.KernelCmd), Dir: root.Dir(), Env: childEnv,
		InitCode:     kernel.DefaultInitCode + boot.EnvInitCode(envFile),
		StartTimeout: cfg.KernelStartTimeout, QueueTimeout: cfg.KernelQueueTimeout,
		MaxOutputBytes: cfg.MaxOutputBytes, MaxResultBytes: cfg.MaxResultBytes, DefaultTimeout: cfg.DefaultTimeout,
		InterruptGrace: cfg.KernelInterruptGrace, Logger: log, Reclaim: reclaim,
		Memory: cgroup.Default(),
	}
	if cred != nil {
		kcfg.UID, kcfg.GID = cred.Uid, cred.Gid
	}
	kern = kernel.NewManager(kcfg)
	defer kern.Close()

	// The kernel starts first (its start is the longest part of a sandbox's
	// first python call); the skills are copied and the server set up
	// meanwhile, before Ship accepts any request.
	started := kern.StartBackground()
	if cfg.KernelCmd == "" && boot.OnFUSE(kernel.StartFilesPath) {
		// Read what the kernel's start will read, from the image's list of
		// it, while the kernel starts: it then finds most of it in memory
		// instead of waiting on the container's storage driver
		// (fuse-overlayfs) for each file in turn. From the moment the
		// kernel's process runs: its spawn (the connection file, the exec)
		// waits on the same storage driver and must not queue behind this.
		go func() {
			waitSpawned(kern, started, time.Second)
			began := time.Now()
			st, err := boot.Prefetch(kernel.StartFilesPath)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				log.Warn("reading the kernel's start files ahead", "err", err)
			}
			log.Info("kernel start files read ahead", "files", st.Files, "dirs", st.Dirs, "skipped", st.Skipped,
				"bytes", st.Bytes, "ms", time.Since(began).Milliseconds())
		}()
	}
	if names, err := boot.CopySkills(cfg.SkillsDir, filepath.Join(root.Dir(), "skills"), owner); err != nil {
		log.Error("copying built-in skills failed", "err", err)
	} else if len(names) > 0 {
		log.Info("built-in skills copied", "skills", names)
	}

	srv := server.New(server.Options{
		Workspace: root, WorkspaceName: cfg.Workspace, Files: files.New(files.Config{Root: root, Owner: fileOwner, MaxReadBytes: cfg.MaxReadBytes}),
		Processes: runner, Kernel: kern, Terminal: terminal, Logger: log, Token: cfg.Token,
		Pressure:     func() sweep.Stats { return sweep.Pressure("/proc", "/sys/fs/cgroup") },
		MaxBodyBytes: cfg.MaxBodyBytes, MaxUploadBytes: cfg.MaxUploadBytes,
		DefaultTimeout: cfg.DefaultTimeout, MaxTimeout: cfg.MaxTimeout,
		Build:  server.Build{Image: cfg.Image, ImageDigest: cfg.ImageDigest, GitSHA: cfg.GitSHA},
		Skills: server.LoadSkills(cfg.SkillsDir),
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, cfg.Port))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("ship listening", "addr", ln.Addr().String(), "workspace", root.Dir(), "auth", cfg.Token != "",
		"uid", os.Geteuid(), "drop_to_uid", cred != nil, "reclaim", reclaim != nil)

	// Ship is ready now: /health answers 200 and shell, files and terminal
	// work. The kernel starts meanwhile; python calls wait for it within
	// their timeout, and a failed start is reported by them (and /health)
	// and retried by the next python call.
	log.Info("ready; kernel starting", "startup_ms", time.Since(start).Milliseconds())
	warm := make(chan struct{})
	go func() {
		defer close(warm)
		select {
		case <-started:
			if st := kern.State(); st.State == kernel.StateReady {
				log.Info("kernel warm", "startup_ms", time.Since(start).Milliseconds(), "kernel_pid", kern.Pid())
			}
		case <-ctx.Done():
		}
	}()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	terminal.Close() // hijacked connections are not covered by Shutdown
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if err := runner.Shutdown(sctx); err != nil {
		log.Warn("background processes shutdown", "err", err)
	}
	<-warm
	if err := kern.Shutdown(sctx); err != nil && !errors.Is(err, kernel.ErrNotStarted) {
		log.Warn("kernel shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

// reclaimOn decides SHIP_RECLAIM. "auto" is on only when Ship runs under the
// container's init (its parent is PID 1) or is PID 1 itself: a sweep kills
// every process of the PID namespace that Ship does not track, which on a
// developer's machine would be the whole session.
func reclaimOn(setting string) bool {
	switch setting {
	case "on":
		return true
	case "off":
		return false
	}
	return os.Getpid() == 1 || os.Getppid() == 1
}

// reserveThreads makes the Go runtime start n OS threads and keep them idle
// (the runtime never ends an idle thread), for use when no new one can be
// created.
func reserveThreads(n int) {
	var ready, release sync.WaitGroup
	ready.Add(n)
	release.Add(1)
	var done sync.WaitGroup
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			ready.Done()
			release.Wait()
			runtime.UnlockOSThread()
		}()
	}
	ready.Wait()
	release.Done()
	done.Wait()
}

// waitSpawned returns once the kernel's process runs, its start ended (started
// is closed), or limit passed.
func waitSpawned(kern *kernel.Manager, started <-chan struct{}, limit time.Duration) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(limit)
	for kern.Pid() == 0 {
		select {
		case <-started:
			return
		case <-timeout:
			return
		case <-tick.C:
		}
	}
}
