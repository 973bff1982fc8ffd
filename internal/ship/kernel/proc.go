package kernel

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/shipyard/shipyard/internal/ship/cgroup"
)

// proc is one running kernel process and its sockets. A proc is never
// restarted: the Manager replaces it.
type proc struct {
	log   *slog.Logger
	codec codec
	ci    connectionInfo
	dir   string // holds the connection file; removed by stop

	cmd *exec.Cmd
	pid int

	// exited is closed once the process has exited and been reaped; exitErr
	// is valid afterwards.
	exited  chan struct{}
	exitErr error

	sigMu  sync.Mutex // guards reaped against signalling a reused pid
	reaped bool

	ctx                       context.Context // lifeline of the sockets
	cancel                    context.CancelFunc
	shell, control, iopub, hb zmq4.Socket

	routeMu sync.Mutex
	waiters map[string]*waiter
	cells   atomic.Int32 // execute_requests in flight

	readers     sync.WaitGroup // socket readers
	readersDone chan struct{}  // closed when all readers have returned
	bg          sync.WaitGroup // heartbeat goroutines

	out     *tail
	outR    *os.File      // read end of the kernel's stdout/stderr pipe
	outDone chan struct{} // closed when the output pipe reader has returned

	reasonMu    sync.Mutex
	stopReason  string // set by stop: the kernel was shut down on purpose
	failReason  string // set by fail: why we killed a misbehaving kernel
	stopping    chan struct{}
	stopOnce    sync.Once
	startedSock bool

	// Start-up timeline (for the "kernel started" log): the process was
	// spawned, its ports accepted connections, it answered kernel_info.
	spawnedAt, listeningAt, answeredAt time.Time
	infoRequests                       int // kernel_info_requests the handshake sent

	mem     Memory // nil = unknown
	oomBase int64  // the container's OOM kill count when the kernel started
	oomOK   bool
}

// waiter receives the messages whose parent is one request.
type waiter struct {
	id   string
	ch   chan *message
	done chan struct{}
}

// startProc launches the kernel, connects to it and waits until it answers a
// kernel_info_request with iopub connected. On error everything is cleaned up.
// spawned, when set, learns the process id as soon as the process runs.
func startProc(ctx context.Context, cfg *Config, log *slog.Logger, spawned func(pid int)) (_ *proc, err error) {
	ci, err := freeConnectionInfo()
	if err != nil {
		return nil, err
	}
	dir, file, err := writeConnectionFile(cfg.RuntimeDir, ci, cfg.UID, cfg.GID)
	if err != nil {
		return nil, err
	}
	argv := make([]string, len(cfg.Argv))
	for i, a := range cfg.Argv {
		argv[i] = strings.ReplaceAll(a, "{connection_file}", file)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = cfg.Dir
	cmd.Env = cfg.Env
	// Own process group: interrupts and kills reach the kernel's children too.
	// (No Pdeathsig: it fires when the forking OS thread exits, which the Go
	// runtime does not guarantee to keep.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cfg.UID != 0 || cfg.GID != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: cfg.UID, Gid: cfg.GID}
	}
	// The kernel's own stdout/stderr (not the user's output, which comes over
	// iopub) go to a pipe we log from. Passing *os.File keeps cmd.Wait from
	// waiting on grandchildren that inherited the pipe.
	outR, outW, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("kernel: output pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, outW
	var oomBase int64
	var oomOK bool
	if cfg.Memory != nil {
		oomBase, oomOK = cfg.Memory.OOMKills()
	}
	err = cmd.Start()
	outW.Close()
	if err != nil {
		outR.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("kernel: launch %q: %w", argv[0], err)
	}

	p := &proc{
		mem:         cfg.Memory,
		log:         log.With("kernel_pid", cmd.Process.Pid),
		codec:       codec{key: []byte(ci.Key), session: newID()},
		ci:          ci,
		dir:         dir,
		cmd:         cmd,
		pid:         cmd.Process.Pid,
		exited:      make(chan struct{}),
		waiters:     make(map[string]*waiter),
		readersDone: make(chan struct{}),
		out:         &tail{max: 4096},
		outR:        outR,
		outDone:     make(chan struct{}),
		oomBase:     oomBase,
		oomOK:       oomOK,
		stopping:    make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if spawned != nil {
		spawned(p.pid)
	}
	go p.wait()
	go p.readOutput()
	defer func() {
		if err != nil {
			p.stop(context.Background(), false, "start failed")
			if out := strings.TrimSpace(p.out.String()); out != "" {
				err = fmt.Errorf("%w; kernel output: %s", err, out)
			}
		}
	}()

	p.spawnedAt = time.Now()
	if err := p.connect(ctx); err != nil {
		return nil, err
	}
	p.listeningAt = time.Now()
	if err := p.handshake(ctx); err != nil {
		return nil, err
	}
	p.answeredAt = time.Now()
	if cfg.HeartbeatTimeout > 0 {
		p.bg.Add(1)
		go p.heartbeat(cfg.HeartbeatTimeout)
	}
	return p, nil
}

// The kernel's ports come from this band. Ports the system hands out itself
// must be avoided: the kernel binds one more socket of its own while it starts
// (ipykernel's IOPub pipe, a PULL socket on a random port in 49152-65535), and
// outgoing connections take local ports from the ephemeral range (32768-60999
// by default). A port Ship picked with ":0" came from that range and could be
// taken by either before the kernel bound it: the kernel then failed to start,
// or Ship's heartbeat socket reached the PULL socket instead.
const (
	kernelPortLow  = 20000
	kernelPortHigh = 32768 // exclusive
)

// freeConnectionInfo picks five free TCP ports on 127.0.0.1 in the kernel's
// band and a random key.
func freeConnectionInfo() (connectionInfo, error) {
	ports, err := freePorts(5, kernelPortLow, kernelPortHigh)
	if err != nil {
		return connectionInfo{}, err
	}
	var key [32]byte
	rand.Read(key[:])
	return connectionInfo{
		ShellPort: ports[0], IOPubPort: ports[1], StdinPort: ports[2], ControlPort: ports[3], HBPort: ports[4],
		IP: "127.0.0.1", Key: hex.EncodeToString(key[:]), Transport: "tcp", SignatureScheme: "hmac-sha256",
	}, nil
}

// freePorts returns n distinct ports in [low, high) that could be bound on
// 127.0.0.1, tried in turn from a random one. Each stays bound until all are
// found, so none is returned twice.
func freePorts(n, low, high int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	start := mrand.IntN(high - low)
	for i := 0; i < high-low && len(ports) < n; i++ {
		port := low + (start+i)%(high-low)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		ls = append(ls, l)
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("kernel: find a free port: only %d of %d ports in %d-%d are free", len(ports), n, low, high-1)
	}
	return ports, nil
}

// writeConnectionFile writes the connection file into a fresh private
// directory, owned by uid/gid when the kernel runs as another user.
func writeConnectionFile(parent string, ci connectionInfo, uid, gid uint32) (dir, file string, err error) {
	dir, err = os.MkdirTemp(parent, "shipyard-kernel-")
	if err != nil {
		return "", "", fmt.Errorf("kernel: connection file dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	b, err := json.MarshalIndent(ci, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("kernel: encode connection file: %w", err)
	}
	file = filepath.Join(dir, "kernel.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return "", "", fmt.Errorf("kernel: write connection file: %w", err)
	}
	if uid != 0 || gid != 0 {
		for _, f := range []string{dir, file} {
			if err := os.Chown(f, int(uid), int(gid)); err != nil {
				return "", "", fmt.Errorf("kernel: chown connection file: %w", err)
			}
		}
	}
	return dir, file, nil
}

// wait reaps the process, then kills what is left of its process group.
func (p *proc) wait() {
	err := p.cmd.Wait()
	p.sigMu.Lock()
	p.reaped = true
	// Children the kernel left behind (same process group) go with it. The
	// group id cannot have been reused while members remain.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	p.sigMu.Unlock()
	p.exitErr = err
	close(p.exited)
	p.log.Debug("kernel process exited", "status", p.exitDescription())
}

// signal sends sig to the kernel's process group.
func (p *proc) signal(sig syscall.Signal) error {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if p.reaped {
		return os.ErrProcessDone
	}
	if err := syscall.Kill(-p.pid, sig); err != nil {
		return fmt.Errorf("kernel: signal %v: %w", sig, err)
	}
	return nil
}

// alive reports whether the process runs and we still trust it.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	case <-p.stopping:
		return false
	default:
	}
	p.reasonMu.Lock()
	defer p.reasonMu.Unlock()
	return p.failReason == ""
}

// fail kills a misbehaving kernel; it will be reported as dead.
func (p *proc) fail(reason string) {
	p.reasonMu.Lock()
	if p.failReason == "" {
		p.failReason = reason
	}
	p.reasonMu.Unlock()
	p.log.Warn("killing kernel", "reason", reason)
	_ = p.signal(syscall.SIGKILL)
}

// exitDescription says how the process ended ("exit status 1", "signal: killed").
func (p *proc) exitDescription() string {
	p.reasonMu.Lock()
	fail := p.failReason
	p.reasonMu.Unlock()
	desc := "still running"
	select {
	case <-p.exited:
		desc = "exit status 0"
		var ee *exec.ExitError
		if errors.As(p.exitErr, &ee) {
			desc = ee.String()
		} else if p.exitErr != nil {
			desc = p.exitErr.Error()
		}
	default:
	}
	if fail != "" {
		desc = fail + ", " + desc
	}
	return desc
}

// deathMessage explains why the kernel went away during an execution.
func (p *proc) deathMessage() string {
	p.reasonMu.Lock()
	reason := p.stopReason
	p.reasonMu.Unlock()
	if reason != "" {
		return fmt.Sprintf("Kernel was %s during execution; its state (variables, imports) was lost.", reason)
	}
	if why := p.oomKilled(); why != "" {
		return fmt.Sprintf("Kernel died during execution: %s; its state (variables, imports) was lost. "+
			"It will be restarted on the next execution.", why)
	}
	return fmt.Sprintf("Kernel died during execution (%s); its state (variables, imports) was lost. "+
		"It will be restarted on the next execution.", p.exitDescription())
}

// oomKilled says, for a kernel that died of SIGKILL while the container's OOM
// kill count went up, that the out-of-memory killer took it and what the
// limit is; "" otherwise (or when the count is unknown, e.g. under gVisor).
func (p *proc) oomKilled() string {
	if p.mem == nil || !p.oomOK {
		return ""
	}
	select {
	case <-p.exited:
	default:
		return ""
	}
	var ee *exec.ExitError
	if !errors.As(p.exitErr, &ee) {
		return ""
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return ""
	}
	if n, ok := p.mem.OOMKills(); !ok || n <= p.oomBase {
		return ""
	}
	if limit, ok := p.mem.Limit(); ok {
		return fmt.Sprintf("out of memory (the sandbox's memory limit of %s was reached and the kernel was killed)", cgroup.Size(limit))
	}
	return "out of memory (the kernel was killed by the out-of-memory killer)"
}

// connect dials the shell, control, iopub and heartbeat sockets once the
// kernel listens on them, and starts the socket readers.
func (p *proc) connect(ctx context.Context) error {
	for _, port := range []int{p.ci.ShellPort, p.ci.ControlPort, p.ci.IOPubPort, p.ci.HBPort} {
		if err := p.waitPort(ctx, port); err != nil {
			return err
		}
	}
	opts := []zmq4.Option{
		zmq4.WithLogger(slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)),
		zmq4.WithDialerRetry(20 * time.Millisecond),
		zmq4.WithDialerMaxRetries(5),
		zmq4.WithTimeout(10 * time.Second),
	}
	p.shell = zmq4.NewDealer(p.ctx, opts...)
	p.control = zmq4.NewDealer(p.ctx, opts...)
	p.iopub = zmq4.NewSub(p.ctx, opts...)
	p.hb = zmq4.NewReq(p.ctx, opts...)
	p.startedSock = true
	// Readers start before dialing: Recv waits for a connection, and returns
	// once the sockets are closed, whatever happened in between.
	p.readers.Add(3)
	go p.read("shell", p.shell)
	go p.read("control", p.control)
	go p.read("iopub", p.iopub)
	go func() {
		p.readers.Wait()
		close(p.readersDone)
	}()
	if err := p.iopub.SetOption(zmq4.OptionSubscribe, ""); err != nil {
		return fmt.Errorf("kernel: subscribe iopub: %w", err)
	}
	for _, s := range []struct {
		sock zmq4.Socket
		port int
		name string
	}{{p.shell, p.ci.ShellPort, "shell"}, {p.control, p.ci.ControlPort, "control"}, {p.iopub, p.ci.IOPubPort, "iopub"}, {p.hb, p.ci.HBPort, "hb"}} {
		if err := s.sock.Dial(p.ci.endpoint(s.port)); err != nil {
			return fmt.Errorf("kernel: dial %s: %w", s.name, err)
		}
	}
	return nil
}

// waitPort waits until the kernel accepts TCP connections on port.
func (p *proc) waitPort(ctx context.Context, port int) error {
	addr := fmt.Sprintf("%s:%d", p.ci.IP, port)
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kernel: waiting for port %d: %w", port, ctx.Err())
		case <-p.exited:
			return fmt.Errorf("kernel: process exited during start (%s)", p.exitDescription())
		case <-time.After(2 * time.Millisecond): // a refused local dial costs microseconds
		}
	}
}

// read decodes, verifies and routes the messages of one socket until the
// connection ends.
func (p *proc) read(name string, s zmq4.Socket) {
	defer p.readers.Done()
	for {
		raw, err := s.Recv()
		if err != nil {
			p.log.Debug("kernel socket closed", "socket", name, "err", err)
			return
		}
		m, err := p.codec.decode(raw.Frames)
		if err != nil {
			p.log.Warn("dropping kernel message", "socket", name, "err", err)
			continue
		}
		p.routeMu.Lock()
		w := p.waiters[m.Parent.MsgID]
		p.routeMu.Unlock()
		if w == nil {
			continue // not ours, or a leftover of a finished request
		}
		select {
		case w.ch <- m:
		case <-w.done:
		}
	}
}

// request sends a message on sock; the returned waiter receives the replies
// and iopub messages whose parent is this message.
func (p *proc) request(sock zmq4.Socket, msgType string, content any) (*waiter, error) {
	frames, id, err := p.codec.encode(msgType, content)
	if err != nil {
		return nil, err
	}
	// A small buffer: readers block when it is full, which holds the kernel
	// back (TCP flow control) instead of queueing large messages here.
	w := &waiter{id: id, ch: make(chan *message, 16), done: make(chan struct{})}
	p.routeMu.Lock()
	p.waiters[id] = w
	p.routeMu.Unlock()
	if err := sock.SendMulti(zmq4.NewMsgFrom(frames...)); err != nil {
		p.unsubscribe(w)
		return nil, fmt.Errorf("kernel: send %s: %w", msgType, err)
	}
	return w, nil
}

// unsubscribe stops routing to w; it reports whether w was still routed.
func (p *proc) unsubscribe(w *waiter) bool {
	p.routeMu.Lock()
	defer p.routeMu.Unlock()
	if p.waiters[w.id] != w {
		return false
	}
	delete(p.waiters, w.id)
	close(w.done)
	return true
}

// handshake sends kernel_info_request until both the reply (shell) and a
// status message for it (iopub) arrive, so that no iopub output of the first
// cell is lost to a subscription still in flight.
func (p *proc) handshake(ctx context.Context) error {
	for {
		p.infoRequests++
		w, err := p.request(p.shell, "kernel_info_request", struct{}{})
		if err != nil {
			return err
		}
		replied, published, err := p.awaitInfo(ctx, w)
		p.unsubscribe(w)
		if err != nil {
			return err
		}
		if replied && published {
			return nil
		}
	}
}

func (p *proc) awaitInfo(ctx context.Context, w *waiter) (replied, published bool, err error) {
	var settle <-chan time.Time
	for !(replied && published) {
		select {
		case m := <-w.ch:
			switch m.Header.MsgType {
			case "kernel_info_reply":
				replied = true
				settle = time.After(200 * time.Millisecond)
			case "status":
				published = true
			}
		case <-settle:
			return replied, published, nil
		case <-ctx.Done():
			return false, false, fmt.Errorf("kernel: waiting for kernel_info_reply: %w", ctx.Err())
		case <-p.exited:
			return false, false, fmt.Errorf("kernel: process exited during start (%s)", p.exitDescription())
		}
	}
	return replied, published, nil
}

// interrupt interrupts the running cell: SIGINT to the process group (the
// kernel's interrupt_mode is "signal"), or interrupt_request on control.
func (p *proc) interrupt() error {
	err := p.signal(syscall.SIGINT)
	if err == nil {
		return nil
	}
	w, err2 := p.request(p.control, "interrupt_request", struct{}{})
	if err2 != nil {
		return errors.Join(err, err2)
	}
	p.unsubscribe(w)
	return nil
}

// heartbeat pings the kernel's heartbeat socket; a kernel that stops
// answering for timeout is killed (and then reported dead).
func (p *proc) heartbeat(timeout time.Duration) {
	defer p.bg.Done()
	interval := max(timeout/5, 50*time.Millisecond)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	replies := make(chan error, 1) // at most one ping in flight
	pending := false
	var sent time.Time
	for {
		select {
		case <-p.stopping:
			return
		case <-p.exited:
			return
		case err := <-replies:
			pending = false
			if err != nil {
				return
			}
		case <-tick.C:
			if pending {
				if time.Since(sent) > timeout {
					p.fail(fmt.Sprintf("no heartbeat for %s", timeout))
					return
				}
				continue
			}
			pending, sent = true, time.Now()
			p.bg.Add(1)
			go func() {
				defer p.bg.Done()
				err := p.hb.Send(zmq4.NewMsgString("ping"))
				if err == nil {
					_, err = p.hb.Recv() // returns when the socket closes
				}
				replies <- err
			}()
		}
	}
}

// stop ends the kernel: optionally, when no cell runs, a shutdown_request
// first (bounded by ctx and a second), then SIGKILL to the process group; then it closes the
// sockets and waits for every goroutine of the proc. reason says why
// ("shut down", "restarted", ...); "" keeps the kernel reported as died.
func (p *proc) stop(ctx context.Context, graceful bool, reason string) {
	p.stopOnce.Do(func() {
		p.reasonMu.Lock()
		p.stopReason = reason
		p.reasonMu.Unlock()
		close(p.stopping)
		// A busy kernel would only exit after its cell: no point asking.
		if graceful && p.startedSock && p.cells.Load() == 0 {
			if w, err := p.request(p.control, "shutdown_request", map[string]bool{"restart": false}); err == nil {
				p.unsubscribe(w)
				t := time.NewTimer(time.Second)
				select {
				case <-p.exited:
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
			}
		}
		_ = p.signal(syscall.SIGKILL)
		<-p.exited

		if p.startedSock {
			// Let the readers drain up to the connections' EOF, then cut.
			t := time.NewTimer(time.Second)
			select {
			case <-p.readersDone:
			case <-t.C:
			}
			t.Stop()
		}
		p.cancel()
		if p.startedSock {
			for _, s := range []zmq4.Socket{p.shell, p.control, p.iopub, p.hb} {
				_ = s.Close()
			}
			<-p.readersDone
		}
		p.bg.Wait()

		// The output pipe ends when the last holder exits; grandchildren that
		// escaped the process group must not keep us waiting.
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-p.outDone:
		case <-t.C:
		}
		t.Stop()
		p.outR.Close()
		<-p.outDone
		if err := os.RemoveAll(p.dir); err != nil {
			p.log.Warn("remove connection file", "err", err)
		}
	})
}

// readOutput logs the kernel process's own stdout/stderr and keeps its tail
// for start errors.
func (p *proc) readOutput() {
	defer close(p.outDone)
	br := bufio.NewReaderSize(p.outR, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			p.out.Write(line)
			p.log.Debug("kernel output", "line", strings.TrimRight(string(line), "\n"))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// startLine is what the launcher said about the start (Launcher's
// StartLinePrefix line, without the prefix), or "".
func (p *proc) startLine() string {
	out := p.out.String()
	i := strings.LastIndex(out, StartLinePrefix)
	if i < 0 {
		return ""
	}
	line, _, _ := strings.Cut(out[i+len(StartLinePrefix):], "\n")
	return line
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
