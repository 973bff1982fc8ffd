package sandbox

import (
	"context"
	"fmt"
	"slices"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/errs"
)

// RuntimeLister is a driver that can name the OCI runtimes its engine has.
type RuntimeLister interface {
	Runtimes(ctx context.Context) ([]string, error)
}

// MissingRuntimeExplainer is a RuntimeLister that says in its own terms why
// a profile whose runtime it lacks cannot start (Kubernetes: RuntimeClasses).
type MissingRuntimeExplainer interface {
	MissingRuntime(profile, runtime string, have []string) string
}

// UnavailableProfiles checks once, at start-up, that the OCI runtime of every
// profile exists, and returns why each profile that names a missing one cannot
// start (keyed by profile id). A driver that cannot list runtimes, or an
// engine that does not answer, gives an empty result and the error: the
// profiles are then tried, and a missing runtime fails at create. A profile
// whose network policy (none, allow) the driver does not enforce is
// unavailable too.
func UnavailableProfiles(ctx context.Context, d any, cfg *config.Config) (map[string]string, error) {
	out := egressUnavailable(d, cfg)
	rl, ok := driverAs[RuntimeLister](d)
	if !ok {
		return out, nil
	}
	var have []string
	for _, id := range cfg.ProfileOrder {
		p := cfg.Profiles[id]
		if p.Runtime == "" {
			continue
		}
		if have == nil {
			rts, err := rl.Runtimes(ctx)
			if err != nil {
				return out, fmt.Errorf("listing the engine's OCI runtimes: %w", err)
			}
			have = rts
		}
		if !slices.Contains(have, p.Runtime) && out[id] == "" {
			if ex, ok := rl.(MissingRuntimeExplainer); ok {
				out[id] = ex.MissingRuntime(id, p.Runtime, have)
				continue
			}
			out[id] = fmt.Sprintf("profile %s cannot start: its OCI runtime %q is not registered in the container engine (it has %v); "+
				"for gVisor run scripts/ensure-runsc.sh (make run does) or remove the profile", id, p.Runtime, have)
		}
	}
	return out, nil
}

// Unavailable is why a profile cannot start on this deployment ("" = it can).
func (s *Service) Unavailable(profileID string) string {
	return s.unavailable[profileID]
}

// SetUnavailable records the start-up check's result (see UnavailableProfiles).
func (s *Service) SetUnavailable(m map[string]string) { s.unavailable = m }

func (s *Service) checkAvailable(profileID string) error {
	if why := s.unavailable[profileID]; why != "" {
		return errs.New(errs.ProfileUnavailable, why).With(map[string]any{"profile": profileID})
	}
	return nil
}
