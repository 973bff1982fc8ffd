// Package process runs shell commands for the sandbox user: foreground commands
// with a timeout that kills the whole process group but keeps the output produced
// so far, and background commands with durable, bounded handles (status, exit
// code, a ring buffer of output) that can be listed, read, waited on and killed.
package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/ship/cgroup"
	"github.com/shipyard/shipyard/internal/ship/jsontext"
)

// Errors callers map to responses.
var (
	ErrInvalidEnv = errors.New("invalid env")
	ErrNotFound   = errors.New("process not found")
	ErrTooMany    = errors.New("too many background processes running")
	ErrEmpty      = errors.New("empty command")
	ErrSignal     = errors.New("unknown signal")
)

// Status of a background process.
const (
	StatusRunning   = "running"
	StatusCompleted = "completed" // exited 0
	StatusFailed    = "failed"    // exited non-zero or by a signal it was not sent by Kill
	StatusKilled    = "killed"    // stopped through Kill or Shutdown
)

// Config of a Runner. Zero values take the defaults noted.
type Config struct {
	Shell   string   // default /bin/bash
	EnvFile string   // sourced before shell commands when readable ("" = none)
	Env     []string // base environment of every child
	// Credential, when non-nil, is the uid/gid children run as (Ship runs as
	// root); nil runs them as Ship's own user (Ship already runs as uid 1000).
	Credential *syscall.Credential
	// MaxOutputBytes caps each of stdout/stderr of a foreground command
	// (default 1 MiB); beyond it the output is cut and Truncated set.
	MaxOutputBytes int
	// RingBytes is the output kept per stream of a background process (default 64 KiB).
	RingBytes int
	// LogBytes is the merged stdout+stderr output of a background process kept
	// for reads from an offset (ReadOutput; default 1 MiB). It grows with the
	// output, so a quiet process costs little.
	LogBytes int
	// MaxRunning caps running background processes (default 64); KeepFinished is
	// how many finished ones stay readable (default 16), oldest evicted first.
	MaxRunning, KeepFinished int
	// WaitDelay bounds waiting for pipes held open by leftover children after the
	// command exits or is killed (default 500ms).
	WaitDelay time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
	// Reclaim, when set, is called once when a command cannot be started for
	// lack of process slots (EAGAIN); it kills stray processes and returns
	// how many. The start is then retried once.
	Reclaim func(ctx context.Context) (int, error)
	// Crowded, when set with Reclaim, reports that almost no process slots
	// are left: Reclaim then runs before the start, since the command would
	// start and then fail to fork inside.
	Crowded func() bool
	// Memory, when set, lets a foreground command killed by the
	// out-of-memory killer say so in its Notice (see internal/ship/cgroup).
	Memory Memory
}

// Memory is the container's memory accounting; ok is false when unknown.
type Memory interface {
	OOMKills() (n int64, ok bool)
	Limit() (bytes int64, ok bool)
}

// Runner runs commands. Create with New; call Shutdown to stop background work.
type Runner struct {
	cfg Config

	mu       sync.Mutex
	procs    map[string]*Proc
	finished []string         // ids of finished procs, oldest first
	fg       map[int]struct{} // process groups of running foreground commands
	starting int              // background starts in progress (slots reserved)
	wg       sync.WaitGroup
	closed   bool

	startCmd func(*exec.Cmd) error // (*exec.Cmd).Start; tests inject failures
}

// New returns a Runner with defaults filled in.
func New(cfg Config) *Runner {
	if cfg.Shell == "" {
		cfg.Shell = "/bin/bash"
	}
	if cfg.MaxOutputBytes <= 0 {
		cfg.MaxOutputBytes = 1 << 20
	}
	if cfg.RingBytes <= 0 {
		cfg.RingBytes = 64 << 10
	}
	if cfg.LogBytes <= 0 {
		cfg.LogBytes = 1 << 20
	}
	if cfg.MaxRunning <= 0 {
		cfg.MaxRunning = 64
	}
	if cfg.KeepFinished <= 0 {
		cfg.KeepFinished = 16
	}
	if cfg.WaitDelay <= 0 {
		cfg.WaitDelay = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runner{cfg: cfg, procs: make(map[string]*Proc), fg: make(map[int]struct{}), startCmd: (*exec.Cmd).Start}
}

// Spec is one command.
type Spec struct {
	Command string
	Dir     string            // absolute working directory (already validated)
	Env     map[string]string // extra variables (validate with ValidateEnv)
	Timeout time.Duration     // foreground only; 0 = none
	NoShell bool              // exec the split words instead of bash -lc
	// OnOutput, when set, receives a foreground command's output as it is
	// read from its pipes (stream "stdout" or "stderr"), whole, before any cap
	// applies to the Result. p is valid only during the call; calls for the two
	// streams may be concurrent. A slow OnOutput slows the command's writes.
	OnOutput func(stream string, p []byte)
}

// outputFunc passes writes to a callback.
type outputFunc struct {
	stream string
	fn     func(string, []byte)
}

func (o outputFunc) Write(p []byte) (int, error) {
	o.fn(o.stream, p)
	return len(p), nil
}

// Result of a foreground command.
type Result struct {
	ReturnCode int // exit code; -1 on timeout or start failure; -N when killed by signal N
	Stdout     string
	Stderr     string
	Pid        int
	TimedOut   bool
	Truncated  bool
	// Notice says that stray processes were killed to free process slots
	// before the command could start.
	Notice string
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateEnv checks that names are identifiers and values carry no NUL.
func ValidateEnv(env map[string]string) error {
	for k, v := range env {
		if !envName.MatchString(k) {
			return fmt.Errorf("%w: name %q is not a valid identifier", ErrInvalidEnv, k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%w: value of %s contains a NUL byte", ErrInvalidEnv, k)
		}
	}
	return nil
}

// command builds the exec.Cmd for spec (not started).
func (r *Runner) command(spec Spec) (*exec.Cmd, error) {
	if err := ValidateEnv(spec.Env); err != nil {
		return nil, err
	}
	var argv []string
	if spec.NoShell {
		words, err := Split(spec.Command)
		if err != nil {
			return nil, fmt.Errorf("split command: %w", err)
		}
		if len(words) == 0 {
			return nil, ErrEmpty
		}
		argv = words
	} else {
		if strings.TrimSpace(spec.Command) == "" {
			return nil, ErrEmpty
		}
		var b strings.Builder
		if r.cfg.EnvFile != "" {
			q := Quote(r.cfg.EnvFile)
			fmt.Fprintf(&b, "[ -r %s ] && . %s\n", q, q)
		}
		if spec.Dir != "" {
			// cd in the script (as upstream): a missing cwd fails like a shell would.
			fmt.Fprintf(&b, "cd -- %s || exit 1\n", Quote(spec.Dir))
		}
		b.WriteString(spec.Command)
		argv = []string{r.cfg.Shell, "-lc", b.String()}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if spec.NoShell {
		cmd.Dir = spec.Dir
	}
	env := make([]string, 0, len(r.cfg.Env)+len(spec.Env))
	env = append(env, r.cfg.Env...)
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+spec.Env[k])
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: r.cfg.Credential}
	cmd.WaitDelay = r.cfg.WaitDelay
	return cmd, nil
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) error {
	if pid <= 0 {
		return nil
	}
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", pid, err)
	}
	return nil
}

// Run runs a foreground command to completion or timeout. Output produced
// before a timeout is kept. An error is returned only when the command could
// not be built or started (the Result then has ReturnCode -1).
func (r *Runner) Run(ctx context.Context, spec Spec) (Result, error) {
	res := Result{ReturnCode: -1}
	stdout := &capped{max: r.cfg.MaxOutputBytes}
	stderr := &capped{max: r.cfg.MaxOutputBytes}
	var outW, errW io.Writer = stdout, stderr
	if spec.OnOutput != nil {
		outW = io.MultiWriter(stdout, outputFunc{"stdout", spec.OnOutput})
		errW = io.MultiWriter(stderr, outputFunc{"stderr", spec.OnOutput})
	}
	var oomBase int64
	var oomOK bool
	if r.cfg.Memory != nil {
		oomBase, oomOK = r.cfg.Memory.OOMKills()
	}
	cmd, notice, err := r.start(ctx, spec, outW, errW)
	res.Notice = notice
	if err != nil {
		return res, err
	}
	res.Pid = cmd.Process.Pid
	r.mu.Lock()
	r.fg[res.Pid] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.fg, res.Pid)
		r.mu.Unlock()
	}()

	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var timer <-chan time.Time
	if spec.Timeout > 0 {
		t := time.NewTimer(spec.Timeout)
		defer t.Stop()
		timer = t.C
	}
	var werr error
	select {
	case werr = <-waitErr:
	case <-timer:
		res.TimedOut = true
		if err := killGroup(res.Pid); err != nil {
			r.cfg.Logger.WarnContext(ctx, "kill on timeout", "err", err)
		}
		werr = <-waitErr
	case <-ctx.Done():
		_ = killGroup(res.Pid)
		<-waitErr
		return res, fmt.Errorf("command cancelled: %w", ctx.Err())
	}
	out, o1 := stdout.result()
	errb, o2 := stderr.result()
	res.Stdout, o1 = r.bounded(out, o1)
	res.Stderr, o2 = r.bounded(errb, o2)
	res.Truncated = o1 > 0 || o2 > 0
	if res.TimedOut {
		res.ReturnCode = -1
		return res, nil
	}
	res.ReturnCode = exitCode(cmd.ProcessState, werr)
	// SIGKILLed: the shell's child (bash says 137) or the shell itself.
	if killed := res.ReturnCode == 128+int(syscall.SIGKILL) || res.ReturnCode == -int(syscall.SIGKILL); killed && oomOK {
		if n, ok := r.cfg.Memory.OOMKills(); ok && n > oomBase {
			res.Notice = joinNotice(res.Notice, oomNotice(r.cfg.Memory))
		}
	}
	return res, nil
}

// oomNotice tells the caller that the out-of-memory killer ended the command.
func oomNotice(m Memory) string {
	if limit, ok := m.Limit(); ok {
		return fmt.Sprintf("A process was killed by the out-of-memory killer: the sandbox's memory limit of %s was reached.", cgroup.Size(limit))
	}
	return "A process was killed by the out-of-memory killer."
}

func joinNotice(a, b string) string {
	if a == "" {
		return b
	}
	return a + " " + b
}

// start builds and starts the command of spec. When that fails for lack
// of process slots and Reclaim is set, it reclaims slots and retries once;
// notice then says so.
func (r *Runner) start(ctx context.Context, spec Spec, stdout, stderr io.Writer) (*exec.Cmd, string, error) {
	cmd, err := r.command(spec)
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if r.cfg.Reclaim != nil && r.cfg.Crowded != nil && r.cfg.Crowded() {
		err = syscall.EAGAIN // as good as: reclaim, then start
	} else {
		err = r.startCmd(cmd)
	}
	if err == nil || r.cfg.Reclaim == nil || !errors.Is(err, syscall.EAGAIN) {
		if err != nil {
			return nil, "", fmt.Errorf("start: %w", err)
		}
		return cmd, "", nil
	}
	n, rerr := r.cfg.Reclaim(ctx)
	if rerr != nil {
		r.cfg.Logger.WarnContext(ctx, "reclaiming process slots", "err", rerr)
	}
	notice := ReclaimNotice(n)
	cmd, err = r.command(spec)
	if err != nil {
		return nil, notice, err
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := r.startCmd(cmd); err != nil {
		return nil, notice, fmt.Errorf("start: %w (%s; the retry failed too)", err, notice)
	}
	return cmd, notice, nil
}

// ReclaimNotice says that n stray processes were killed to free slots.
func ReclaimNotice(n int) string {
	return fmt.Sprintf("The sandbox was out of process slots: %d stray processes (not the kernel, terminals or tracked background processes) were killed to free them", n)
}

// Groups returns the process groups Ship tracks as live: running background
// handles and running foreground commands.
func (r *Runner) Groups() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, 0, len(r.fg)+len(r.procs))
	for pgid := range r.fg {
		out = append(out, pgid)
	}
	for _, p := range r.procs {
		if p.running() {
			out = append(out, p.pid)
		}
	}
	return out
}

// text makes captured bytes a clean string: invalid UTF-8 replaced, trimmed
// like upstream's .strip().
func text(b []byte) string {
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.TrimSpace(s)
}

// maxCommandShown bounds the command a background handle keeps for listing
// (a listing of every handle stays small whatever the commands were).
const maxCommandShown = 4096

// shorten cuts s to at most n bytes at a rune boundary, marked with "…".
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// bounded makes captured bytes the text of a response: clean (see text),
// at most MaxOutputBytes once JSON-encoded (control bytes cost up to six),
// and marked when anything was left out.
func (r *Runner) bounded(b []byte, omitted int64) (string, int64) {
	s := text(b)
	if jsontext.Len(s) > r.cfg.MaxOutputBytes {
		var n int
		s, n = jsontext.Cut(s, r.cfg.MaxOutputBytes)
		omitted += int64(n)
	}
	return marked(s, omitted), omitted
}

// marked appends the truncation marker to s when bytes were omitted.
func marked(s string, omitted int64) string {
	if omitted == 0 {
		return s
	}
	if s == "" {
		return Marker(omitted)
	}
	return s + "\n" + Marker(omitted)
}

func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -int(ws.Signal())
	}
	if code := ps.ExitCode(); code >= 0 {
		return code
	}
	if err != nil {
		return -1
	}
	return 0
}

// Proc is one background process.
type Proc struct {
	id      string
	pid     int
	command string
	started time.Time
	stdout  *Ring
	stderr  *Ring
	log     *Log // stdout and stderr merged, readable from an offset
	done    chan struct{}

	mu       sync.Mutex
	status   string
	exitCode *int
	finished time.Time
	killed   bool
	signaled map[syscall.Signal]bool // sent through Signal: ending by one of them is "killed"
}

// Info describes a background process.
type Info struct {
	ProcessID  string     `json:"process_id"`
	Pid        int        `json:"pid"`
	Command    string     `json:"command"`
	Status     string     `json:"status"`
	ExitCode   *int       `json:"exit_code"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Notice is set by Start only: stray processes were killed to free
	// process slots first (see Config.Reclaim).
	Notice string `json:"-"`
}

// Output is what a background process has printed (its ring buffers). When
// older output fell out of a ring, its text starts with a Marker line.
type Output struct {
	Stdout, Stderr               string
	StdoutDropped, StderrDropped int64 // bytes that fell out of the ring
}

// Truncated reports whether output fell out of a ring.
func (o Output) Truncated() bool { return o.StdoutDropped > 0 || o.StderrDropped > 0 }

// ringText is a ring's snapshot as text: a marker line first when older
// bytes were dropped, and no half UTF-8 sequence at the start.
func ringText(b []byte, dropped int64) string {
	if dropped == 0 {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	i := 0
	for i < len(b) && i < utf8.UTFMax && !utf8.RuneStart(b[i]) {
		i++
	}
	return Marker(dropped+int64(i)) + "\n" + strings.ToValidUTF8(string(b[i:]), "\uFFFD")
}

func (p *Proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status == StatusRunning
}

func (p *Proc) info() Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	in := Info{ProcessID: p.id, Pid: p.pid, Command: p.command, Status: p.status, ExitCode: p.exitCode, StartedAt: p.started}
	if !p.finished.IsZero() {
		f := p.finished
		in.FinishedAt = &f
	}
	return in
}

func (p *Proc) output() Output {
	o, od := p.stdout.Snapshot()
	e, ed := p.stderr.Snapshot()
	return Output{Stdout: ringText(o, od), Stderr: ringText(e, ed), StdoutDropped: od, StderrDropped: ed}
}

func newID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Start launches a background command and registers it.
func (r *Runner) Start(ctx context.Context, spec Spec) (Info, error) {
	if _, err := r.command(spec); err != nil {
		return Info{}, err
	}
	p := &Proc{
		command: shorten(spec.Command, maxCommandShown),
		stdout:  NewRing(r.cfg.RingBytes),
		stderr:  NewRing(r.cfg.RingBytes),
		log:     NewLog(r.cfg.LogBytes),
		done:    make(chan struct{}),
		status:  StatusRunning,
	}
	// The slot is reserved before starting, without holding the lock across
	// a start (a reclaim lists our groups and so takes the lock).
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Info{}, errors.New("runner is shut down")
	}
	if n := r.runningLocked() + r.starting; n >= r.cfg.MaxRunning {
		r.mu.Unlock()
		return Info{}, fmt.Errorf("%w (%d of %d); kill some first", ErrTooMany, n, r.cfg.MaxRunning)
	}
	r.starting++
	r.mu.Unlock()
	cmd, notice, err := r.start(ctx, spec, io.MultiWriter(p.stdout, p.log), io.MultiWriter(p.stderr, p.log))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starting--
	if err != nil {
		return Info{}, err
	}
	if r.closed {
		_ = killGroup(cmd.Process.Pid)
		_ = cmd.Wait()
		return Info{}, errors.New("runner is shut down")
	}
	for p.id = newID(); r.procs[p.id] != nil; p.id = newID() {
	}
	p.pid = cmd.Process.Pid
	p.started = r.cfg.Now()
	r.procs[p.id] = p
	r.wg.Add(1)
	go r.reap(ctx, p, cmd)
	r.cfg.Logger.InfoContext(ctx, "background process started", "process_id", p.id, "pid", p.pid)
	info := p.info()
	info.Notice = notice
	return info, nil
}

func (r *Runner) reap(ctx context.Context, p *Proc, cmd *exec.Cmd) {
	defer r.wg.Done()
	err := cmd.Wait()
	code := exitCode(cmd.ProcessState, err)
	p.mu.Lock()
	p.exitCode = &code
	p.finished = r.cfg.Now()
	sig := syscall.Signal(0)
	if code < 0 {
		sig = syscall.Signal(-code)
	}
	switch {
	case p.killed || (sig != 0 && p.signaled[sig]):
		p.status = StatusKilled
	case code == 0:
		p.status = StatusCompleted
	default:
		p.status = StatusFailed
	}
	status := p.status
	p.mu.Unlock()
	// Registry first, then done: whoever waited sees the eviction applied.
	r.mu.Lock()
	if r.procs[p.id] == p { // not removed meanwhile
		r.finished = append(r.finished, p.id)
		r.evictLocked()
	}
	r.mu.Unlock()
	close(p.done)
	r.cfg.Logger.InfoContext(context.WithoutCancel(ctx), "background process finished", "process_id", p.id, "status", status, "exit_code", code)
}

// evictLocked drops the oldest finished entries beyond KeepFinished.
func (r *Runner) evictLocked() {
	for len(r.finished) > r.cfg.KeepFinished {
		delete(r.procs, r.finished[0])
		r.finished = r.finished[1:]
	}
}

func (r *Runner) runningLocked() int {
	return len(r.procs) - len(r.finished)
}

// Running is the number of running background processes.
func (r *Runner) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runningLocked()
}

// List returns every registered background process, oldest first.
func (r *Runner) List() []Info {
	r.mu.Lock()
	ps := make([]*Proc, 0, len(r.procs))
	for _, p := range r.procs {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	out := make([]Info, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.info())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].ProcessID < out[j].ProcessID
	})
	return out
}

func (r *Runner) get(id string) (*Proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.procs[id]
	if p == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return p, nil
}

// Get returns a process and its output so far.
func (r *Runner) Get(id string) (Info, Output, error) {
	p, err := r.get(id)
	if err != nil {
		return Info{}, Output{}, err
	}
	return p.info(), p.output(), nil
}

// Wait waits until the process finishes, ctx ends or timeout passes (0 = no
// limit beyond ctx), then returns its state (finished or still running).
func (r *Runner) Wait(ctx context.Context, id string, timeout time.Duration) (Info, Output, error) {
	p, err := r.get(id)
	if err != nil {
		return Info{}, Output{}, err
	}
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-p.done:
	case <-timer:
	case <-ctx.Done():
		return Info{}, Output{}, fmt.Errorf("wait for %s: %w", id, ctx.Err())
	}
	return p.info(), p.output(), nil
}

// Kill kills the process group of a running process and waits briefly for it
// to be reaped. Killing a finished process is a no-op.
func (r *Runner) Kill(ctx context.Context, id string) (Info, Output, error) {
	p, err := r.get(id)
	if err != nil {
		return Info{}, Output{}, err
	}
	if err := r.kill(p); err != nil {
		return Info{}, Output{}, err
	}
	select {
	case <-p.done:
	case <-time.After(r.cfg.WaitDelay + 2*time.Second):
	case <-ctx.Done():
	}
	return p.info(), p.output(), nil
}

func (r *Runner) kill(p *Proc) error {
	p.mu.Lock()
	if p.status != StatusRunning {
		p.mu.Unlock()
		return nil
	}
	p.killed = true
	p.mu.Unlock()
	return killGroup(p.pid)
}

// Shutdown kills every running background process and waits (bounded by ctx)
// for them to be reaped. The Runner accepts no new background work after it.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	ps := make([]*Proc, 0, len(r.procs))
	for _, p := range r.procs {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	var errs []error
	for _, p := range ps {
		if err := r.kill(p); err != nil {
			errs = append(errs, err)
		}
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("shutdown: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// ReadOutput reads a background process's merged stdout+stderr from offset
// (see Log.Read), at most maxBytes, with the process's state at the time of
// the read: the output of a finished process is complete.
func (r *Runner) ReadOutput(id string, offset int64, maxBytes int) (Info, Chunk, error) {
	p, err := r.get(id)
	if err != nil {
		return Info{}, Chunk{}, err
	}
	info := p.info() // before the read: a finished state means all output is in
	return info, p.log.Read(offset, maxBytes, info.Status != StatusRunning), nil
}

// Signals are the signals Signal accepts, by name.
var Signals = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
	"QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

// ParseSignal accepts a name of Signals, with or without "SIG", any case.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	if s, ok := Signals[n]; ok {
		return s, nil
	}
	return 0, fmt.Errorf("%w: %q (one of TERM, KILL, INT, HUP, QUIT, USR1, USR2)", ErrSignal, name)
}

// Signal sends sig to the process group of a running background process
// (a finished one is left alone) and returns its state a moment later: a
// process that dies of it is reported "killed".
func (r *Runner) Signal(ctx context.Context, id string, sig syscall.Signal) (Info, error) {
	p, err := r.get(id)
	if err != nil {
		return Info{}, err
	}
	p.mu.Lock()
	if p.status != StatusRunning {
		p.mu.Unlock()
		return p.info(), nil
	}
	if p.signaled == nil {
		p.signaled = map[syscall.Signal]bool{}
	}
	p.signaled[sig] = true
	p.mu.Unlock()
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return Info{}, fmt.Errorf("signal process group %d: %w", p.pid, err)
	}
	// Give a process that dies of it the moment to be reaped, so the answer
	// says so; one that handles or ignores it stays running.
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	case <-ctx.Done():
	}
	return p.info(), nil
}

// Remove kills the process group of a background process if it still runs,
// waits for it to be reaped (bounded) and forgets it.
func (r *Runner) Remove(ctx context.Context, id string) error {
	p, err := r.get(id)
	if err != nil {
		return err
	}
	if err := r.kill(p); err != nil {
		return err
	}
	t := time.NewTimer(r.cfg.WaitDelay + 2*time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		return fmt.Errorf("process %s did not exit after SIGKILL", id)
	case <-ctx.Done():
		return fmt.Errorf("remove %s: %w", id, ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.procs[id] == p {
		delete(r.procs, id)
		r.finished = slices.DeleteFunc(r.finished, func(f string) bool { return f == id })
	}
	return nil
}
