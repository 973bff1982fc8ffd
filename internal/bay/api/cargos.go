package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/shipyard/shipyard/internal/bay/idempotency"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// cargoJSON is upstream's Cargo plus size_limit_enforced (ours, additive:
// whether the backend holds the volume to size_limit_mb; Docker's local
// volumes cannot, docs/security.md); the shape is the one the Go SDK decodes.
type cargoJSON = wire.Cargo

func cargoView(c *model.Cargo) cargoJSON {
	v := cargoJSON{ID: c.ID, Managed: c.Managed, Backend: c.Backend, SizeLimitMB: c.SizeLimitMB,
		CreatedAt: model.FormatTime(c.CreatedAt), LastAccessedAt: model.FormatTime(c.LastAccessedAt)}
	if c.ManagedBySandboxID != "" {
		id := c.ManagedBySandboxID
		v.ManagedBySandboxID = &id
	}
	return v
}

func (a *API) createCargo(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, true) // upstream SDK sends no body without a size
	if err != nil {
		a.fail(w, r, err)
		return
	}
	size := b.integer("size_limit_mb", false, &minCargoMB, &maxCargoMB)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	mb := a.Config.Cargo.DefaultSizeLimitMB
	if size != nil {
		mb = int(*size)
	}
	now := a.Now()
	fp := idempotency.Fingerprint("POST", r.URL.Path, encode(map[string]*int64{"size_limit_mb": size}))
	resp, err := a.Idempotency.Do(r.Context(), owner, r.Header.Get("Idempotency-Key"), fp, now, func() (idempotency.Response, error) {
		c, err := a.Cargos.Create(r.Context(), owner, mb, now)
		if u, ok := errors.AsType[*store.UncertainError](err); ok { // the database went away during the commit
			return idempotency.Response{}, idempotency.Uncertain(err, func(ctx context.Context) (idempotency.Response, bool, error) {
				c, err := a.Cargos.Resolve(ctx, owner, u.ID)
				if err != nil || c == nil {
					return idempotency.Response{}, false, err
				}
				return idempotency.Response{Status: http.StatusCreated, Body: encode(cargoView(c))}, true, nil
			}, func(ctx context.Context) error { return a.Cargos.Delete(ctx, owner, u.ID) })
		}
		if err != nil {
			return idempotency.Response{}, err
		}
		return idempotency.Response{Status: http.StatusCreated, Body: encode(cargoView(c))}, nil
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeRaw(w, resp.Status, resp.Body)
}

func (a *API) listCargos(w http.ResponseWriter, r *http.Request, owner string) {
	q := &query{v: r.URL.Query()}
	limit := q.integer("limit", 50, 1, 200)
	managed := q.boolean("managed")
	cursor := q.id("cursor")
	if err := q.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	rows, next, err := a.Cargos.List(r.Context(), owner, managed != nil && *managed, cursor, int(limit))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	items := make([]cargoJSON, 0, len(rows))
	for _, c := range rows {
		items = append(items, cargoView(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
}

func (a *API) getCargo(w http.ResponseWriter, r *http.Request, owner string) {
	c, err := a.Cargos.Get(r.Context(), owner, r.PathValue("cid"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cargoView(c))
}

func (a *API) deleteCargo(w http.ResponseWriter, r *http.Request, owner string) {
	if err := a.Cargos.Delete(r.Context(), owner, r.PathValue("cid")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
