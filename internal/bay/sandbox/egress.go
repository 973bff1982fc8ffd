package sandbox

import (
	"fmt"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver"
)

// EgressEnforcer is a driver that enforces network: none and network:
// {allow: [...]} (InstanceSpec.NoNetwork and Egress) outside the instance.
type EgressEnforcer interface {
	EnforcesEgress() bool
}

// egressUnavailable names the profiles whose network policy the driver
// cannot enforce: such a profile must not start with more network than it
// promises.
func egressUnavailable(d any, cfg *config.Config) map[string]string {
	out := map[string]string{}
	if e, ok := driverAs[EgressEnforcer](d); ok && e.EnforcesEgress() {
		return out
	}
	for _, id := range cfg.ProfileOrder {
		if m := cfg.Profiles[id].Network.Mode; m == config.NetworkNone || m == config.NetworkAllow {
			out[id] = fmt.Sprintf("profile %s cannot start: this deployment's driver (%s) does not enforce network: %s", id, cfg.Driver.Type, m)
		}
	}
	return out
}

// driverAs finds the optional interface T on d or on a driver it wraps (a
// wrapper embedding driver.Driver does not pass on methods outside it).
func driverAs[T any](d any) (T, bool) {
	for {
		if t, ok := d.(T); ok {
			return t, true
		}
		u, ok := d.(interface{ Unwrap() driver.Driver })
		if !ok {
			var zero T
			return zero, false
		}
		d = u.Unwrap()
	}
}
