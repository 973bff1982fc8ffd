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
//
// Additions: m.Pid(); Result.Notice; m.StartBackground() and m.State()
// (start-up without blocking: "starting" | "ready" | "failed" with the reason |
// "not_started" | "dead"), ErrStartFailed; Config.DefaultTimeout, InterruptGrace,
// HeartbeatTimeout, RuntimeDir, Logger; DefaultInitCode, EnvInitCode;
// ErrBusy, ErrClosed, ErrNotStarted; Status* constants.
//
// Execute runs one cell at a time (others queue up to Config.QueueTimeout);
// Start is optional, Execute starts the kernel on demand. While the kernel is
// starting (StartBackground at boot, or on demand) Execute waits for it within
// Request.Timeout, which bounds the wait and the cell together; a timeout
// during the start gives TimedOut (the code did not run), a failed start an
// error wrapping ErrStartFailed, and the next Execute starts it again. Kernel trouble is
// reported in the Result, not as an error: a timed-out cell is interrupted
// (SIGINT to the kernel's process group) and gives TimedOut with the output
// so far; a kernel that died during the cell gives Success=false and an Error
// saying that state was lost, and the next Execute restarts it and sets
// Restarted and Notice. Errors are returned only when no result could be had:
// the queue wait timed out (ErrBusy), ctx was canceled, the manager is closed
// (ErrClosed), or the kernel could not be started; the Result then carries
// upstream's "Execution error: ..." message.
package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

// Status values, as upstream reports them.
const (
	StatusNotStarted = "not_started"
	StatusAlive      = "alive"
	StatusDead       = "dead"
)

// DefaultArgv launches Debian's ipykernel through Launcher (the same start as
// python3 -m ipykernel_launcher -f {connection_file}, with less work: no
// debugger protocol, deferred modules, the start's code from one file).
var DefaultArgv = []string{"python3", "-c", Launcher, "-f", "{connection_file}"}

// DefaultInitCode makes plots work out of the box: matplotlib draws with the
// inline backend, so `plt.plot(...); plt.show()` (or a figure left open at the
// end of a cell) yields an image/png output. ipykernel only defaults
// MPLBACKEND to inline when the variable is unset; an image or profile that
// exports MPLBACKEND=Agg (or a non-GUI default) would silently produce no
// image. It also silences IPython's "Output cache limit (currently 1000
// entries) hit" warning, which otherwise lands in the text of every 200th
// cell of a long session. It makes print() output leave the kernel within
// 10 ms instead of on ipykernel's 200 ms flush timer, so streamed executions
// deliver lines as they are printed (a busy printer sends at most 100
// messages a second per stream). matplotlib is not imported, so it costs
// ~nothing at start; it leaves no names behind in the user namespace. Append
// your own code (e.g. EnvInitCode of the profile environment) to it.
const DefaultInitCode = `def _shipyard_init():
    import os, sys, warnings
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "flush_interval"):
            stream.flush_interval = 0.01
    backend = os.environ.get("MPLBACKEND", "")
    if backend.lower() in ("", "agg", "template", "pdf", "svg", "ps", "cairo"):
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    warnings.filterwarnings("ignore", message="Output cache limit", category=UserWarning)
_shipyard_init()
del _shipyard_init
`

// EnvInitCode returns init code that sets env in the kernel's os.environ
// (upstream exports the sandbox profile, .bay_env.sh, this way). Append it to
// DefaultInitCode. Variables are set when the kernel starts, so they reach
// the kernel's later subprocesses too.
func EnvInitCode(env map[string]string) string {
	if len(env) == 0 {
		return ""
	}
	// A JSON object of strings is a valid Python dict literal.
	b, err := json.Marshal(env)
	if err != nil {
		panic(err) // a map[string]string always marshals
	}
	return "__import__('os').environ.update(" + string(b) + ")\n"
}

// Errors returned by Manager methods.
var (
	ErrClosed     = errors.New("kernel: manager closed")
	ErrBusy       = errors.New("kernel: timed out waiting for the running execution")
	ErrNotStarted = errors.New("kernel: not started")
)

// Config configures the kernel process.
type Config struct {
	// Argv launches the kernel; "{connection_file}" is replaced by the path of the
	// connection file. Default: DefaultArgv.
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
	// MaxOutputBytes caps each output kind of one execution (default 1 MiB):
	// the text, the error and each rich MIME entry. MaxResultBytes caps text,
	// images and rich entries together (default 4 MiB; raised to
	// MaxOutputBytes if lower). Sizes are JSON-encoded bytes; text is cut with
	// a visible marker, a too-large image or other encoded value is dropped
	// with a note in the text, and Result.Truncated is set. A message larger
	// than MaxMessageBytes is not even received: the result says it was
	// dropped.
	MaxOutputBytes, MaxResultBytes int

	// DefaultTimeout is the cell timeout when Request.Timeout is 0 (default 30s).
	DefaultTimeout time.Duration
	// InterruptGrace bounds the wait for a timed-out cell to stop after the
	// interrupt (default 5s); past it the kernel is restarted.
	InterruptGrace time.Duration
	// HeartbeatTimeout: a kernel whose heartbeat socket does not answer for
	// this long is killed and reported dead (default 15s; negative disables).
	HeartbeatTimeout time.Duration
	// RuntimeDir holds the connection files (default os.TempDir()). Each
	// kernel gets a private 0700 directory in it, owned by UID/GID.
	RuntimeDir string
	// Logger receives the manager's logs (default slog.Default()).
	Logger *slog.Logger
	// Reclaim, when set, is called once when the kernel cannot be started
	// for lack of process slots (EAGAIN); it kills stray processes and
	// returns how many. The start is retried once and Result.Notice says so.
	Reclaim func(ctx context.Context) (int, error)
	// Memory, when set, tells a kernel killed by the out-of-memory killer
	// from one killed otherwise, so the caller is told which (see
	// internal/ship/cgroup).
	Memory Memory
}

// Memory is the container's memory accounting; ok is false when unknown.
type Memory interface {
	OOMKills() (n int64, ok bool)
	Limit() (bytes int64, ok bool)
}

// Request is one cell to run.
type Request struct {
	Code    string
	Timeout time.Duration // total wall time for the cell; 0 = Config default 30s
	Silent  bool
	// OnOutput, when set, receives each output of the cell as it arrives
	// (stream text, display data, the exception), in order, on Execute's
	// goroutine, before Execute returns; never after it. The Result still
	// holds everything (bounded as usual).
	OnOutput func(Output)
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
	// Notice explains Restarted (why the kernel was restarted, that state was
	// lost); it is not an error: the cell itself may have succeeded.
	Notice string
}
