package storetest

import (
	"bytes"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CommitCutter is a TCP proxy in front of PostgreSQL that, once armed, lets
// a transaction's COMMIT reach the server and then drops the connection
// before the server's answer reaches the client: the transaction commits and
// the client cannot know, which is what a database going away at that moment
// does to it.
type CommitCutter struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	match []byte // armed when not nil
	cuts  atomic.Int32
	wg    sync.WaitGroup
}

// NewCommitCutter starts a proxy to the server of dsn (a postgres:// URL) and
// returns it with the DSN that goes through it. It stops with the test.
func NewCommitCutter(t testing.TB, dsn string) (*CommitCutter, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CommitCutter{ln: ln, to: u.Host}
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.pipe(c) })
		}
	})
	u.Host = ln.Addr().String()
	return p, u.String()
}

// Arm makes the proxy cut the COMMIT of the next transaction whose messages
// carried match (a statement's text or a bound parameter, e.g. an id).
func (p *CommitCutter) Arm(match string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.match = []byte(match)
}

// Cuts is how many commits the proxy has cut.
func (p *CommitCutter) Cuts() int { return int(p.cuts.Load()) }

// fire reports whether a COMMIT after messages that carried seen is the one
// to cut, and disarms the proxy if so.
func (p *CommitCutter) fire(seen func([]byte) bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.match == nil || !seen(p.match) {
		return false
	}
	p.match = nil
	return true
}

// commitMsg is a simple-protocol Query message "commit", as pgx's Tx.Commit sends it.
var commitMsg = append([]byte("Q\x00\x00\x00\x0b"), "commit\x00"...)

func (p *CommitCutter) pipe(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.to)
	if err != nil {
		return
	}
	defer s.Close()
	var cut atomic.Bool
	p.wg.Go(func() { // server → client, until the cut
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			if n > 0 && !cut.Load() {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	var tx []byte // what the client sent since its last COMMIT
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			tx = append(tx, chunk...)
			if i := bytes.Index(tx, commitMsg); i >= 0 {
				if p.fire(func(m []byte) bool { return bytes.Contains(tx[:i], m) }) {
					cut.Store(true)
					_, _ = s.Write(chunk)
					time.Sleep(200 * time.Millisecond) // the server commits; its answer is dropped
					p.cuts.Add(1)
					return
				}
				tx = append([]byte(nil), tx[i+len(commitMsg):]...)
			}
			if len(tx) > 1<<20 { // a long stream without COMMIT: keep the tail only
				tx = append([]byte(nil), tx[len(tx)-4096:]...)
			}
			if _, werr := s.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
