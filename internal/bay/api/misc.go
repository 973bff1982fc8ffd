package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/shipyard/shipyard/internal/bay/config"
)

// pyFloat marshals like Python: 1.0 stays "1.0".
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	s := strconv.FormatFloat(float64(f), 'f', -1, 64)
	for _, c := range s {
		if c == '.' || c == 'e' {
			return []byte(s), nil
		}
	}
	return []byte(s + ".0"), nil
}

type resourcesJSON struct {
	CPUs   pyFloat `json:"cpus"`
	Memory string  `json:"memory"`
}

type profileContainerJSON struct {
	Name         string        `json:"name"`
	RuntimeType  string        `json:"runtime_type"`
	Capabilities []string      `json:"capabilities"`
	Resources    resourcesJSON `json:"resources"`
}

type profileJSON struct {
	ID           string                 `json:"id"`
	Image        string                 `json:"image"`
	Resources    resourcesJSON          `json:"resources"`
	Capabilities []string               `json:"capabilities"`
	IdleTimeout  int                    `json:"idle_timeout"`
	Description  *string                `json:"description"`
	Containers   []profileContainerJSON `json:"containers"`
	// Ours (additive): the profile's OCI runtime ("" = the engine's default),
	// and whether this deployment can start it (false with the reason when,
	// say, its runtime is not installed).
	Runtime           string `json:"runtime,omitempty"`
	Available         bool   `json:"available"`
	UnavailableReason string `json:"unavailable_reason,omitempty"`
	// Ours (additive): the egress policy, "full", "none" or {"allow": [...]}.
	Network any `json:"network"`
}

func (a *API) listProfiles(w http.ResponseWriter, r *http.Request) {
	q := &query{v: r.URL.Query()}
	detail := q.boolean("detail")
	if err := q.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	items := []profileJSON{}
	for _, p := range a.Config.OrderedProfiles() {
		v := profileJSON{ID: p.ID, Image: p.Image, Resources: resources(p.Resources),
			Capabilities: p.Capabilities, IdleTimeout: p.IdleTimeoutSeconds, Runtime: p.Runtime,
			Network: networkJSON(p.Network)}
		v.UnavailableReason = a.Sandboxes.Unavailable(r.Context(), p.ID)
		v.Available = v.UnavailableReason == ""
		if detail != nil && *detail {
			d := p.Description
			v.Description = &d
			v.Containers = []profileContainerJSON{}
			for _, c := range p.Containers {
				caps := slices.Sorted(slices.Values(c.Capabilities))
				v.Containers = append(v.Containers, profileContainerJSON{Name: c.Name, RuntimeType: c.RuntimeType,
					Capabilities: caps, Resources: resources(c.Resources)})
			}
		}
		items = append(items, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func networkJSON(n config.NetworkPolicy) any {
	if n.Mode == config.NetworkAllow {
		return map[string][]string{"allow": n.Allow}
	}
	if n.Mode == "" {
		return config.NetworkFull
	}
	return n.Mode
}

func resources(r config.Resources) resourcesJSON {
	return resourcesJSON{CPUs: pyFloat(r.CPUs), Memory: r.Memory}
}

// health keeps upstream's {"status","version"} and adds dependency detail; 503 when one is down.
func (a *API) health(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{}
	status, code := "ok", http.StatusOK
	if a.Health != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		for name, err := range a.Health.Check(ctx) {
			if err != nil {
				// Details (socket paths, hosts) go to the log, not to this unauthenticated route.
				a.log.WarnContext(r.Context(), "health check failed", "dependency", name, "err", err)
				checks[name] = "unavailable"
				status, code = "degraded", http.StatusServiceUnavailable
			} else {
				checks[name] = "ok"
			}
		}
	}
	writeJSON(w, code, map[string]any{"status": status, "version": Version, "checks": checks,
		"uptime_seconds": int64(time.Since(a.Started).Seconds()),
		// Which deployment and which of its replicas answered (behind a load balancer).
		"instance_id": a.Config.GC.InstanceID, "replica_id": a.Config.Replica.ID})
}

// liveness answers without any I/O.
func (a *API) liveness(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) gcRun(w http.ResponseWriter, r *http.Request, owner string) {
	if a.GC == nil {
		writeDetail(w, http.StatusServiceUnavailable, "GC scheduler is not available")
		return
	}
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	tasks := b.strList("tasks")
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.GC.Run(r.Context(), tasks)
	if errors.Is(err, ErrGCBusy) {
		writeDetail(w, http.StatusLocked, "GC is already running. Please wait for the current cycle to complete.")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) gcStatus(w http.ResponseWriter, r *http.Request, owner string) {
	if a.GC == nil {
		writeDetail(w, http.StatusServiceUnavailable, "GC scheduler is not available")
		return
	}
	writeJSON(w, http.StatusOK, a.GC.Status())
}
