package mcp

import (
	"context"
	"io"
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
	client, err := shipyard.New("http://bay.internal", "", shipyard.WithHTTPClient(&http.Client{Transport: InProcess(bay)}))
	if err != nil {
		panic(err) // constant URL
	}
	srv := NewServer(client, opts)
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv },
		&sdk.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: opts.Log, MaxRequestBodyBytes: maxMCPBody})
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
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pw: pw, started: make(chan struct{})}
	go func() {
		defer r.Body.Close()
		defer func() {
			if p := recover(); p != nil { // http.ErrAbortHandler and the like
				w.start(http.StatusInternalServerError)
				pw.CloseWithError(io.ErrUnexpectedEOF)
			}
		}()
		t.h.ServeHTTP(w, r)
		w.start(http.StatusOK)
		pw.Close()
	}()
	<-w.started
	return &http.Response{
		Status: http.StatusText(w.status), StatusCode: w.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sent, Body: pr, ContentLength: -1, Request: req,
	}, nil
}

// pipeWriter is the http.ResponseWriter of an in-process request: the status
// and headers are taken at the first write, the body flows through a pipe.
type pipeWriter struct {
	header  http.Header
	sent    http.Header
	status  int
	pw      *io.PipeWriter
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
	return w.pw.Write(b)
}

func (w *pipeWriter) Flush() {}
