// Package kernel drives one Jupyter kernel (Debian's python3-ipykernel) over the
// Jupyter wire protocol (ZeroMQ, HMAC-SHA256 signed messages).
//
// CONTRACT (fixed so that the Ship server can be written against it):
//
//	m := kernel.NewManager(kernel.Config{...})
//	err := m.Start(ctx)                    // launches the kernel, waits until it answers; warm
//	res, err := m.Execute(ctx, kernel.Request{Code: "1+1", Timeout: 30 * time.Second})
//	st := m.Status()                       // "not_started" | "alive" | "dead"
//	err = m.Restart(ctx)                   // state lost; re-runs init code
//	err = m.Shutdown(ctx)                  // stops the kernel process; Status → "not_started"
//	err = m.Close()                        // Shutdown + release sockets
package kernel

import "time"

// Config configures the kernel process.
type Config struct {
	// Argv launches the kernel; "{connection_file}" is replaced by the path of the
	// connection file. Default: python3 -m ipykernel_launcher -f {connection_file}.
	Argv []string
	// Dir is the kernel's working directory (/workspace in the image).
	Dir string
	// Env is the full environment of the kernel process (nil = inherit).
	Env []string
	// UID/GID to run the kernel as; 0/0 means "as the current user" (tests).
	UID, GID uint32
	// InitCode runs silently after every (re)start, before the kernel is reported
	// ready (profile env into os.environ, matplotlib defaults).
	InitCode string
	// StartTimeout bounds a start (default 30s); QueueTimeout bounds how long an
	// Execute waits for the running execution to finish (default 60s).
	StartTimeout, QueueTimeout time.Duration
	// MaxOutputBytes caps collected text (default 1 MiB); beyond it Result.Truncated.
	MaxOutputBytes int
}

// Request is one cell to run.
type Request struct {
	Code    string
	Timeout time.Duration // total wall time for the cell; 0 = Config default 30s
	Silent  bool
}

// Result is the outcome of one Execute. Shapes map 1:1 to Ship's /ipython/exec.
type Result struct {
	Success        bool
	ExecutionCount *int
	Text           string              // stream stdout+stderr, execute_result/display text/plain, joined then TrimSpace'd
	Images         []map[string]string // [{"image/png": base64}] in output order
	// Data holds every other MIME bundle seen in display_data/execute_result,
	// e.g. {"text/html": [...], "image/svg+xml": [...]}, additive to Text/Images.
	Data      map[string][]string
	Error     string // traceback joined with "\n" (ANSI kept), or timeout/restart message; "" on success
	TimedOut  bool   // the kernel was interrupted after Timeout; Text holds output produced so far
	Restarted bool   // the kernel had died and was restarted before/while running; state was lost
	Truncated bool
}
