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

// profileCheck is the start-up check of the profiles (UnavailableProfiles).
// It runs beside the rest of the start: the engine takes tens of
// milliseconds to list its runtimes (Docker's /info), which Bay's readiness
// need not wait for. Whoever asks about a profile waits for it instead.
type profileCheck struct {
	done chan struct{}
	m    map[string]string // set before done is closed
}

// CheckProfiles runs check, the start-up check, in the background; until it
// returns, asking whether a profile can start waits for it. wait returns once
// it has.
func (s *Service) CheckProfiles(check func() map[string]string) (wait func()) {
	c := &profileCheck{done: make(chan struct{})}
	s.check = c
	go func() {
		defer close(c.done)
		c.m = check()
	}()
	return func() { <-c.done }
}

// SetUnavailable records a check's result at once (see CheckProfiles).
func (s *Service) SetUnavailable(m map[string]string) {
	c := &profileCheck{done: make(chan struct{}), m: m}
	close(c.done)
	s.check = c
}

// Unavailable is why a profile cannot start on this deployment ("" = it
// can, or ctx ended before the start-up check did: a missing runtime then
// fails at create).
func (s *Service) Unavailable(ctx context.Context, profileID string) string {
	c := s.check
	if c == nil {
		return ""
	}
	select {
	case <-c.done:
		return c.m[profileID]
	case <-ctx.Done():
		return ""
	}
}

func (s *Service) checkAvailable(ctx context.Context, profileID string) error {
	if why := s.Unavailable(ctx, profileID); why != "" {
		return errs.New(errs.ProfileUnavailable, why).With(map[string]any{"profile": profileID})
	}
	return nil
}
