package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// direct is the http.RoundTripper of Bay's own calls to a runtime: it writes
// the request and reads the answer on the caller's goroutine, over pooled
// keep-alive connections.
//
// net/http's Transport hands each request to a writer goroutine and the
// answer back from a reader goroutine. Each hand-off wakes an idle thread of
// the Go scheduler, which on a small virtual machine costs about as much as
// the rest of a proxy's work. Measured on the 2-core benchmark VM, bin/bay
// against its Ship, interleaved with the previous build: context switches
// per sequential `1+1` 21 → 17.5; with 16 sandboxes executing, 19.8 → 14.3
// switches and 0.61 → 0.55 ms of Bay's CPU per call, and throughput via Bay
// 0.89× → 0.92× of going straight to Ship.
//
// It takes only what it can do without those goroutines: plain http, no
// protocol upgrade, a request body that is nil or in memory (at most
// maxDirectBody). Everything else (uploads) goes to next. The proxies that
// HTTP() serves (terminal, ports) do not use it.
type direct struct {
	next           http.RoundTripper
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	idleTimeout    time.Duration
	maxIdlePerHost int
	maxIdle        int

	mu      sync.Mutex
	idle    map[string][]*pooledConn // by host:port; most recently used last
	nIdle   int
	closed  bool
	sweeper *time.Ticker // closes expired idle connections; started by the first put
	done    chan struct{}
}

const (
	maxDirectBody = 1 << 20
	// maxHeaderBytes caps an answer's status line and headers (as
	// Transport.MaxResponseHeaderBytes does): a runtime is in the tenant's
	// container, and its answer is read with no goroutine to abandon it.
	maxHeaderBytes = 1 << 20
)

type pooledConn struct {
	net.Conn
	raw     syscall.RawConn   // for open's peek; nil if the dialer's conn has no fd
	lr      *io.LimitedReader // under br: maxHeaderBytes while reading headers
	br      *bufio.Reader
	bw      *bufio.Writer
	host    string
	since   time.Time // idle since (in the pool)
	drained bool      // its read deadline was set to drain an answer
}

func (d *direct) takes(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.Header.Get("Upgrade") != "" {
		return false
	}
	return req.Body == nil || req.Body == http.NoBody ||
		(req.GetBody != nil && req.ContentLength >= 0 && req.ContentLength <= maxDirectBody)
}

func (d *direct) RoundTrip(req *http.Request) (*http.Response, error) {
	if !d.takes(req) {
		return d.next.RoundTrip(req)
	}
	ctx := req.Context()
	resp, err := d.roundTrip(ctx, req)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	return resp, nil
}

func (d *direct) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	pc, reused, err := d.get(ctx, host)
	if err != nil {
		return nil, err
	}
	if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: pc.Conn, Reused: reused})
	}
	// A caller that goes away unblocks the read or write in progress.
	stop := context.AfterFunc(ctx, func() { _ = pc.SetDeadline(time.Unix(1, 0)) })
	resp, err := pc.exchange(req)
	if err != nil {
		stop()
		_ = pc.Close()
		return nil, err
	}
	resp.Body = &directBody{ReadCloser: resp.Body, ctx: ctx, d: d, pc: pc, stop: stop,
		reuse: !resp.Close && !req.Close}
	return resp, nil
}

// exchange writes req and reads the answer's head.
func (pc *pooledConn) exchange(req *http.Request) (*http.Response, error) {
	if err := req.Write(pc.bw); err != nil {
		return nil, err
	}
	if err := pc.bw.Flush(); err != nil {
		return nil, err
	}
	pc.lr.N = maxHeaderBytes
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		if pc.lr.N <= 0 {
			return nil, fmt.Errorf("runtime: answer's header exceeds %d bytes", maxHeaderBytes)
		}
		return nil, err
	}
	if resp.StatusCode < 200 { // a runtime never sends 1xx (nothing asks for it)
		_ = resp.Body.Close()
		return nil, fmt.Errorf("runtime: unexpected %s", resp.Status)
	}
	pc.lr.N = math.MaxInt64
	return resp, nil
}

// get returns an idle connection to host that is still open, or a new one.
func (d *direct) get(ctx context.Context, host string) (*pooledConn, bool, error) {
	for {
		d.mu.Lock()
		list := d.idle[host]
		n := len(list)
		if n == 0 {
			d.mu.Unlock()
			break
		}
		pc := list[n-1]
		list[n-1] = nil
		if n == 1 {
			delete(d.idle, host)
		} else {
			d.idle[host] = list[:n-1]
		}
		d.nIdle--
		d.mu.Unlock()
		if time.Since(pc.since) < d.idleTimeout && pc.open() {
			return pc, true, nil
		}
		_ = pc.Close()
	}
	c, err := d.dial(ctx, "tcp", host) // the dialer reports ConnectStart/Done to the trace
	if err != nil {
		return nil, false, err
	}
	pc := &pooledConn{Conn: c, host: host, lr: &io.LimitedReader{R: c, N: math.MaxInt64}, bw: bufio.NewWriter(c)}
	pc.br = bufio.NewReader(pc.lr)
	if sc, ok := c.(syscall.Conn); ok {
		pc.raw, _ = sc.SyscallConn()
	}
	return pc, false, nil
}

// open reports whether an idle connection can carry a request: the peer has
// not closed it and sent nothing since its last answer. (Transport learns the
// same from its reader goroutine, which reads idle connections.)
func (pc *pooledConn) open() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	if pc.raw == nil {
		return true
	}
	open := false
	err := pc.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN) // nothing to read: neither bytes nor EOF
		return true
	})
	return err == nil && open
}

// put pools a connection whose answer was read to its end. Expiry is a
// sweep, not a timer per connection: arming a timer on every call wakes the
// network poller's thread.
func (d *direct) put(pc *pooledConn) {
	if pc.drained {
		pc.drained = false
		_ = pc.SetReadDeadline(time.Time{})
	}
	pc.since = time.Now()
	d.mu.Lock()
	if d.closed || d.nIdle >= d.maxIdle || len(d.idle[pc.host]) >= d.maxIdlePerHost {
		d.mu.Unlock()
		_ = pc.Close()
		return
	}
	if d.idle == nil {
		d.idle = map[string][]*pooledConn{}
	}
	if d.sweeper == nil {
		d.sweeper, d.done = time.NewTicker(d.idleTimeout/2), make(chan struct{})
		go d.sweep(d.sweeper.C, d.done)
	}
	d.idle[pc.host] = append(d.idle[pc.host], pc)
	d.nIdle++
	d.mu.Unlock()
}

// sweep closes connections idle for idleTimeout, until closeIdle(true).
func (d *direct) sweep(tick <-chan time.Time, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case now := <-tick:
			var expired []*pooledConn
			d.mu.Lock()
			for host, list := range d.idle {
				keep := list[:0]
				for _, pc := range list {
					if now.Sub(pc.since) >= d.idleTimeout {
						expired = append(expired, pc)
					} else {
						keep = append(keep, pc)
					}
				}
				clear(list[len(keep):])
				if len(keep) == 0 {
					delete(d.idle, host)
				} else {
					d.idle[host] = keep
				}
			}
			d.nIdle -= len(expired)
			d.mu.Unlock()
			for _, pc := range expired {
				_ = pc.Close()
			}
		}
	}
}

// closeIdle closes every pooled connection; closed also stops pooling and
// the sweep.
func (d *direct) closeIdle(closed bool) {
	d.mu.Lock()
	idle := d.idle
	d.idle, d.nIdle = nil, 0
	if closed && !d.closed {
		d.closed = true
		if d.sweeper != nil {
			d.sweeper.Stop()
			close(d.done)
		}
	}
	d.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			_ = pc.Close()
		}
	}
}

// CloseIdleConnections is what http.Client.CloseIdleConnections calls.
func (d *direct) CloseIdleConnections() {
	d.closeIdle(false)
	if c, ok := d.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// directBody is an answer's body: read to its end, it gives the connection
// back to the pool; closed before that, it closes the connection.
type directBody struct {
	io.ReadCloser
	ctx   context.Context
	d     *direct
	pc    *pooledConn
	stop  func() bool
	reuse bool
	mu    sync.Mutex // held by a Read: a Close beside it aborts it
	eof   bool       // under mu
	done  atomic.Bool
}

func (b *directBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read(p)
}

func (b *directBody) read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.done.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		b.release(true)
	case err != nil:
		if b.ctx.Err() != nil {
			err = context.Cause(b.ctx)
		}
		b.release(false)
	}
	return n, err
}

// Close before the end keeps the connection only when the rest of the answer
// is already in its buffer (a JSON decoder stops before a chunked answer's
// last chunk). An expired read deadline makes sure that draining it never
// waits for the runtime. A Close while another goroutine reads aborts that
// read, as net/http's bodies do.
func (b *directBody) Close() error {
	if !b.mu.TryLock() {
		b.release(false) // closes the connection under the Read in progress
		return nil
	}
	defer b.mu.Unlock()
	if b.eof {
		return nil
	}
	if !b.done.Load() && b.pc.br.Buffered() > 0 {
		b.pc.drained = true
		_ = b.pc.SetReadDeadline(time.Unix(1, 0))
		var buf [512]byte
		for !b.done.Load() {
			if _, err := b.read(buf[:]); err != nil {
				break
			}
		}
	}
	b.release(false) // no-op when the drain reached the end
	return nil
}

func (b *directBody) release(atEOF bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	// stop is false when the caller's context ended and poisoned the deadline.
	if b.stop() && atEOF && b.reuse {
		b.d.put(b.pc)
		return
	}
	_ = b.pc.Close()
}
