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
