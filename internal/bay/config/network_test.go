package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestProfileNetwork(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       NetworkPolicy
		noNetwork  bool
		wantErr    string
	}{
		{name: "default", yaml: `{id: p}`, want: NetworkPolicy{Mode: NetworkFull}},
		{name: "full", yaml: `{id: p, network: full}`, want: NetworkPolicy{Mode: NetworkFull}},
		{name: "none", yaml: `{id: p, network: none}`, want: NetworkPolicy{Mode: NetworkNone}, noNetwork: true},
		{name: "no_network alias", yaml: `{id: p, no_network: true}`, want: NetworkPolicy{Mode: NetworkNone}, noNetwork: true},
		{name: "no_network with none", yaml: `{id: p, no_network: true, network: none}`, want: NetworkPolicy{Mode: NetworkNone}, noNetwork: true},
		{name: "no_network false", yaml: `{id: p, no_network: false, network: full}`, want: NetworkPolicy{Mode: NetworkFull}},
		{name: "allow", yaml: `{id: p, network: {allow: ["10.1.2.0/24", pypi.internal.example, "*.example.org"]}}`,
			want: NetworkPolicy{Mode: NetworkAllow, Allow: []string{"10.1.2.0/24", "pypi.internal.example", "*.example.org"}}},
		{name: "null keeps default", yaml: `{id: p, network: null}`, want: NetworkPolicy{Mode: NetworkFull}},
		{name: "unknown mode", yaml: `{id: p, network: open}`, wantErr: `profiles[0].network: must be full, none or {allow: [CIDRs and host names]} (got "open")`},
		{name: "other key", yaml: `{id: p, network: {deny: [x.test]}}`, wantErr: "the only key of the mapping is allow"},
		{name: "allow not a list", yaml: `{id: p, network: {allow: x.test}}`, wantErr: "allow: must be a list"},
		{name: "allow empty", yaml: `{id: p, network: {allow: []}}`, wantErr: "profiles[0](p).network.allow: empty"},
		{name: "bad entry", yaml: `{id: p, network: {allow: [x.test, "not a host"]}}`, wantErr: `profiles[0](p).network: allow[1]: "not a host" is neither a CIDR`},
		{name: "bad cidr", yaml: `{id: p, network: {allow: ["10.0.0.0/40"]}}`, wantErr: "not a CIDR"},
		{name: "list", yaml: `{id: p, network: [x.test]}`, wantErr: "must be full, none or"},
		{name: "contradiction", yaml: `{id: p, no_network: true, network: {allow: [x.test]}}`, wantErr: "no_network: true contradicts network: allow"},
		{name: "multi-container allow", yaml: `{id: p, network: {allow: [x.test]}, containers: [{name: a, image: a}, {name: b, image: b}]}`,
			wantErr: "not supported on multi-container profiles"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadYAML(t, "profiles:\n  - "+tc.yaml+"\n", nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := c.Profiles["p"]
			if !reflect.DeepEqual(p.Network, tc.want) || p.NoNetwork != tc.noNetwork {
				t.Fatalf("network %+v no_network %v, want %+v %v", p.Network, p.NoNetwork, tc.want, tc.noNetwork)
			}
		})
	}
}

// BAY_PROFILES (JSON) takes the same shapes.
func TestProfileNetworkFromEnv(t *testing.T) {
	env := EnvLookup([]string{`BAY_PROFILES=[{"id":"p","network":{"allow":["10.0.0.0/8"]}},{"id":"q","network":"none"}]`})
	c, err := loadYAML(t, "", env)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Profiles["p"].Network; !reflect.DeepEqual(got, NetworkPolicy{Mode: NetworkAllow, Allow: []string{"10.0.0.0/8"}}) {
		t.Errorf("p: %+v", got)
	}
	if q := c.Profiles["q"]; q.Network.Mode != NetworkNone || !q.NoNetwork {
		t.Errorf("q: %+v", q.Network)
	}
}
