package api

import (
	"net/http"

	"github.com/shipyard/shipyard/internal/bay/auth"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/tenant"
)

// Tenant administration (ours): API keys and quotas per owner, under
// /v1/admin like GC, and like every /v1/admin route only for admin keys.

func (a *API) adminKeyRoutes() {
	a.handle("POST /v1/admin/keys", a.admin(false, a.mintKey))
	a.handle("GET /v1/admin/keys", a.admin(false, a.listKeys))
	a.handle("POST /v1/admin/keys/{key_id}/rotate", a.admin(false, a.rotateKey))
	a.handle("DELETE /v1/admin/keys/{key_id}", a.admin(false, a.revokeKey))
	a.handle("GET /v1/admin/quotas/{owner}", a.admin(false, a.getQuota))
	a.handle("PUT /v1/admin/quotas/{owner}", a.admin(false, a.putQuota))
	a.handle("DELETE /v1/admin/quotas/{owner}", a.admin(false, a.resetQuota))
}

// admin wraps an /v1/admin handler: it needs an admin key. anonymousOK lets
// anonymous requests (security.allow_anonymous) through as before tenants
// (the GC routes); key and quota management always needs a key.
func (a *API) admin(anonymousOK bool, h func(w http.ResponseWriter, r *http.Request, id auth.Identity)) func(http.ResponseWriter, *http.Request) {
	return a.identified(func(w http.ResponseWriter, r *http.Request, id auth.Identity) {
		if !id.Admin && !(anonymousOK && id.Anonymous) {
			msg := "This route needs an admin API key; tenant keys cannot use /v1/admin"
			if id.Anonymous {
				msg = "This route needs an admin API key (Authorization: Bearer <admin key>)"
			}
			a.writeError(w, r, errs.New(errs.AdminRequired, msg))
			return
		}
		h(w, r, id)
	})
}

// quotaError is the client's view of a quota refusal.
func (a *API) quotaError(qe *store.QuotaError) *errs.Error {
	e := errs.Newf(errs.QuotaExceeded, "Quota exceeded: %s is %d (in use: %d)", qe.Quota, qe.Limit, qe.Used).
		With(map[string]any{"quota": qe.Quota, "limit": qe.Limit, "used": qe.Used, "requested": qe.Requested})
	e.RetryAfter = a.Config.Quotas.RetryAfter()
	e.Err = qe
	return e
}

type keyJSON struct {
	ID          string  `json:"id"`
	Owner       string  `json:"owner"`
	Admin       bool    `json:"admin"`
	Prefix      string  `json:"prefix"`
	Label       string  `json:"label"`
	Active      bool    `json:"active"`
	CreatedAt   string  `json:"created_at"`
	RevokedAt   *string `json:"revoked_at"`
	RotatedFrom *string `json:"rotated_from"`
	// Key is the key itself: only in the answer that made it.
	Key string `json:"key,omitempty"`
}

func keyView(k *store.APIKey, secret string) keyJSON {
	v := keyJSON{ID: k.ID, Owner: k.Owner, Admin: k.Admin, Prefix: k.Prefix, Label: k.Label, Active: k.Active,
		CreatedAt: model.FormatTime(k.CreatedAt), Key: secret}
	if k.RevokedAt != nil {
		t := model.FormatTime(*k.RevokedAt)
		v.RevokedAt = &t
	}
	if k.RotatedFrom != "" {
		f := k.RotatedFrom
		v.RotatedFrom = &f
	}
	return v
}

// The key's secret is in these answers: no cache may keep them.
func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

func (a *API) mintKey(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	owner := b.text("owner", true)
	admin := b.boolean("admin", false)
	label := b.text("label", false)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	l := ""
	if label != nil {
		l = *label
	}
	k, secret, err := a.Tenants.Mint(r.Context(), *owner, admin, l)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	noStore(w)
	writeJSON(w, http.StatusCreated, keyView(k, secret))
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	q := &query{v: r.URL.Query()}
	limit := q.integer("limit", 50, 1, 200)
	cursor := q.id("cursor")
	owner := q.v.Get("owner")
	revoked := q.boolean("include_revoked")
	if err := q.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	keys, next, err := a.Tenants.List(r.Context(), owner, revoked != nil && *revoked, cursor, int(limit))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]keyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, keyView(k, ""))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "next_cursor": next})
}

func (a *API) keyID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("key_id")
	if !validID(id) {
		a.writeError(w, r, errs.New(errs.NotFound, "API key not found"))
		return "", false
	}
	return id, true
}

func (a *API) rotateKey(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	id, ok := a.keyID(w, r)
	if !ok {
		return
	}
	k, secret, err := a.Tenants.Rotate(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Auth.Forget() // the old key is refused here at once (other replicas: within a second)
	noStore(w)
	writeJSON(w, http.StatusCreated, keyView(k, secret))
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	id, ok := a.keyID(w, r)
	if !ok {
		return
	}
	k, err := a.Tenants.Revoke(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Auth.Forget() // refused here at once (other replicas: within a second)
	writeJSON(w, http.StatusOK, keyView(k, ""))
}

type limitsJSON struct {
	MaxSandboxes       int64 `json:"max_sandboxes"`
	MaxRunningSessions int64 `json:"max_running_sessions"`
	MaxCargos          int64 `json:"max_cargos"`
	MaxCargoMB         int64 `json:"max_cargo_mb"`
}

type overrideJSON struct {
	MaxSandboxes       *int64 `json:"max_sandboxes"`
	MaxRunningSessions *int64 `json:"max_running_sessions"`
	MaxCargos          *int64 `json:"max_cargos"`
	MaxCargoMB         *int64 `json:"max_cargo_mb"`
}

type usageJSON struct {
	Sandboxes       int64 `json:"sandboxes"`
	RunningSessions int64 `json:"running_sessions"`
	Cargos          int64 `json:"cargos"`
	CargoMB         int64 `json:"cargo_mb"`
}

func quotaView(q *tenant.Quota) map[string]any {
	l, o, u := q.Limits, q.Override, q.Usage
	return map[string]any{
		"owner":    q.Owner,
		"limits":   limitsJSON{l.Sandboxes, l.RunningSessions, l.Cargos, l.CargoMB},
		"override": overrideJSON{o.Sandboxes, o.RunningSessions, o.Cargos, o.CargoMB},
		"usage":    usageJSON{u.Sandboxes, u.RunningSessions, u.Cargos, u.CargoMB},
	}
}

func (a *API) getQuota(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	q, err := a.Tenants.Quota(r.Context(), r.PathValue("owner"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, quotaView(q))
}

// putQuota replaces the owner's stored override: each limit an integer >= 0
// (0 = unlimited), or null/absent to inherit the configured value.
func (a *API) putQuota(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	zero := int64(0)
	o := store.Override{
		Sandboxes:       b.integer(store.QuotaSandboxes, false, &zero, nil),
		RunningSessions: b.integer(store.QuotaRunningSessions, false, &zero, nil),
		Cargos:          b.integer(store.QuotaCargos, false, &zero, nil),
		CargoMB:         b.integer(store.QuotaCargoMB, false, &zero, nil),
	}
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	q, err := a.Tenants.SetQuota(r.Context(), r.PathValue("owner"), o)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, quotaView(q))
}

func (a *API) resetQuota(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	q, err := a.Tenants.ResetQuota(r.Context(), r.PathValue("owner"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, quotaView(q))
}
