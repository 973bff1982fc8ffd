package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// directShip is a runtime served over HTTP/1.1 that counts the connections
// it was given, and the direct transport of a client for it.
type directShip struct {
	srv    *httptest.Server
	d      *direct
	hc     *http.Client
	conns  atomic.Int64
	closed chan struct{} // a connection ended (as the server sees it)
}

func newDirectShip(t *testing.T, h http.HandlerFunc) *directShip {
	t.Helper()
	s := &directShip{srv: httptest.NewUnstartedServer(h), closed: make(chan struct{}, 64)}
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.conns.Add(1)
		case http.StateClosed:
			s.closed <- struct{}{}
		}
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	s.d = &direct{next: failingTransport{t}, dial: (&net.Dialer{}).DialContext,
		idleTimeout: 30 * time.Second, maxIdlePerHost: 8, maxIdle: 100}
	t.Cleanup(func() { s.d.closeIdle(true) })
	s.hc = &http.Client{Transport: s.d}
	return s
}

type failingTransport struct{ t *testing.T }

func (f failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("%s %s went to the fallback transport", r.Method, r.URL)
	return nil, errors.New("fallback")
}

func (s *directShip) post(ctx context.Context, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.URL+"/ipython/exec", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// pooled is how many connections the pool holds.
func (s *directShip) pooled() int {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return s.d.nIdle
}

// stalled starts an answer with head and holds the rest back until the test
// ends.
func stalled(t *testing.T, head []byte) (*directShip, *http.Response) {
	t.Helper()
	release := make(chan struct{})
	s := newDirectShip(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = w.Write(head)
		w.(http.Flusher).Flush()
		<-release
	})
	t.Cleanup(func() { close(release) }) // before the server's Close (cleanups run last-in first)
	resp, err := s.hc.Get(s.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return s, resp
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	_, _ = w.Write(b)
}

// Calls answered in full, with a length or chunked, share one connection.
func TestDirectReusesItsConnection(t *testing.T) {
	big := strings.Repeat("x", 64<<10) // chunked: beyond the server's buffer
	s := newDirectShip(t, echo)
	for i, body := range []string{`{"code":"1+1"}`, big, `{}`, big, "last"} {
		got, err := s.post(t.Context(), body)
		if err != nil || got != body {
			t.Fatalf("call %d: %d bytes, %v", i, len(got), err)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// A pooled connection the runtime closed (a restart, its idle timeout) is
// never written to: the next call takes a new one, and succeeds.
func TestDirectSkipsConnectionsThePeerClosed(t *testing.T) {
	s := newDirectShip(t, echo)
	if _, err := s.post(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	s.srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond) // the FIN reaches the client's socket
	if got, err := s.post(t.Context(), "b"); err != nil || got != "b" {
		t.Fatalf("after the close: %q, %v", got, err)
	}
	if n := s.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// A caller that goes away while the runtime has not answered gets its
// context's cause at once; the connection is not pooled.
func TestDirectCallerGoneMidCall(t *testing.T) {
	release := make(chan struct{})
	s := newDirectShip(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("slow") != "" {
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(200)
			_, _ = w.Write([]byte("part"))
			w.(http.Flusher).Flush()
		}
		<-release
	})
	defer close(release)
	cause := errors.New("runtime stopped answering")
	for _, query := range []string{"", "?slow=1"} { // before the answer's head; in its body
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL+"/x"+query, nil)
		t0 := time.Now()
		resp, err := s.hc.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if !errors.Is(err, cause) || time.Since(t0) > 2*time.Second {
			t.Fatalf("%q: %v after %v, want the cause at once", query, err, time.Since(t0))
		}
	}
	if n := s.pooled(); n != 0 {
		t.Fatalf("%d connections pooled after abandoned calls", n)
	}
}

// rawServer answers every connection with reply and closes it.
func rawServer(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				// Read the request first: closing a socket with unread
				// data resets the connection instead of ending it.
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					_, _ = c.Write([]byte(reply))
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// A runtime lives in the tenant's container: an answer it makes up is an
// error, never unbounded work for Bay.
func TestDirectRefusesOddAnswers(t *testing.T) {
	cases := []struct{ name, reply, want string }{
		{"endless header", "HTTP/1.1 200 OK\r\nX-A: " + strings.Repeat("a", 2*maxHeaderBytes), "header exceeds"},
		{"1xx", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "unexpected 100"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n", "malformed HTTP"},
		{"closed before answering", "", "EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &direct{next: failingTransport{t}, dial: (&net.Dialer{}).DialContext, idleTimeout: time.Minute, maxIdlePerHost: 8, maxIdle: 8}
			defer d.closeIdle(true)
			resp, err := (&http.Client{Transport: d}).Get(rawServer(t, tc.reply))
			if err == nil {
				resp.Body.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// An answer closed before its end, or one that says Connection: close,
// takes its connection with it.
func TestDirectDropsConnectionsNotReadToTheEnd(t *testing.T) {
	s := newDirectShip(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		_, _ = w.Write(bytes.Repeat([]byte("y"), 100<<10))
	})
	get := func(path string, n int64) {
		resp, err := s.hc.Get(s.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.CopyN(io.Discard, resp.Body, n)
		resp.Body.Close()
		want := http.ErrBodyReadAfterClose
		if n > 100<<10 {
			want = io.EOF // read to the end before the Close
		}
		if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, want) {
			t.Fatalf("%s: read after close: %v, want %v", path, err, want)
		}
	}
	const all = 1 << 30 // to the end
	get("/x", 10)
	get("/close", all)
	get("/x", all)
	get("/x", all)
	if n := s.conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (the early close and Connection: close each end theirs)", n)
	}
}

// Closing an answer the runtime has not finished never waits for the rest.
func TestDirectCloseNeverWaits(t *testing.T) {
	s, resp := stalled(t, bytes.Repeat([]byte("z"), 10<<10))
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	resp.Body.Close()
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	if s.pooled() != 0 {
		t.Fatal("an unfinished answer's connection was pooled")
	}
}

// A Close while another goroutine waits in Read aborts that Read.
func TestDirectCloseAbortsARead(t *testing.T) {
	_, resp := stalled(t, nil)
	readErr := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 10))
		readErr <- err
	}()
	time.Sleep(50 * time.Millisecond)
	resp.Body.Close()
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the aborted Read returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not abort the Read")
	}
}

type recordingTransport struct {
	mu   sync.Mutex
	seen []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen = append(r.seen, req.Method+" "+req.URL.Scheme)
	r.mu.Unlock()
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req}, nil
}

// What direct does not take — a body of unknown or large size, a protocol
// upgrade, https — goes to the next transport untouched.
func TestDirectHandsOnWhatItDoesNotTake(t *testing.T) {
	next := &recordingTransport{}
	d := &direct{next: next}
	pr, pw := io.Pipe()
	defer pw.Close()
	reqs := []func() *http.Request{
		func() *http.Request { r, _ := http.NewRequest("POST", "http://127.0.0.1:1/fs/upload", pr); return r },
		func() *http.Request {
			r, _ := http.NewRequest("POST", "http://127.0.0.1:1/x", bytes.NewReader(make([]byte, maxDirectBody+1)))
			return r
		},
		func() *http.Request {
			r, _ := http.NewRequest("GET", "http://127.0.0.1:1/terminal", nil)
			r.Header.Set("Upgrade", "websocket")
			return r
		},
		func() *http.Request { r, _ := http.NewRequest("GET", "https://127.0.0.1:1/x", nil); return r },
	}
	for _, mk := range reqs {
		resp, err := d.RoundTrip(mk())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if len(next.seen) != len(reqs) {
		t.Fatalf("next saw %v, want all %d", next.seen, len(reqs))
	}
}

// The watchdog of a call learns from the trace whether its connection was
// made (see capability.watch): ConnectStart for a new one, GotConn always.
func TestDirectTracesConnections(t *testing.T) {
	s := newDirectShip(t, echo)
	var connects int
	var got []bool
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		ConnectStart: func(string, string) { connects++ },
		GotConn:      func(i httptrace.GotConnInfo) { got = append(got, i.Reused) },
	})
	for range 3 {
		if _, err := s.post(ctx, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if connects != 1 || len(got) != 3 || got[0] || !got[1] || !got[2] {
		t.Fatalf("connects %d, reused %v; want 1 and [false true true]", connects, got)
	}
}

// Idle connections are closed after idleTimeout; Close closes the rest and
// pools nothing after it.
func TestDirectIdleConnectionsExpire(t *testing.T) {
	s := newDirectShip(t, echo)
	s.d.idleTimeout = 100 * time.Millisecond
	if _, err := s.post(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	s.waitClosed(t, "the idle connection was not closed")
	s.d.closeIdle(true)
	if _, err := s.post(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	s.waitClosed(t, "a connection was pooled after Close")
}

// waitClosed waits until the server sees a connection end, failing with msg
// after 5 s.
func (s *directShip) waitClosed(t *testing.T, msg string) {
	t.Helper()
	select {
	case <-s.closed:
	case <-time.After(5 * time.Second):
		t.Fatal(msg)
	}
}

// Concurrent callers each get a connection of their own; the pool keeps at
// most maxIdlePerHost of them.
func TestDirectConcurrentCalls(t *testing.T) {
	s := newDirectShip(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		echo(w, r)
	})
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 30 {
				want := strings.Repeat(string(rune('a'+i)), j+1)
				if got, err := s.post(t.Context(), want); err != nil || got != want {
					errc <- errors.Join(err, errors.New("wrong answer: "+got))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if n := s.pooled(); n > 8 || s.conns.Load() > 16 {
		t.Fatalf("%d idle, %d made; want ≤ 8 and ≤ 16", n, s.conns.Load())
	}
}
