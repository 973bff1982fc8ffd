// Package server is Ship's HTTP API (upstream Shipyard-Neo §2 routes and JSON
// shapes, plus additive routes): files, shell, background processes, the
// Python kernel, the terminal, health/meta and Prometheus metrics.
package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shipyard/shipyard/internal/apispec"
	"github.com/shipyard/shipyard/internal/logctx"
	"github.com/shipyard/shipyard/internal/ship/files"
	"github.com/shipyard/shipyard/internal/ship/kernel"
	"github.com/shipyard/shipyard/internal/ship/process"
	"github.com/shipyard/shipyard/internal/ship/sweep"
	"github.com/shipyard/shipyard/internal/ship/workspace"
)

// Version is what /health, /stat and /meta report (the upstream API version
// this server is compatible with).
const Version = "0.4.0"

// Kernel is what the server needs from the Python kernel (kernel.Manager).
type Kernel interface {
	Start(ctx context.Context) error
	Execute(ctx context.Context, req kernel.Request) (kernel.Result, error)
	Status() string
	// State reports the kernel's start-up for /health; Execute waits for
	// a start in progress itself.
	State() kernel.StartState
	Restart(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// Build describes the image, for /meta.
type Build struct {
	Image, ImageDigest, GitSHA string
}

// Skill is a built-in skill listed by /meta.
type Skill struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Path        string `json:"path"`
}

// Options configures a Server. Zero limits take the defaults noted.
type Options struct {
	Workspace *workspace.Root
	// WorkspaceName is the workspace path clients see (default the root dir).
	WorkspaceName string
	Files         *files.Service
	Processes     *process.Runner
	Kernel        Kernel
	Terminal      http.Handler // nil: /term/ws is not served
	Metrics       *Metrics
	Logger        *slog.Logger
	// Token, when set, is required as "Authorization: Bearer <token>" (or as
	// the X-Ship-Token header) on every route but /health.
	Token string
	// Pressure, when set, reports process pressure in /health.
	Pressure func() sweep.Stats
	// MaxBodyBytes caps JSON bodies (default 64 MiB); MaxUploadBytes caps
	// uploads (default 1 GiB).
	MaxBodyBytes, MaxUploadBytes int64
	// DefaultTimeout applies when a request gives none (default 30s);
	// MaxTimeout bounds any exec/wait timeout (default 1h).
	DefaultTimeout, MaxTimeout time.Duration
	// StreamKeepAlive is how long a streamed execution stays silent before a
	// ": ping" comment is sent (default 15s).
	StreamKeepAlive time.Duration
	Build           Build
	Skills          []Skill
}

// Server is the Ship HTTP API.
type Server struct {
	opt   Options
	log   *slog.Logger
	mux   *http.ServeMux
	kmu   sync.Mutex // serializes kernel start/restart/shutdown requests
	token [32]byte
	// patterns are the registered patterns (openapi_test.go compares them
	// with the OpenAPI table); spec is /openapi.json, built on first use.
	patterns []string
}

// New returns a Server. It is ready as soon as it serves: /health answers 200
// and reports the kernel's start-up in its "kernel" field, shell, files and
// terminal do not wait for the kernel, and python calls wait for its start
// within their own timeout (kernel.Manager.Execute).
func New(opt Options) *Server {
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 64 << 20
	}
	if opt.MaxUploadBytes <= 0 {
		opt.MaxUploadBytes = 1 << 30
	}
	if opt.DefaultTimeout <= 0 {
		opt.DefaultTimeout = 30 * time.Second
	}
	if opt.MaxTimeout <= 0 {
		opt.MaxTimeout = time.Hour
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.StreamKeepAlive <= 0 {
		opt.StreamKeepAlive = 15 * time.Second
	}
	if opt.WorkspaceName == "" {
		opt.WorkspaceName = opt.Workspace.Dir()
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(opt.Processes.Running)
	}
	s := &Server{opt: opt, log: opt.Logger, mux: http.NewServeMux()}
	if opt.Token != "" {
		s.token = sha256.Sum256([]byte(opt.Token))
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := recordingMux{mux: s.mux, patterns: &s.patterns}
	m.HandleFunc("GET /{$}", s.handleRoot)
	m.HandleFunc("GET /health", s.handleHealth)
	m.HandleFunc("GET /stat", s.handleStat)
	m.HandleFunc("GET /meta", s.handleMeta)
	m.HandleFunc("GET /ports", s.handlePorts)
	m.Handle("GET /metrics", s.opt.Metrics.Handler())
	m.HandleFunc("GET /openapi.json", s.handleOpenAPI)
	m.HandleFunc("GET /docs", apispec.ServeDocs)

	m.HandleFunc("POST /fs/create_file", s.handleCreate)
	m.HandleFunc("POST /fs/read_file", s.handleRead)
	m.HandleFunc("POST /fs/write_file", s.handleWrite)
	m.HandleFunc("POST /fs/edit_file", s.handleEdit)
	m.HandleFunc("POST /fs/delete_file", s.handleDelete)
	m.HandleFunc("POST /fs/list_dir", s.handleList)
	m.HandleFunc("POST /fs/upload", s.handleUpload)
	m.HandleFunc("GET /fs/download", s.handleDownload)

	m.HandleFunc("POST /ipython/exec", s.handlePython)
	m.HandleFunc("GET /ipython/kernel/status", s.handleKernelStatus)
	m.HandleFunc("POST /ipython/kernel/restart", s.handleKernelRestart)
	m.HandleFunc("DELETE /ipython/kernel", s.handleKernelShutdown)

	m.HandleFunc("POST /shell/exec", s.handleShell)
	m.HandleFunc("GET /shell/processes", s.handleProcesses)
	m.HandleFunc("GET /shell/processes/{id}", s.handleProcess)
	m.HandleFunc("POST /shell/processes/{id}/wait", s.handleProcessWait)
	m.HandleFunc("POST /shell/processes/{id}/kill", s.handleProcessKill)
	m.HandleFunc("POST /shell/processes", s.handleStartProcess)
	m.HandleFunc("GET /shell/processes/{id}/output", s.handleProcessOutput)
	m.HandleFunc("POST /shell/processes/{id}/signal", s.handleProcessSignal)
	m.HandleFunc("DELETE /shell/processes/{id}", s.handleProcessRemove)

	if s.opt.Terminal != nil {
		m.Handle("GET /term/ws", s.opt.Terminal)
	}
}

// Handler returns the API with its middleware: panic recovery, request id,
// logging and metrics, authentication, body limits.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TokenHeader is the header that may carry the token instead of
// Authorization (through proxies that take Authorization for themselves).
const TokenHeader = "X-Ship-Token"

// open routes need no token (so that orchestrators can probe readiness).
func open(path string) bool { return path == "/health" }

func (s *Server) authorized(r *http.Request) bool {
	return open(r.URL.Path) || s.hasToken(r)
}

// hasToken reports whether r carries the token (always true without one).
func (s *Server) hasToken(r *http.Request) bool {
	if s.opt.Token == "" {
		return true
	}
	// X-Ship-Token carries it where Authorization cannot: the Kubernetes API
	// server's pod proxy consumes Authorization (Bay's own credentials).
	tok := r.Header.Get(TokenHeader)
	if tok == "" {
		var ok bool
		if tok, ok = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok {
			return false
		}
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 200 {
		id = newRequestID()
	}
	ctx := logctx.WithRequestID(r.Context(), id)
	r = r.WithContext(ctx)
	w.Header().Set("X-Request-Id", id)
	sw := &statusWriter{ResponseWriter: w}

	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.log.ErrorContext(ctx, "panic serving request", "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			if !sw.wrote {
				detail(sw, http.StatusInternalServerError, "Internal Server Error")
			}
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)
		s.opt.Metrics.httpRequests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
		s.opt.Metrics.httpDuration.WithLabelValues(route).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		if r.URL.Path == "/health" || r.URL.Path == "/metrics" {
			level = slog.LevelDebug
		}
		s.log.Log(ctx, level, "request", "method", r.Method, "path", r.URL.Path, "route", route,
			"status", status, "bytes", sw.bytes, "duration_ms", float64(elapsed.Microseconds())/1000)
	}()

	if !s.authorized(r) {
		sw.Header().Set("WWW-Authenticate", "Bearer")
		msg := "Not authenticated"
		if r.Header.Get("Authorization") != "" || r.Header.Get(TokenHeader) != "" {
			msg = "Invalid token"
		}
		detail(sw, http.StatusUnauthorized, msg)
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// Unknown route or wrong method: let the mux decide which, answer in JSON.
		rec := &discardWriter{header: http.Header{}}
		s.mux.ServeHTTP(rec, r)
		if allow := rec.header.Get("Allow"); allow != "" {
			sw.Header().Set("Allow", allow)
		}
		if rec.status == http.StatusMethodNotAllowed {
			detail(sw, rec.status, "Method Not Allowed")
			return
		}
		detail(sw, http.StatusNotFound, "Not Found")
		return
	}
	if r.URL.Path != "/fs/upload" {
		r.Body = http.MaxBytesReader(sw, r.Body, s.opt.MaxBodyBytes)
	}
	s.mux.ServeHTTP(sw, r)
}

// statusWriter records the status and size of a response. It passes through
// Flush and Hijack (the terminal's WebSocket upgrade needs the latter).
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	w.status, w.wrote = http.StatusSwitchingProtocols, true
	return h.Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// discardWriter captures what the mux would answer for an unmatched request.
type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }

// seconds parses a timeout in seconds (JSON number) into a duration bounded by
// MaxTimeout; nil or <= 0 gives def.
func (s *Server) timeout(sec *float64, def time.Duration) time.Duration {
	if sec == nil || *sec <= 0 {
		return def
	}
	d := time.Duration(*sec * float64(time.Second))
	if d > s.opt.MaxTimeout || d < 0 {
		return s.opt.MaxTimeout
	}
	return d
}

func fmtSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
