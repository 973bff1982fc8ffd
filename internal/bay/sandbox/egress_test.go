package sandbox

import (
	"reflect"
	"testing"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver"
)

// A profile's network policy reaches the session (and so every instance
// spec) and the driver's start-up list; full and none carry no allow policy.
func TestEgressOfProfiles(t *testing.T) {
	cfg := config.Default()
	allow := &config.Profile{ID: "locked", Network: config.NetworkPolicy{Mode: config.NetworkAllow, Allow: []string{"10.1.2.0/24", "x.test"}},
		Containers: []config.ContainerSpec{{Name: "primary", Image: "ship:latest"}}}
	none := &config.Profile{ID: "offline", NoNetwork: true, Network: config.NetworkPolicy{Mode: config.NetworkNone},
		Containers: []config.ContainerSpec{{Name: "primary", Image: "ship:latest"}}}
	cfg.Profiles[allow.ID], cfg.Profiles[none.ID] = allow, none
	cfg.ProfileOrder = append(cfg.ProfileOrder, allow.ID, none.ID)

	want := &driver.Egress{Policy: "locked", Allow: []string{"10.1.2.0/24", "x.test"}}
	if sp := SessionProfile(cfg, allow); !reflect.DeepEqual(sp.Egress, want) || sp.NoNetwork {
		t.Errorf("allow profile: egress %+v no_network %v", sp.Egress, sp.NoNetwork)
	}
	if sp := SessionProfile(cfg, none); sp.Egress != nil || !sp.NoNetwork {
		t.Errorf("none profile: egress %+v no_network %v", sp.Egress, sp.NoNetwork)
	}
	def, _ := cfg.Profile("python-default")
	if sp := SessionProfile(cfg, def); sp.Egress != nil || sp.NoNetwork {
		t.Errorf("default profile: egress %+v no_network %v", sp.Egress, sp.NoNetwork)
	}
	if got := EgressPolicies(cfg); !reflect.DeepEqual(got, []driver.Egress{*want}) {
		t.Errorf("EgressPolicies = %+v", got)
	}
}

type plainDriver struct{ driver.Driver }

type enforcing struct{ driver.Driver }

func (enforcing) EnforcesEgress() bool { return true }

type wrapped struct{ driver.Driver }

func (w wrapped) Unwrap() driver.Driver { return w.Driver }

// A driver that does not enforce egress policies leaves profiles with none or
// allow unavailable (never started with more network than promised); one
// that does, found through wrappers, leaves them all available.
func TestEgressUnavailable(t *testing.T) {
	cfg := config.Default()
	for id, n := range map[string]config.NetworkPolicy{"locked": {Mode: config.NetworkAllow, Allow: []string{"x.test"}}, "offline": {Mode: config.NetworkNone}} {
		cfg.Profiles[id] = &config.Profile{ID: id, Network: n}
		cfg.ProfileOrder = append(cfg.ProfileOrder, id)
	}
	got, err := UnavailableProfiles(t.Context(), plainDriver{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["locked"] == "" || got["offline"] == "" {
		t.Errorf("plain driver: unavailable %v, want locked and offline", got)
	}
	for _, d := range []any{enforcing{}, wrapped{enforcing{}}} {
		if got := egressUnavailable(d, cfg); len(got) != 0 {
			t.Errorf("%T: unavailable %v", d, got)
		}
	}
}
