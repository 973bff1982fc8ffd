package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/preview"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/logctx"
)

// Port preview (issue 13 part 3): a server user code runs in the sandbox is
// reached through Bay at /v1/sandboxes/{id}/ports/{port}/..., authenticated
// like every route or with a signed URL token for that sandbox and port.
func (a *API) portRoutes() {
	a.handle("GET /v1/sandboxes/{id}/ports", a.authed(a.listPorts))
	// Token routes sit beside the port paths, not under them, so that an app's
	// own /token route stays reachable through the proxy.
	a.handle("POST /v1/sandboxes/{id}/ports/tokens", a.authed(a.createPortToken))
	a.handle("DELETE /v1/sandboxes/{id}/ports/tokens", a.authed(a.revokePortTokens))
	a.handle("/v1/sandboxes/{id}/ports/{port}", a.portNoSlash)
	a.handle("/v1/sandboxes/{id}/ports/{port}/{path...}", a.portProxy)
}

// previewTarget is a sandbox's running session as port preview needs it.
type previewTarget struct {
	host         string       // the container's address
	ship         string       // Ship's endpoint (for /ports)
	token        string       // Ship's per-session token (never sent to user code)
	runtimePorts map[int]bool // the runtimes' own ports: never proxied
	release      func()
}

var errPreviewOff = errs.New(errs.CapabilityNotSupported, "Port preview is not enabled on this Bay")

// previewResolve makes sure the sandbox's session runs (as a capability call
// does) and returns where its ports are. The caller calls release.
func (a *API) previewResolve(ctx context.Context, owner, id string, now time.Time) (*previewTarget, error) {
	sb, err := a.Store.GetSandbox(ctx, owner, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errs.New(errs.NotFound, "Resource not found")
		}
		return nil, err
	}
	return a.previewResolveSandbox(ctx, sb, now)
}

// previewResolveSandbox is previewResolve of a sandbox already read.
func (a *API) previewResolveSandbox(ctx context.Context, sb *model.Sandbox, now time.Time) (*previewTarget, error) {
	if sb.Expired(now) {
		return nil, errs.Newf(errs.SandboxExpired, "sandbox is expired").
			With(map[string]any{"sandbox_id": sb.ID, "expires_at": model.FormatTime(*sb.ExpiresAt)})
	}
	p, ok := a.Config.Profile(sb.ProfileID)
	sp := a.Capabilities.Profiles[sb.ProfileID]
	if !ok || sp == nil {
		return nil, errs.Newf(errs.CapabilityNotSupported, "Profile '%s' is not configured", sb.ProfileID)
	}
	ss, release, err := a.Capabilities.Sessions.EnsureRunning(ctx, sb.ID, sp, now)
	if err != nil {
		return nil, err
	}
	endpoint := ss.Endpoint
	if c, ok := p.ContainerFor("shell"); ok && len(ss.Containers) > 1 { // user code runs where shell does
		for _, ci := range ss.Containers {
			if ci.Name == c.Name {
				endpoint = ci.Endpoint
			}
		}
	}
	t := &previewTarget{ship: endpoint, token: ss.Token, runtimePorts: map[int]bool{a.Config.RuntimePort: true}, release: release}
	for _, c := range p.Containers {
		t.runtimePorts[c.RuntimePort] = true
	}
	u, err := url.Parse(endpoint)
	if err == nil && strings.Trim(u.Path, "/") != "" {
		// Ship behind a proxy (Kubernetes: the API server's pod proxy): the
		// endpoint's host is the proxy, never a host to dial other ports of.
		release()
		return nil, errs.New(errs.CapabilityNotSupported,
			"Port preview needs Bay to reach sandboxes by their address (driver.k8s.endpoint: pod_ip), not through the API server's pod proxy")
	}
	if err == nil {
		if n, perr := strconv.Atoi(u.Port()); perr == nil {
			t.runtimePorts[n] = true
		}
		t.host = u.Hostname()
	}
	if ip := net.ParseIP(t.host); ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		release()
		return nil, errs.New(errs.CapabilityNotSupported,
			"Port preview needs Bay to reach sandboxes by their container address (driver.docker.connect_mode: container_network, or auto with a sandbox network)")
	}
	return t, nil
}

func portPathError(err error) error {
	return errs.New(errs.Validation, "port must be a number from 1 to 65535").With(map[string]any{"field": "port"}).Wrap(err)
}

func shipPortError(port int) error {
	return errs.Newf(errs.Forbidden, "Port %d is the sandbox runtime's own port and cannot be previewed", port).
		With(map[string]any{"port": port})
}

// listPorts: GET /v1/sandboxes/{id}/ports.
func (a *API) listPorts(w http.ResponseWriter, r *http.Request, owner string) {
	t, err := a.previewResolve(r.Context(), owner, r.PathValue("id"), a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer t.release()
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.ship+"/ports", nil)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	req.Header.Set("X-Request-Id", w.Header().Get("X-Request-Id"))
	resp, err := a.Runtime.HTTP().Do(req)
	if err != nil {
		a.fail(w, r, errs.New(errs.ShipError, "Ship request error: could not list ports").Wrap(err))
		return
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		a.fail(w, r, errs.New(errs.CapabilityNotSupported, "This sandbox's runtime does not list ports (an older Ship image)"))
		return
	case resp.StatusCode != http.StatusOK:
		a.fail(w, r, errs.Newf(errs.ShipError, "Ship could not list ports (HTTP %d)", resp.StatusCode))
		return
	}
	var got struct {
		Ports []struct {
			Port      int    `json:"port"`
			Address   string `json:"address"`
			Reachable *bool  `json:"reachable"`
		} `json:"ports"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&got); err != nil {
		a.fail(w, r, errs.New(errs.ShipError, "Ship answered an unreadable port list").Wrap(err))
		return
	}
	type portView struct {
		Port      int    `json:"port"`
		Address   string `json:"address"`
		Reachable bool   `json:"reachable"`
		URL       string `json:"url"`
	}
	out := []portView{}
	id := r.PathValue("id")
	for _, p := range got.Ports {
		if p.Port < 1 || p.Port > 65535 || t.runtimePorts[p.Port] || len(out) >= 256 {
			continue
		}
		reach := p.Reachable == nil || *p.Reachable
		out = append(out, portView{Port: p.Port, Address: p.Address, Reachable: reach, URL: preview.PathPrefix(id, p.Port)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"ports": out})
}

// createPortToken: POST /v1/sandboxes/{id}/ports/tokens {"port": 8000, "ttl": 3600}.
func (a *API) createPortToken(w http.ResponseWriter, r *http.Request, owner string) {
	if a.Preview == nil {
		a.fail(w, r, errPreviewOff)
		return
	}
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	lo, hi := int64(1), int64(65535)
	port := b.integer("port", true, &lo, &hi)
	maxTTL := int64(a.Preview.MaxTTL / time.Second)
	ttl := b.integer("ttl", false, &lo, &maxTTL)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	ctx := r.Context()
	sb, err := a.Store.GetSandbox(ctx, owner, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = errs.New(errs.NotFound, "Resource not found")
		}
		a.fail(w, r, err)
		return
	}
	if a.isRuntimePort(sb, int(*port)) {
		a.fail(w, r, shipPortError(int(*port)))
		return
	}
	life := a.Preview.DefaultTTL
	if ttl != nil {
		life = time.Duration(*ttl) * time.Second
	}
	now := a.Now()
	tok, exp, err := a.Preview.Issue(ctx, sb.ID, int(*port), life, now)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	prefix := preview.PathPrefix(sb.ID, int(*port))
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "url": prefix + "?" + preview.TokenParam + "=" + url.QueryEscape(tok),
		"port": *port, "expires_at": model.FormatTime(exp)})
}

// isRuntimePort: the port a runtime of the sandbox's profile listens on.
func (a *API) isRuntimePort(sb *model.Sandbox, port int) bool {
	if port == a.Config.RuntimePort {
		return true
	}
	if p, ok := a.Config.Profile(sb.ProfileID); ok {
		for _, c := range p.Containers {
			if c.RuntimePort == port {
				return true
			}
		}
	}
	return false
}

// revokePortTokens: DELETE /v1/sandboxes/{id}/ports/tokens[?port=N] revokes
// every token of that port (without port: of all the sandbox's ports).
func (a *API) revokePortTokens(w http.ResponseWriter, r *http.Request, owner string) {
	if a.Preview == nil {
		a.fail(w, r, errPreviewOff)
		return
	}
	port := 0
	if q := r.URL.Query(); q.Has("port") {
		n, err := preview.ParsePort(q.Get("port"))
		if err != nil {
			a.fail(w, r, portPathError(err))
			return
		}
		port = n
	}
	ctx := r.Context()
	sb, err := a.Store.GetSandbox(ctx, owner, r.PathValue("id"))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = errs.New(errs.NotFound, "Resource not found")
		}
		a.fail(w, r, err)
		return
	}
	if err := a.Preview.Revoke(ctx, sb.ID, port); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// portNoSlash sends /ports/{port} to /ports/{port}/ (relative links of the
// app resolve under it).
func (a *API) portNoSlash(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		a.writeError(w, r, errs.New(errs.NotFound, "Resource not found"))
		return
	}
	port, err := preview.ParsePort(r.PathValue("port"))
	if err != nil {
		a.writeError(w, r, portPathError(err))
		return
	}
	loc := preview.PathPrefix(id, port)
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, loc, http.StatusPermanentRedirect)
}

// portProxy: ANY /v1/sandboxes/{id}/ports/{port}/{path...}.
func (a *API) portProxy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		a.writeError(w, r, errs.New(errs.NotFound, "Resource not found"))
		return
	}
	r = r.WithContext(logctx.WithSandboxID(r.Context(), id))
	ctx := r.Context()
	if a.Preview == nil {
		a.writeError(w, r, errPreviewOff)
		return
	}
	if r.Method == http.MethodConnect {
		writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	port, err := preview.ParsePort(r.PathValue("port"))
	if err != nil {
		a.writeError(w, r, portPathError(err))
		return
	}
	now := a.Now()
	var sb *model.Sandbox
	if tok, fromQuery := preview.RequestToken(r); tok != "" || fromQuery {
		c, err := a.Preview.Check(ctx, tok, id, port, now)
		if err != nil {
			a.writeError(w, r, tokenError(err))
			return
		}
		sb, err = a.Store.SandboxByID(ctx, id)
		if err != nil || sb.DeletedAt != nil {
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				a.writeError(w, r, err)
				return
			}
			a.writeError(w, r, errs.New(errs.NotFound, "Resource not found"))
			return
		}
		if fromQuery {
			http.SetCookie(w, preview.TokenCookie(tok, id, port, c.Expires, r.TLS != nil))
			// The page's URL carries the token: keep it out of Referer headers.
			w.Header().Set("Referrer-Policy", "no-referrer")
		}
	} else {
		owner, err := a.Auth.Owner(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if sb, err = a.Store.GetSandbox(ctx, owner, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = errs.New(errs.NotFound, "Resource not found")
			}
			a.writeError(w, r, err)
			return
		}
	}
	t, err := a.previewResolveSandbox(ctx, sb, now)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	// Like the terminal, a proxied request (a WebSocket or a stream may last
	// for hours) does not hold the session in use: it pushed the idle
	// deadline; idle GC and TTL expiry apply to it as to any client.
	t.release()
	if t.runtimePorts[port] {
		a.writeError(w, r, shipPortError(port))
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, a.Preview.MaxRequestBytes)
	}
	a.Preview.Proxy.Serve(w, r, &preview.Target{Host: t.host, Port: port, Prefix: preview.PathPrefix(id, port),
		OnError: func(w http.ResponseWriter, r *http.Request, err error) {
			a.writeError(w, r, upstreamError(port, err))
		}})
}

// tokenError maps a token failure: not ours → 401; ours but not for this
// request (another sandbox or port, revoked) → 403.
func tokenError(err error) error {
	switch {
	case errors.Is(err, preview.ErrExpired):
		return errs.New(errs.Unauthorized, "Preview token has expired")
	case errors.Is(err, preview.ErrRevoked):
		return errs.New(errs.Forbidden, "Preview token has been revoked")
	case errors.Is(err, preview.ErrWrongTarget):
		return errs.New(errs.Forbidden, "Preview token is not valid for this sandbox and port")
	case errors.Is(err, preview.ErrMalformed), errors.Is(err, preview.ErrBadSignature):
		return errs.New(errs.Unauthorized, "Preview token is invalid")
	}
	return err // the database: logged as internal
}

// upstreamError says what went wrong reaching the sandbox's server.
func upstreamError(port int, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errs.Newf(errs.TooLarge, "Request body too large (limit %d bytes)", mbe.Limit)
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return errs.Newf(errs.Timeout, "The server on port %d in the sandbox did not answer in time", port).Wrap(err)
	}
	return errs.Newf(errs.ShipError, "Nothing answered on port %d in the sandbox (is a server listening on 0.0.0.0:%d?)", port, port).
		With(map[string]any{"port": port}).Wrap(err)
}
