// Package server is Gull's HTTP API (port 8115): the runtime API that Bay's
// browser adapter speaks (upstream-contract §2): /exec, /exec_batch,
// /health, /meta and DELETE /sessions/{sandbox_id}.
package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/shipyard/shipyard/internal/gull/browser"
	"github.com/shipyard/shipyard/internal/logctx"
)

// Version of the Gull runtime API.
const Version = "1.0.0"

// Browser is what the server needs of the browser manager.
type Browser interface {
	Exec(ctx context.Context, line, sandboxID string, timeout time.Duration) browser.Result
	Status() browser.Status
	Close(ctx context.Context) error
}

// Options of a Server.
type Options struct {
	Browser   Browser
	Workspace string // reported by /meta
	// Token, when set, is required as "Authorization: Bearer <token>" (or in
	// X-Ship-Token) on every route but /health.
	Token          string
	DefaultTimeout time.Duration // 30s
	MaxTimeout     time.Duration // 600s
	MaxBodyBytes   int64         // 4 MiB
	MaxBatch       int           // 500 commands
	Logger         *slog.Logger
}

// Server serves the API.
type Server struct {
	opt   Options
	token [32]byte
	mux   *http.ServeMux
}

// New builds a Server.
func New(opt Options) *Server {
	if opt.DefaultTimeout == 0 {
		opt.DefaultTimeout = 30 * time.Second
	}
	if opt.MaxTimeout == 0 {
		opt.MaxTimeout = 600 * time.Second
	}
	if opt.MaxBodyBytes == 0 {
		opt.MaxBodyBytes = 4 << 20
	}
	if opt.MaxBatch == 0 {
		opt.MaxBatch = 500
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opt: opt, mux: http.NewServeMux()}
	if opt.Token != "" {
		s.token = sha256.Sum256([]byte(opt.Token))
	}
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.HandleFunc("GET /meta", s.meta)
	s.mux.HandleFunc("POST /exec", s.exec)
	s.mux.HandleFunc("POST /exec_batch", s.execBatch)
	s.mux.HandleFunc("DELETE /sessions/{sandbox_id}", s.deleteSession)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"message": "Gull API is running"})
	})
	return s
}

// Handler returns the API with recovery, request ids, logging and auth.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 200 {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
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
			s.opt.Logger.ErrorContext(ctx, "panic serving request", "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			if sw.status == 0 {
				detail(sw, http.StatusInternalServerError, "Internal Server Error")
			}
		}
		level := slog.LevelInfo
		if r.URL.Path == "/health" {
			level = slog.LevelDebug
		}
		s.opt.Logger.Log(ctx, level, "request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000)
	}()
	if r.URL.Path != "/health" && !s.hasToken(r) {
		sw.Header().Set("WWW-Authenticate", "Bearer")
		msg := "Not authenticated"
		if r.Header.Get("Authorization") != "" || r.Header.Get("X-Ship-Token") != "" {
			msg = "Invalid token"
		}
		detail(sw, http.StatusUnauthorized, msg)
		return
	}
	r.Body = http.MaxBytesReader(sw, r.Body, s.opt.MaxBodyBytes)
	s.mux.ServeHTTP(sw, r)
}

func (s *Server) hasToken(r *http.Request) bool {
	if s.opt.Token == "" {
		return true
	}
	// X-Ship-Token carries it through proxies that take Authorization for
	// themselves (the Kubernetes API server's pod proxy), as for Ship.
	tok := r.Header.Get("X-Ship-Token")
	if tok == "" {
		var ok bool
		if tok, ok = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok {
			return false
		}
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	st := s.opt.Browser.Status()
	status := "healthy"
	if !st.Ready {
		status = "unhealthy" // no Chromium binary: nothing will work
	}
	var session any
	if st.Session != "" {
		session = st.Session
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": status, "browser_active": st.Active, "browser_ready": st.Ready,
		"session": session, "version": Version, "browser_restarts": st.Restarts})
}

func (s *Server) meta(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"runtime":         map[string]any{"name": "gull", "version": Version, "api_version": "v1"},
		"workspace":       map[string]string{"mount_path": s.opt.Workspace},
		"capabilities":    map[string]any{"browser": map[string]any{"version": "1.0"}},
		"built_in_skills": []any{},
	})
}

type execRequest struct {
	Cmd       *string  `json:"cmd"`
	SandboxID string   `json:"sandbox_id"`
	CargoID   string   `json:"cargo_id"`
	Timeout   *float64 `json:"timeout"`
}

type execResponse struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exit_code"`
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	var req execRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Cmd == nil {
		invalid(w, "cmd", "Field required: the command line, e.g. \"open http://ship:8000/\"")
		return
	}
	timeout, ok := s.timeout(w, req.Timeout)
	if !ok {
		return
	}
	res := s.opt.Browser.Exec(r.Context(), *req.Cmd, req.SandboxID, timeout)
	writeJSON(w, http.StatusOK, execResponse{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: res.ExitCode})
}

type batchRequest struct {
	Commands    []string `json:"commands"`
	Timeout     *float64 `json:"timeout"`
	StopOnError *bool    `json:"stop_on_error"`
	SandboxID   string   `json:"sandbox_id"`
	CargoID     string   `json:"cargo_id"`
}

type batchStep struct {
	Cmd        string `json:"cmd"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	ExitCode   int    `json:"exit_code"`
	StepIndex  int    `json:"step_index"`
	DurationMS int64  `json:"duration_ms"`
}

type batchResponse struct {
	Results        []batchStep `json:"results"`
	TotalSteps     int         `json:"total_steps"`
	CompletedSteps int         `json:"completed_steps"`
	Success        bool        `json:"success"`
	DurationMS     int64       `json:"duration_ms"`
}

// execBatch runs the commands in order within one timeout for the whole
// batch. With stop_on_error (the default) it stops after the first failing
// command. completed_steps counts the commands that ran; success is true
// when all of them ran and succeeded.
func (s *Server) execBatch(w http.ResponseWriter, r *http.Request) {
	var req batchRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Commands == nil {
		invalid(w, "commands", "Field required: a list of command lines")
		return
	}
	if len(req.Commands) == 0 {
		invalid(w, "commands", "List should have at least 1 item")
		return
	}
	if len(req.Commands) > s.opt.MaxBatch {
		invalid(w, "commands", fmt.Sprintf("List should have at most %d items", s.opt.MaxBatch))
		return
	}
	def := 60.0
	if req.Timeout == nil {
		req.Timeout = &def
	}
	timeout, ok := s.timeout(w, req.Timeout)
	if !ok {
		return
	}
	stop := req.StopOnError == nil || *req.StopOnError
	t0 := time.Now()
	deadline := t0.Add(timeout)
	resp := batchResponse{Results: []batchStep{}, TotalSteps: len(req.Commands), Success: true}
	for i, cmd := range req.Commands {
		left := time.Until(deadline)
		var res browser.Result
		st := time.Now()
		if left <= 0 {
			res = browser.Result{Stderr: fmt.Sprintf("Error: the batch's timeout (%s) ran out before this command started. Split the batch or raise the timeout", timeout), ExitCode: 124}
		} else {
			res = s.opt.Browser.Exec(r.Context(), cmd, req.SandboxID, left)
		}
		resp.Results = append(resp.Results, batchStep{Cmd: cmd, Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: res.ExitCode,
			StepIndex: i, DurationMS: time.Since(st).Milliseconds()})
		if res.ExitCode != 0 {
			resp.Success = false
			if stop {
				break
			}
		}
		if r.Context().Err() != nil {
			break
		}
	}
	resp.CompletedSteps = len(resp.Results)
	if resp.CompletedSteps < resp.TotalSteps {
		resp.Success = false
	}
	resp.DurationMS = time.Since(t0).Milliseconds()
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("sandbox_id")
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := s.opt.Browser.Close(ctx); err != nil {
		detail(w, http.StatusServiceUnavailable, "the browser is busy with a command; try again: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sandbox_id": id, "destroyed": true})
}

// timeout validates a timeout in seconds (nil → default).
func (s *Server) timeout(w http.ResponseWriter, v *float64) (time.Duration, bool) {
	if v == nil {
		return s.opt.DefaultTimeout, true
	}
	max := s.opt.MaxTimeout.Seconds()
	if math.IsNaN(*v) || *v <= 0 || *v > max {
		invalid(w, "timeout", fmt.Sprintf("timeout must be more than 0 and at most %g seconds", max))
		return 0, false
	}
	return time.Duration(*v * float64(time.Second)), true
}

func decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(dst); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			detail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large (limit %d bytes)", tooBig.Limit))
			return false
		}
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []map[string]any{{
			"type": "json_invalid", "loc": []any{"body"}, "msg": "JSON decode error: " + err.Error()}}})
		return false
	}
	return true
}

func invalid(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []map[string]any{{
		"type": "value_error", "loc": []any{"body", field}, "msg": msg}}})
}

func detail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"detail": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"detail":"Internal Server Error"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
