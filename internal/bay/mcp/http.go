package mcp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

// caller is who made an MCP request over HTTP: the credentials and address
// the in-process transport replays on every /v1 call a tool makes, so /mcp
// has exactly the auth and owner of /v1.
type caller struct {
	header     http.Header
	remoteAddr string
	requestID  string
}

type callerKey struct{}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) (caller, bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	return c, ok
}

// forwarded are the request headers that decide auth and owner.
var forwarded = []string{"Authorization", "X-Owner"}

// maxMCPBody bounds one MCP request (write_file's 5 MiB limit, JSON-escaped).
const maxMCPBody = 16 << 20

// NewHTTPHandler serves MCP over streamable HTTP for Bay's /mcp route. bay is
// Bay's own /v1 handler: tools call it in-process with the MCP request's
// Authorization and X-Owner headers and remote address. The caller must have
// authenticated the request already (an unauthenticated MCP request is refused
// with 401 before any tool runs). Stateless: any Bay replica can answer.
func NewHTTPHandler(bay http.Handler, opts Options) http.Handler {
	opts.LocalFiles = false // never let a remote caller reach Bay's disk
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	client, err := shipyard.New("http://bay.internal", "", shipyard.WithHTTPClient(&http.Client{Transport: InProcess(bay)}))
	if err != nil {
		panic(err) // constant URL
	}
	srv := NewServer(client, opts)
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv },
		&sdk.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: sdkLogger(opts.Log), MaxRequestBodyBytes: maxMCPBody})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := caller{header: http.Header{}, remoteAddr: r.RemoteAddr, requestID: w.Header().Get("X-Request-Id")}
		for _, k := range forwarded {
			if v := r.Header.Values(k); len(v) > 0 {
				c.header[k] = v
			}
		}
		h.ServeHTTP(w, r.WithContext(withCaller(r.Context(), c)))
	})
}

// InProcess returns an http.RoundTripper that serves requests from h directly,
// without a network hop, streaming the response body. Requests carry the
// caller found in their context (Authorization, X-Owner, remote address,
// request id); without one they go as they are.
func InProcess(h http.Handler) http.RoundTripper { return inProcess{h} }

type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	r := req.Clone(ctx)
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:0"
	if r.Body == nil {
		r.Body = http.NoBody
	}
	if c, ok := callerFrom(ctx); ok {
		for _, k := range forwarded {
			r.Header.Del(k)
			if v := c.header.Values(k); len(v) > 0 {
				r.Header[k] = v
			}
		}
		if c.remoteAddr != "" {
			r.RemoteAddr = c.remoteAddr
		}
		if c.requestID != "" {
			r.Header.Set("X-Request-Id", c.requestID)
		}
	}
	body := newBodyPipe()
	w := &pipeWriter{header: http.Header{}, body: body, started: make(chan struct{})}
	go func() {
		defer r.Body.Close()
		defer func() {
			if p := recover(); p != nil { // http.ErrAbortHandler and the like
				w.start(http.StatusInternalServerError)
				body.closeWrite(io.ErrUnexpectedEOF)
			}
		}()
		t.h.ServeHTTP(w, r)
		w.start(http.StatusOK)
		body.closeWrite(nil)
	}()
	<-w.started
	return &http.Response{
		Status: http.StatusText(w.status), StatusCode: w.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sent, Body: body, ContentLength: -1, Request: req,
	}, nil
}

// pipeWriter is the http.ResponseWriter of an in-process request: the status
// and headers are taken at the first write, the body flows through a bodyPipe.
type pipeWriter struct {
	header  http.Header
	sent    http.Header
	status  int
	body    *bodyPipe
	once    sync.Once
	started chan struct{}
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) start(code int) {
	w.once.Do(func() {
		w.status, w.sent = code, w.header.Clone()
		close(w.started)
	})
}

func (w *pipeWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		return // informational: not passed on
	}
	w.start(code)
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	w.start(http.StatusOK)
	return w.body.Write(b)
}

func (w *pipeWriter) Flush() {}

// bodyPipeSize bounds what a handler may write ahead of the reader: a typical
// answer (a python result, a listing) fits, so it passes without a hand-off
// per write; a download streams through it in pieces of at most this size.
const bodyPipeSize = 64 << 10

// bodyPipe is an in-memory pipe with a bounded buffer: Write waits only when
// bodyPipeSize bytes are unread; Read waits for data or the writer's close.
// Closing the read side makes pending and later writes fail, as io.Pipe does.
type bodyPipe struct {
	mu      sync.Mutex
	cond    sync.Cond
	buf     bytes.Buffer
	werr    error // set when the writer is done: io.EOF or its error
	rclosed bool
}

func newBodyPipe() *bodyPipe {
	p := &bodyPipe{}
	p.cond.L = &p.mu
	return p
}

func (p *bodyPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for len(b) > 0 {
		switch {
		case p.rclosed:
			return n, io.ErrClosedPipe
		case p.werr != nil:
			return n, io.ErrClosedPipe
		}
		room := bodyPipeSize - p.buf.Len()
		if room <= 0 {
			p.cond.Wait()
			continue
		}
		k := min(room, len(b))
		p.buf.Write(b[:k])
		n += k
		b = b[k:]
		p.cond.Broadcast()
	}
	return n, nil
}

func (p *bodyPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.buf.Len() == 0 && p.werr == nil && !p.rclosed {
		p.cond.Wait()
	}
	if p.rclosed {
		return 0, io.ErrClosedPipe
	}
	if p.buf.Len() > 0 {
		n, _ := p.buf.Read(b)
		p.cond.Broadcast() // room for a waiting writer
		return n, nil
	}
	return 0, p.werr
}

// Close is the reader's: the handler's further writes fail.
func (p *bodyPipe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rclosed = true
	p.buf = bytes.Buffer{}
	p.cond.Broadcast()
	return nil
}

// closeWrite ends the body: the reader gets what is buffered, then err (io.EOF when nil).
func (p *bodyPipe) closeWrite(err error) {
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.werr == nil {
		p.werr = err
	}
	p.cond.Broadcast()
}
