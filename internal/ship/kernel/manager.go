package kernel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Manager owns one kernel: it starts it, runs cells one at a time, restarts
// it when it died, and stops it. All methods are safe for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger

	// slot is held by the one Execute (or Start/Restart) using the kernel.
	slot chan struct{}

	life   context.Context // canceled by Close
	cancel context.CancelFunc

	mu     sync.Mutex
	p      *proc // current kernel; nil when not started
	closed bool
	bg     sync.WaitGroup // starts and background interrupt cleanups

	starting  *startAttempt // background start in progress (startup.go)
	launching bool          // a kernel process is being started (any start)
	spawnPid  int           // its process id once spawned, until the start ends
	startErr  error         // why the last start failed; nil after a success
}

// NewManager returns a Manager for cfg with defaults filled in. It does not
// start the kernel.
func NewManager(cfg Config) *Manager {
	if len(cfg.Argv) == 0 {
		cfg.Argv = DefaultArgv
	}
	cfg.Argv = append([]string(nil), cfg.Argv...)
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = 60 * time.Second
	}
	if cfg.MaxOutputBytes <= 0 {
		cfg.MaxOutputBytes = 1 << 20
	}
	if cfg.MaxResultBytes <= 0 {
		cfg.MaxResultBytes = 4 << 20
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 30 * time.Second
	}
	if cfg.InterruptGrace <= 0 {
		cfg.InterruptGrace = 5 * time.Second
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, slot: make(chan struct{}, 1)}
	m.life, m.cancel = context.WithCancel(context.Background())
	return m
}

// Start starts the kernel if it is not running (a dead kernel is replaced)
// and returns once it answers and the init code ran. It costs one kernel
// start (~0.5–1 s) the first time and nothing when the kernel is alive.
func (m *Manager) Start(ctx context.Context) error {
	if err := m.acquire(ctx, 0); err != nil {
		return err
	}
	defer m.release()
	_, _, err := m.ensure(ctx)
	return err
}

// Status reports "not_started", "alive" or "dead" (the kernel exited or was
// killed and has not been restarted yet).
func (m *Manager) Status() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.p == nil:
		return StatusNotStarted
	case m.p.alive():
		return StatusAlive
	default:
		return StatusDead
	}
}

// Pid returns the kernel's process id (also its process group id), or 0.
// A kernel still starting has its id too, so that Ship's reclaim of process
// slots, which spares the kernel's group, does not kill it mid-start.
func (m *Manager) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p == nil {
		return m.spawnPid
	}
	return m.p.pid
}

// Restart replaces the kernel by a fresh one (state lost) and re-runs the
// init code. A cell running meanwhile ends with an error saying the kernel was
// restarted. A kernel that was not started is started.
func (m *Manager) Restart(ctx context.Context) error {
	old, err := m.take()
	if err != nil {
		return err
	}
	if old != nil {
		old.stop(ctx, true, "restarted")
	}
	if err := m.acquire(ctx, 0); err != nil {
		return err
	}
	defer m.release()
	// An Execute queued before us may have started a kernel in between; a
	// restart always ends with a fresh one.
	if cur, err := m.take(); err != nil {
		return err
	} else if cur != nil {
		cur.stop(ctx, true, "restarted")
	}
	_, _, err = m.ensure(ctx)
	return err
}

// Shutdown stops the kernel process (a running cell ends with an error);
// Status becomes "not_started" and the next Execute starts a fresh kernel.
// It returns ErrNotStarted when there is no kernel.
func (m *Manager) Shutdown(ctx context.Context) error {
	p, err := m.take()
	if err != nil {
		return err
	}
	if p == nil {
		return ErrNotStarted
	}
	p.stop(ctx, true, "shut down")
	m.log.InfoContext(ctx, "kernel shut down", "kernel_pid", p.pid)
	return nil
}

// Close shuts the kernel down, kills its process group, releases the sockets
// and waits for all goroutines of the Manager. Later calls return ErrClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	p := m.p
	m.p = nil
	m.mu.Unlock()
	m.cancel()
	if p != nil {
		p.stop(context.Background(), true, "closed")
	}
	m.bg.Wait()
	return nil
}

// take detaches the current kernel from the Manager.
func (m *Manager) take() (*proc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	p := m.p
	m.p = nil
	return p, nil
}

// acquire takes the execution slot, waiting at most wait (0: as long as ctx).
func (m *Manager) acquire(ctx context.Context, wait time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kernel: waiting for the kernel: %w", err)
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case m.slot <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("kernel: waiting for the kernel: %w", ctx.Err())
	case <-m.life.Done():
		return ErrClosed
	case <-timeout:
		return fmt.Errorf("%w (waited %s)", ErrBusy, wait)
	}
	if m.life.Err() != nil {
		m.release()
		return ErrClosed
	}
	return nil
}

func (m *Manager) release() { <-m.slot }

// ensure returns the running kernel, starting one if needed; the caller holds
// the slot. notice is set when a dead kernel was replaced.
func (m *Manager) ensure(ctx context.Context) (p *proc, notice string, err error) {
	m.mu.Lock()
	old, closed := m.p, m.closed
	m.mu.Unlock()
	if closed {
		return nil, "", ErrClosed
	}
	if old != nil && old.alive() {
		return old, "", nil
	}
	if old != nil {
		old.stop(ctx, false, "")
		notice = fmt.Sprintf("The kernel had died (%s) and was restarted; all previous state (variables, imports) was lost.",
			old.exitDescription())
		m.log.WarnContext(ctx, "restarting dead kernel", "kernel_pid", old.pid, "status", old.exitDescription())
	}
	p, note, err := m.launch(ctx)
	notice = joinLines(notice, note)
	if err != nil {
		return nil, notice, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		p.stop(ctx, false, "closed")
		return nil, notice, ErrClosed
	}
	m.p = p
	m.mu.Unlock()
	return p, notice, nil
}

// launch starts a kernel process and runs the init code in it. When the
// process cannot be started for lack of process slots, it reclaims slots
// (Config.Reclaim) and retries once; note then says so.
func (m *Manager) launch(ctx context.Context) (_ *proc, note string, err error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, "", ErrClosed
	}
	m.bg.Add(1)
	m.launching = true
	m.mu.Unlock()
	defer m.bg.Done()
	defer func() {
		m.mu.Lock()
		m.launching = false
		m.spawnPid = 0
		m.startErr = err
		m.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(ctx, m.cfg.StartTimeout)
	defer cancel()
	defer context.AfterFunc(m.life, cancel)()

	began := time.Now()
	spawned := func(pid int) {
		m.mu.Lock()
		m.spawnPid = pid
		m.mu.Unlock()
	}
	p, err := startProc(ctx, &m.cfg, m.log, spawned)
	if err != nil && m.cfg.Reclaim != nil && errors.Is(err, syscall.EAGAIN) {
		n, rerr := m.cfg.Reclaim(ctx)
		if rerr != nil {
			m.log.WarnContext(ctx, "reclaiming process slots", "err", rerr)
		}
		note = fmt.Sprintf("The sandbox was out of process slots: %d stray processes (not terminals or tracked background processes) were killed so that the kernel could start.", n)
		p, err = startProc(ctx, &m.cfg, m.log, spawned)
		if err != nil {
			err = fmt.Errorf("%w (%s The retry failed too.)", err, note)
		}
	}
	if err != nil {
		return nil, note, err
	}
	if m.cfg.InitCode != "" {
		if err := m.runInit(ctx, p); err != nil {
			p.stop(ctx, false, "start failed")
			return nil, note, fmt.Errorf("kernel: init code: %w", err)
		}
	}
	ms := func(a, b time.Time) int64 { return b.Sub(a).Milliseconds() }
	m.log.InfoContext(ctx, "kernel started", "kernel_pid", p.pid, "took", time.Since(began).Round(time.Millisecond),
		"spawn_ms", ms(began, p.spawnedAt), "listening_ms", ms(p.spawnedAt, p.listeningAt),
		"handshake_ms", ms(p.listeningAt, p.answeredAt), "info_requests", p.infoRequests, "init_ms", ms(p.answeredAt, time.Now()),
		"launcher", p.startLine())
	return p, note, nil
}

func (m *Manager) runInit(ctx context.Context, p *proc) error {
	c, err := p.submit(m.cfg.InitCode, true, m.cfg.MaxOutputBytes, m.cfg.MaxResultBytes)
	if err != nil {
		return err
	}
	defer c.close()
	switch c.wait(ctx, nil) {
	case cellDied:
		return fmt.Errorf("kernel died (%s)", p.exitDescription())
	case cellCanceled:
		return ctx.Err()
	}
	if r := c.col.result(); !r.Success {
		// Like upstream, a failing init does not prevent the kernel's use.
		m.log.WarnContext(ctx, "kernel init code failed", "error", r.Error, "output", r.Text)
	}
	return nil
}

// Execute runs one cell. See the package documentation for how failures are
// reported.
//
// When there is no kernel yet (or it is still starting), Execute waits for
// the start within req.Timeout, which then bounds the wait and the cell
// together: if it passes while the kernel is starting, the result is
// TimedOut and the code did not run; if the start fails, the error wraps
// ErrStartFailed and the next Execute starts the kernel again.
func (m *Manager) Execute(ctx context.Context, req Request) (Result, error) {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = m.cfg.DefaultTimeout
	}
	remaining := timeout
	if a := m.pendingStart(); a != nil {
		waited, res, err, ok := m.awaitStart(ctx, a, timeout)
		if !ok {
			return res, err
		}
		if remaining -= waited; remaining <= 0 { // the start took it all
			return Result{TimedOut: true, Error: fmt.Sprintf(
				"Code execution timed out after %s seconds: the Python kernel took that long to start, so the code did not run; try again.",
				seconds(timeout))}, nil
		}
	}
	if err := m.acquire(ctx, m.cfg.QueueTimeout); err != nil {
		return failed(err), err
	}
	held := true
	defer func() {
		if held {
			m.release()
		}
	}()

	p, notice, err := m.ensure(ctx)
	if err != nil {
		return withNotice(failed(err), notice), err
	}
	c, err := p.submit(req.Code, req.Silent, m.cfg.MaxOutputBytes, m.cfg.MaxResultBytes)
	if err != nil {
		// Most likely the kernel has just died: say so if it did.
		t := time.NewTimer(500 * time.Millisecond)
		defer t.Stop()
		select {
		case <-p.exited:
			return withNotice(died(p, &collector{}), notice), nil
		case <-t.C:
		}
		return withNotice(failed(err), notice), err
	}
	c.on = req.OnOutput
	timer := time.NewTimer(remaining)
	defer timer.Stop()

	var res Result
	switch c.wait(ctx, timer.C) {
	case cellDone:
		c.close()
		res = c.col.result()
	case cellDied:
		c.close()
		res = died(p, &c.col)
	case cellDeadline:
		var handedOff bool
		res, handedOff, err = m.timedOut(ctx, p, c, timeout)
		held = !handedOff
	case cellCanceled:
		res = c.col.result() // before settleInBackground takes the cell over
		held = false
		m.settleInBackground(p, c, true)
		res.Success = false
		res.Error = "Execution canceled: " + ctx.Err().Error()
		err = fmt.Errorf("kernel: execute: %w", ctx.Err())
	}
	if res.Restarted {
		notice = joinLines(notice, res.Notice)
	}
	return withNotice(res, notice), err
}

// timedOut interrupts a cell that ran out of time and waits (bounded) for it
// to stop, so that its output does not leak into the next call. A kernel that
// does not come back is restarted.
// handedOff reports that the caller went away meanwhile and the execution
// slot now belongs to a background cleanup.
func (m *Manager) timedOut(ctx context.Context, p *proc, c *cell, timeout time.Duration) (res Result, handedOff bool, err error) {
	m.log.InfoContext(ctx, "cell timed out; interrupting kernel", "kernel_pid", p.pid, "timeout", timeout)
	if err := p.interrupt(); err != nil {
		m.log.WarnContext(ctx, "interrupt kernel", "err", err)
	}
	grace := time.NewTimer(m.cfg.InterruptGrace)
	defer grace.Stop()
	st := c.wait(ctx, grace.C)
	res = c.col.result()
	switch st {
	case cellDone:
		c.close()
	case cellDied:
		c.close()
		res.Error = joinLines(res.Error, p.deathMessage())
	case cellDeadline:
		c.close()
		p.fail(fmt.Sprintf("did not stop within %s of an interrupt", m.cfg.InterruptGrace))
		<-p.exited
		_, notice, rerr := m.ensure(ctx)
		res.Restarted = true
		res.Notice = notice
		if rerr != nil {
			res.Error = joinLines(res.Error, "The kernel did not respond to the interrupt and could not be restarted: "+rerr.Error())
			err = rerr
		} else {
			res.Error = joinLines(res.Error, "The kernel did not respond to the interrupt and was restarted; its state (variables, imports) was lost.")
		}
	case cellCanceled:
		// The caller gave up; finish the interrupt without it.
		m.settleInBackground(p, c, false)
		handedOff = true
		err = fmt.Errorf("kernel: execute: %w", ctx.Err())
	}
	res.Success = false
	res.TimedOut = true
	res.Error = joinLines(fmt.Sprintf("Code execution timed out after %s seconds", seconds(timeout)), res.Error)
	return res, handedOff, err
}

// settleInBackground interrupts (unless already done) the cell of a caller
// that went away and waits (bounded) for it to finish; the execution slot,
// held by the caller, passes to it and is released at the end. A kernel that
// does not come back is killed, and the next Execute restarts it.
func (m *Manager) settleInBackground(p *proc, c *cell, interrupt bool) {
	c.on = nil // the caller is gone: nothing more reaches it
	m.mu.Lock()
	if m.closed { // Close has stopped the kernel: nothing to settle
		m.mu.Unlock()
		c.close()
		m.release()
		return
	}
	m.bg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.bg.Done()
		defer m.release()
		defer c.close()
		if interrupt {
			if err := p.interrupt(); err != nil {
				m.log.Warn("interrupt kernel", "err", err)
			}
		}
		grace := time.NewTimer(m.cfg.InterruptGrace)
		defer grace.Stop()
		if c.wait(m.life, grace.C) == cellDeadline {
			p.fail(fmt.Sprintf("did not stop within %s of an interrupt", m.cfg.InterruptGrace))
		}
	}()
}

// died is the result of a cell whose kernel went away.
func died(p *proc, col *collector) Result {
	res := col.result()
	res.Success = false
	res.Error = joinLines(res.Error, p.deathMessage())
	return res
}

func failed(err error) Result {
	return Result{Success: false, Error: "Execution error: " + err.Error()}
}

func withNotice(res Result, notice string) Result {
	if notice != "" {
		res.Restarted = true
		res.Notice = notice
	}
	return res
}

func joinLines(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n" + b
}

// seconds formats d like upstream's timeout: "30", "2.5".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
