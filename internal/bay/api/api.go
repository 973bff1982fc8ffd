// Package api is Bay's HTTP surface: /v1 handlers, middleware (request id,
// auth, body limits, metrics, logging, panic recovery) and the one place that
// maps domain errors to HTTP.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shipyard/shipyard/internal/bay/auth"
	"github.com/shipyard/shipyard/internal/bay/browser"
	"github.com/shipyard/shipyard/internal/bay/capability"
	"github.com/shipyard/shipyard/internal/bay/cargo"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/idempotency"
	"github.com/shipyard/shipyard/internal/bay/preview"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/sandbox"
	"github.com/shipyard/shipyard/internal/bay/skills"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/tenant"
	"github.com/shipyard/shipyard/internal/logctx"
)

// Version is reported by /health.
const Version = "0.4.0"

// GC runs and reports garbage collection (the admin routes).
type GC interface {
	// Run runs one pass of the named tasks (all enabled when empty). ErrBusy when one is running.
	Run(ctx context.Context, tasks []string) (any, error)
	Status() any
}

// ErrGCBusy is returned by GC.Run while a pass is running (→ 423).
var ErrGCBusy = fmt.Errorf("gc busy")

// Health checks dependencies for /health.
type Health interface {
	Check(ctx context.Context) map[string]error
}

// Metrics observes HTTP requests (optional).
type Metrics interface {
	ObserveHTTP(method, route string, status int, d time.Duration)
	Handler() http.Handler
}

// Deps are the services behind the API.
type Deps struct {
	Config       *config.Config
	Store        *store.Store
	Auth         *auth.Authenticator
	Sandboxes    *sandbox.Service
	Capabilities *capability.Service
	Browser      *browser.Service // nil: no browser routes
	Cargos       *cargo.Service
	Skills       *skills.Service
	Idempotency  *idempotency.Guard
	Runtime      *runtime.Client
	Preview      *preview.Service // nil: port preview tokens and proxying are off
	Tenants      *tenant.Service  // admin API for keys and quotas
	RateLimit    *tenant.Limiter  // nil: no per-owner rate limit
	GC           GC               // optional
	Health       Health           // optional
	Metrics      Metrics          // optional
	Log          *slog.Logger
	Now          func() time.Time
	Started      time.Time
}

// API serves Bay's routes.
type API struct {
	Deps
	log *slog.Logger
	mux *http.ServeMux
	// patterns are the registered patterns, in order (the OpenAPI
	// conformance test compares them with the operations table).
	patterns []string
}

// New builds the handler.
func New(d Deps) http.Handler {
	if d.Now == nil {
		d.Now = func() time.Time { return time.Now().UTC() }
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	a := &API{Deps: d, log: d.Log, mux: http.NewServeMux()}
	a.routes()
	return a
}

type ctxKey int

const routeKey ctxKey = 0

func (a *API) handle(pattern string, h func(w http.ResponseWriter, r *http.Request)) {
	route := pattern
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		route = pattern[i+1:]
	}
	a.patterns = append(a.patterns, pattern)
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if rp, ok := r.Context().Value(routeKey).(*string); ok {
			*rp = route
		}
		h(w, r)
	})
}

// authed wraps a handler that needs an owner.
func (a *API) authed(h func(w http.ResponseWriter, r *http.Request, owner string)) func(http.ResponseWriter, *http.Request) {
	return a.identified(func(w http.ResponseWriter, r *http.Request, id auth.Identity) { h(w, r, id.Owner) })
}

// identified wraps a handler that needs to know who calls: it authenticates,
// applies the owner's rate limit and refuses ids no row can have.
func (a *API) identified(h func(w http.ResponseWriter, r *http.Request, id auth.Identity)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Auth.Identify(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if ok, wait := a.RateLimit.Allow(id.Owner, a.Now()); !ok {
			e := errs.New(errs.RateLimited, "Too many requests: this owner's rate limit is reached").
				With(map[string]any{"retry_after_ms": wait.Milliseconds()})
			e.RetryAfter = wait
			a.writeError(w, r, e)
			return
		}
		for _, name := range []string{"id", "cid", "eid"} {
			if v := r.PathValue(name); v != "" && !validID(v) {
				a.writeError(w, r, errs.New(errs.NotFound, "Resource not found"))
				return
			}
		}
		if sid := r.PathValue("id"); sid != "" {
			r = r.WithContext(logctx.WithSandboxID(r.Context(), sid))
		}
		h(w, r, id)
	}
}

// ownerOnly adapts a handler that needs only the owner.
func ownerOnly(h func(w http.ResponseWriter, r *http.Request, owner string)) func(http.ResponseWriter, *http.Request, auth.Identity) {
	return func(w http.ResponseWriter, r *http.Request, id auth.Identity) { h(w, r, id.Owner) }
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ServeHTTP is the middleware chain: request id → recovery → route → log/metrics.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := r.Header.Get("X-Request-Id")
	if rid == "" || len(rid) > 200 {
		rid = uuid.NewString()
	}
	w.Header().Set("X-Request-Id", rid)
	route := "unmatched"
	ctx := logctx.WithRequestID(r.Context(), rid)
	ctx = context.WithValue(ctx, routeKey, &route)
	r = r.WithContext(ctx)
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.log.ErrorContext(ctx, "panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if sw.status == 0 {
				a.writeError(sw, r, errs.New(errs.Internal, "Internal server error"))
			}
		}
		d := time.Since(start)
		if a.Metrics != nil {
			a.Metrics.ObserveHTTP(r.Method, route, sw.status, d)
		}
		lvl := slog.LevelInfo
		if route == "/health" || route == "/healthz" || route == "/metrics" {
			lvl = slog.LevelDebug
		}
		a.log.Log(ctx, lvl, "request", append(logAttrs(r), "route", route, "status", sw.status,
			"duration_ms", float64(d.Microseconds())/1000)...)
	}()
	if !canonicalPath(r) {
		// ServeMux would answer a plain-text redirect to the cleaned path;
		// FastAPI matches the raw path and answers 404.
		writeDetail(sw, http.StatusNotFound, "Not Found")
		return
	}
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.unmatched(sw, r)
		return
	}
	a.mux.ServeHTTP(sw, r)
}

// canonicalPath reports whether r's path is the one ServeMux routes without a
// redirect: rooted, no empty, "." or ".." segments (CONNECT is not cleaned).
func canonicalPath(r *http.Request) bool {
	p := r.URL.EscapedPath()
	if r.Method == http.MethodConnect {
		return true
	}
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

func (a *API) routes() {
	a.handle("GET /health", a.health)
	a.handle("GET /healthz", a.liveness)
	a.handle("GET /openapi.json", a.serveSpec)
	a.handle("GET /docs", a.serveDocs)
	if a.Metrics != nil {
		h := a.Metrics.Handler()
		a.handle("GET /metrics", h.ServeHTTP)
	}
	a.handle("GET /v1/profiles", a.listProfiles)

	a.handle("POST /v1/sandboxes", a.authed(a.createSandbox))
	a.handle("GET /v1/sandboxes", a.authed(a.listSandboxes))
	a.handle("GET /v1/sandboxes/{id}", a.authed(a.getSandbox))
	a.handle("DELETE /v1/sandboxes/{id}", a.authed(a.deleteSandbox))
	a.handle("POST /v1/sandboxes/{id}/extend_ttl", a.authed(a.extendTTL))
	a.handle("POST /v1/sandboxes/{id}/keepalive", a.authed(a.keepalive))
	a.handle("POST /v1/sandboxes/{id}/stop", a.authed(a.stopSandbox))

	a.handle("POST /v1/sandboxes/{id}/python/exec", a.authed(a.pythonExec))
	a.handle("POST /v1/sandboxes/{id}/shell/exec", a.authed(a.shellExec))
	a.handle("GET /v1/sandboxes/{id}/filesystem/files", a.authed(a.readFile))
	a.handle("PUT /v1/sandboxes/{id}/filesystem/files", a.authed(a.writeFile))
	a.handle("DELETE /v1/sandboxes/{id}/filesystem/files", a.authed(a.deleteFile))
	a.handle("GET /v1/sandboxes/{id}/filesystem/directories", a.authed(a.listDir))
	a.handle("POST /v1/sandboxes/{id}/filesystem/upload", a.authed(a.upload))
	a.handle("GET /v1/sandboxes/{id}/filesystem/download", a.authed(a.download))
	a.handle("GET /v1/sandboxes/{id}/terminal", a.authed(a.terminal))

	a.handle("GET /v1/sandboxes/{id}/history", a.authed(a.listHistory))
	a.handle("GET /v1/sandboxes/{id}/history/last", a.authed(a.lastHistory))
	a.handle("GET /v1/sandboxes/{id}/history/{eid}", a.authed(a.getHistory))
	a.handle("PATCH /v1/sandboxes/{id}/history/{eid}", a.authed(a.patchHistory))

	a.handle("POST /v1/cargos", a.authed(a.createCargo))
	a.handle("GET /v1/cargos", a.authed(a.listCargos))
	a.handle("GET /v1/cargos/{cid}", a.authed(a.getCargo))
	a.handle("DELETE /v1/cargos/{cid}", a.authed(a.deleteCargo))

	a.handle("POST /v1/admin/gc/run", a.admin(true, ownerOnly(a.gcRun)))
	a.handle("GET /v1/admin/gc/status", a.admin(true, ownerOnly(a.gcStatus)))
	a.adminKeyRoutes()
	a.mcpRoutes()
	a.portRoutes()
	a.processRoutes()
	if a.Browser != nil {
		a.browserRoutes()
	}

	a.handle("POST /v1/skills/payloads", a.authed(a.createSkillPayload))
	a.handle("GET /v1/skills/payloads/{payload_ref...}", a.authed(a.getSkillPayload))
	a.handle("POST /v1/skills/candidates", a.authed(a.createSkillCandidate))
	a.handle("GET /v1/skills/candidates", a.authed(a.listSkillCandidates))
	a.handle("GET /v1/skills/candidates/{candidate_id}", a.authed(a.getSkillCandidate))
	a.handle("DELETE /v1/skills/candidates/{candidate_id}", a.authed(a.deleteSkillCandidate))
	a.handle("POST /v1/skills/candidates/{candidate_id}/evaluate", a.authed(a.evaluateSkillCandidate))
	a.handle("POST /v1/skills/candidates/{candidate_id}/promote", a.authed(a.promoteSkillCandidate))
	a.handle("GET /v1/skills/releases", a.authed(a.listSkillReleases))
	a.handle("DELETE /v1/skills/releases/{release_id}", a.authed(a.deleteSkillRelease))
	a.handle("GET /v1/skills/releases/{release_id}/health", a.authed(a.skillReleaseHealth))
	a.handle("POST /v1/skills/releases/{release_id}/rollback", a.authed(a.rollbackSkillRelease))

}

// unmatched answers like FastAPI: 405 when another method has the path, else 404.
func (a *API) unmatched(w http.ResponseWriter, r *http.Request) {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := a.mux.Handler(probe); p != "" {
			writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
	}
	writeDetail(w, http.StatusNotFound, "Not Found")
}

// fail writes err: 422 validation lists in FastAPI's shape, everything else via writeError.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	if ve, ok := err.(*validationError); ok {
		writeDetail(w, http.StatusUnprocessableEntity, ve.list)
		return
	}
	a.writeError(w, r, err)
}
