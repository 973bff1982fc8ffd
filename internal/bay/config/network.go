package config

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/shipyard/shipyard/internal/bay/egress"
)

// Egress modes of a profile's `network` key.
const (
	NetworkFull  = "full"  // default: outbound traffic as the engine routes it
	NetworkNone  = "none"  // no route out; Bay still reaches the runtime
	NetworkAllow = "allow" // only the Allow list, enforced outside the sandbox
)

// NetworkPolicy is a profile's egress policy (`network:`).
type NetworkPolicy struct {
	Mode  string   // full | none | allow
	Allow []string // mode allow: CIDRs, IP addresses, host names, *.wildcards (as written)
}

// networkYAML reads `network: full`, `network: none` or
// `network: {allow: [...]}`.
type networkYAML struct {
	Mode  string
	Allow []string
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (y *networkYAML) UnmarshalYAML(n *yaml.Node) error {
	const want = "must be full, none or {allow: [CIDRs and host names]}"
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != NetworkFull && n.Value != NetworkNone {
			return fmt.Errorf("%s (got %q)", want, n.Value)
		}
		y.Mode = n.Value
		return nil
	case yaml.MappingNode:
		if len(n.Content) != 2 || n.Content[0].Value != "allow" {
			return fmt.Errorf("%s: the only key of the mapping is allow", want)
		}
		var allow []string
		if err := n.Content[1].Decode(&allow); err != nil {
			return fmt.Errorf("allow: must be a list of CIDRs and host names (line %d)", n.Content[1].Line)
		}
		y.Mode, y.Allow = NetworkAllow, allow
		return nil
	default:
		return fmt.Errorf("%s (line %d)", want, n.Line)
	}
}

// networkPolicy resolves `network` and the legacy `no_network` (an alias of
// network: none) into p.Network and p.NoNetwork.
func (p *Profile) networkPolicy(y *networkYAML, noNetwork bool, bad func(key, format string, a ...any)) {
	p.Network = NetworkPolicy{Mode: NetworkFull}
	if y != nil {
		p.Network = NetworkPolicy{Mode: y.Mode, Allow: y.Allow}
	}
	if noNetwork {
		if y != nil && y.Mode != NetworkNone {
			bad("no_network", "true contradicts network: %s (no_network: true is network: none)", y.Mode)
		}
		p.Network = NetworkPolicy{Mode: NetworkNone}
	}
	p.NoNetwork = p.Network.Mode == NetworkNone
	if p.Network.Mode != NetworkAllow {
		return
	}
	if len(p.Network.Allow) == 0 {
		bad("network.allow", "empty: list CIDRs or host names, or use network: none")
	}
	if _, err := egress.Parse(p.Network.Allow); err != nil {
		bad("network", "%v", err)
	}
	if len(p.Containers) > 1 {
		bad("network", "allow lists are not supported on multi-container profiles yet (their containers share a session network)")
	}
}
