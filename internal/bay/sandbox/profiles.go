package sandbox

import (
	"maps"
	"slices"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/session"
)

// SessionProfile turns a config profile into what a session is started from,
// once at start-up.
func SessionProfile(cfg *config.Config, p *config.Profile) *session.Profile {
	sp := &session.Profile{
		ID:          p.ID,
		ProfileEnv:  maps.Clone(p.Env),
		IdleTimeout: p.IdleTimeout(),
		Runtime:     p.Runtime,
		NoNetwork:   p.NoNetwork,
		Egress:      egressOf(p),
	}
	primary := p.Primary()
	add := func(c *config.ContainerSpec) {
		env := map[string]string{}
		maps.Copy(env, p.Env)
		maps.Copy(env, c.Env)
		maps.Copy(env, cfg.ProxyFor(p, c).Env())
		sp.Containers = append(sp.Containers, session.ContainerSpec{
			Name: c.Name, Image: c.Image, RuntimeType: c.RuntimeType, Port: c.RuntimePort, Env: env,
			Resources: driver.Resources{
				NanoCPUs: c.Resources.NanoCPUs(), MemoryBytes: c.Resources.MemoryBytes, PidsLimit: int64(p.PidsLimit),
			},
			Capabilities: c.Capabilities, PrimaryFor: c.PrimaryFor,
		})
	}
	add(primary)
	for i := range p.Containers {
		if &p.Containers[i] != primary {
			add(&p.Containers[i])
		}
	}
	return sp
}

// egressOf is the driver's view of a profile's allow policy (nil unless the
// profile has network: {allow: [...]}): the profile id names the policy.
func egressOf(p *config.Profile) *driver.Egress {
	if p.Network.Mode != config.NetworkAllow {
		return nil
	}
	return &driver.Egress{Policy: p.ID, Allow: slices.Clone(p.Network.Allow)}
}

// EgressPolicies lists the allow policies of the configured profiles, for a
// driver to ready at start-up (so sandboxes that outlive a restart keep their DNS).
func EgressPolicies(cfg *config.Config) []driver.Egress {
	var out []driver.Egress
	for _, p := range cfg.OrderedProfiles() {
		if e := egressOf(p); e != nil {
			out = append(out, *e)
		}
	}
	return out
}
