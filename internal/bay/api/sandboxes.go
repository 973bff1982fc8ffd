package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/shipyard/shipyard/internal/bay/idempotency"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/sandbox"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// sandboxJSON is upstream's Sandbox (fields in upstream order); the shape is
// the one the Go SDK decodes.
type sandboxJSON = wire.Sandbox

type containerJSON = wire.Container

func timePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := model.FormatTime(*t)
	return &s
}

func (a *API) sandboxView(sb *model.Sandbox, ss *model.Session, now time.Time) sandboxJSON {
	caps := []string{}
	if p, ok := a.Config.Profile(sb.ProfileID); ok {
		caps = p.Capabilities
	}
	return sandboxJSON{ID: sb.ID, Status: sb.Status(now, ss), Profile: sb.ProfileID, CargoID: sb.CargoID,
		Capabilities: caps, CreatedAt: model.FormatTime(sb.CreatedAt), ExpiresAt: timePtr(sb.ExpiresAt),
		IdleExpiresAt: timePtr(sb.IdleExpiresAt)}
}

func (a *API) createSandbox(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	profile := b.str("profile", false)
	cargoID := b.str("cargo_id", false)
	if cargoID != nil && !validID(*cargoID) {
		b.fail("value_error", "cargo_id", fmt.Sprintf("Value error, must be at most %d printable characters", maxIDLen), *cargoID, nil)
	}
	ttl := b.integer("ttl", false, &minTTL, &maxTTL)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	req := struct {
		Profile string  `json:"profile"`
		CargoID *string `json:"cargo_id"`
		TTL     *int64  `json:"ttl"`
	}{Profile: "python-default", CargoID: cargoID, TTL: ttl}
	if profile != nil {
		req.Profile = *profile
	}
	now := a.Now()
	fp := idempotency.Fingerprint("POST", "/v1/sandboxes", encode(req))
	resp, err := a.Idempotency.Do(r.Context(), owner, r.Header.Get("Idempotency-Key"), fp, now, func() (idempotency.Response, error) {
		var ttlp *int
		if req.TTL != nil {
			t := int(*req.TTL)
			ttlp = &t
		}
		sb, err := a.Sandboxes.Create(r.Context(), owner, sandbox.CreateRequest{Profile: req.Profile, CargoID: req.CargoID, TTL: ttlp}, now)
		if u, ok := errors.AsType[*store.UncertainError](err); ok { // the database went away during the commit
			return idempotency.Response{}, idempotency.Uncertain(err, func(ctx context.Context) (idempotency.Response, bool, error) {
				sb, err := a.Sandboxes.Resolve(ctx, owner, u.ID, now)
				if err != nil || sb == nil {
					return idempotency.Response{}, false, err
				}
				ss, _ := a.Sandboxes.Sessions.Current(ctx, sb)
				return idempotency.Response{Status: http.StatusCreated, Body: encode(a.sandboxView(sb, ss, now))}, true, nil
			}, func(ctx context.Context) error { return a.Sandboxes.Delete(ctx, owner, u.ID, now) })
		}
		if err != nil {
			return idempotency.Response{}, err
		}
		ss, _ := a.Sandboxes.Sessions.Current(r.Context(), sb)
		return idempotency.Response{Status: http.StatusCreated, Body: encode(a.sandboxView(sb, ss, now))}, nil
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeRaw(w, resp.Status, resp.Body)
}

func (a *API) listSandboxes(w http.ResponseWriter, r *http.Request, owner string) {
	q := &query{v: r.URL.Query()}
	limit := q.integer("limit", 50, 1, 200)
	cursor := q.id("cursor")
	status := q.v.Get("status")
	if q.v.Has("status") && !validStatus[status] {
		q.errs = append(q.errs, fieldError{Type: "enum", Loc: []any{"query", "status"},
			Msg: "Input should be 'idle', 'starting', 'ready', 'failed', 'expired' or 'deleted'", Input: status,
			Ctx: map[string]any{"expected": "'idle', 'starting', 'ready', 'failed', 'expired' or 'deleted'"}})
	}
	if err := q.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	now := a.Now()
	items, next, err := a.Sandboxes.List(r.Context(), owner, cursor, int(limit), status, now)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]sandboxJSON, 0, len(items))
	for _, it := range items {
		out = append(out, a.sandboxView(it.Sandbox, it.Session, now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "next_cursor": next})
}

var validStatus = map[string]bool{model.StatusIdle: true, model.StatusStarting: true, model.StatusReady: true,
	model.StatusFailed: true, model.StatusExpired: true, model.StatusDeleted: true}

func (a *API) getSandbox(w http.ResponseWriter, r *http.Request, owner string) {
	now := a.Now()
	sb, ss, err := a.Sandboxes.Get(r.Context(), owner, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v := a.sandboxView(sb, ss, now)
	if ss != nil && ss.ObservedState == model.SessionRunning && ss.Endpoint != "" {
		v.Containers = a.probeContainers(r.Context(), ss)
	}
	writeJSON(w, http.StatusOK, v)
}

// probeContainers asks each runtime for its version and health, concurrently, within 2 s.
func (a *API) probeContainers(ctx context.Context, ss *model.Session) []containerJSON {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	infos := ss.Containers
	single := len(infos) <= 1
	if len(infos) == 0 {
		infos = []model.ContainerInfo{{Name: "ship", RuntimeType: "ship", Endpoint: ss.Endpoint}}
	}
	out := make([]containerJSON, len(infos))
	var wg sync.WaitGroup
	for i, c := range infos {
		rt := c.RuntimeType
		if rt == "" {
			rt = "ship"
		}
		out[i] = containerJSON{Name: c.Name, RuntimeType: rt, Status: "running", Capabilities: c.Capabilities}
		if single {
			out[i].Name, out[i].Capabilities = rt, []string{}
		}
		if out[i].Capabilities == nil {
			out[i].Capabilities = []string{}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := runtime.Target{Endpoint: c.Endpoint, Token: ss.Token}
			if m, err := a.Runtime.Meta(ctx, t); err == nil && m.Runtime.Version != "" {
				v := m.Runtime.Version
				out[i].Version = &v
			}
			if ctx.Err() == nil {
				h := a.Runtime.Healthy(ctx, t, 2*time.Second)
				out[i].Healthy = &h
			}
		}()
	}
	wg.Wait()
	return out
}

func (a *API) deleteSandbox(w http.ResponseWriter, r *http.Request, owner string) {
	var shared *model.Sandbox // its session in the shared browser service ends with it
	if a.Browser != nil && a.Config.BrowserService.Enabled {
		shared, _ = a.Store.GetSandbox(r.Context(), owner, r.PathValue("id"))
	}
	if err := a.Sandboxes.Delete(r.Context(), owner, r.PathValue("id"), a.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	if shared != nil {
		a.Browser.ForgetShared(r.Context(), shared)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) extendTTL(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	by := b.integer("extend_by", true, nil, &maxTTL) // <= 0 is upstream's 400, from the service
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	now := a.Now()
	fp := idempotency.Fingerprint("POST", "/v1/sandboxes/"+id+"/extend_ttl", encode(map[string]int64{"extend_by": *by}))
	resp, err := a.Idempotency.Do(r.Context(), owner, r.Header.Get("Idempotency-Key"), fp, now, func() (idempotency.Response, error) {
		sb, err := a.Sandboxes.ExtendTTL(r.Context(), owner, id, int(*by), now)
		if err != nil {
			return idempotency.Response{}, err
		}
		ss, _ := a.Sandboxes.Sessions.Current(r.Context(), sb)
		return idempotency.Response{Status: http.StatusOK, Body: encode(a.sandboxView(sb, ss, now))}, nil
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeRaw(w, resp.Status, resp.Body)
}

func (a *API) keepalive(w http.ResponseWriter, r *http.Request, owner string) {
	if err := a.Sandboxes.Keepalive(r.Context(), owner, r.PathValue("id"), a.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) stopSandbox(w http.ResponseWriter, r *http.Request, owner string) {
	if err := a.Sandboxes.Stop(r.Context(), owner, r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "stopped"})
}
