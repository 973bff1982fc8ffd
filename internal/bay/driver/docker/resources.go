package docker

import (
	"context"
	"fmt"
	"slices"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// CreateVolume creates a named local volume with labels; an existing volume of
// that name is left as it is.
func (d *Driver) CreateVolume(ctx context.Context, name string, labels map[string]string, _ int) error {
	if name == "" {
		return fmt.Errorf("docker: create volume: empty name")
	}
	_, err := d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: "local", Labels: labels})
	if err != nil && !cerrdefs.IsConflict(err) {
		return wrap("create volume", name, err)
	}
	return nil
}

// DeleteVolume removes a volume. Missing → nil; still mounted by a container →
// an error wrapping driver.ErrInUse.
func (d *Driver) DeleteVolume(ctx context.Context, name string) error {
	err := d.cli.VolumeRemove(ctx, name, false)
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("docker: remove volume %s: %w: %w", name, driver.ErrInUse, err)
	default:
		return wrap("remove volume", name, err)
	}
}

// ListVolumes returns the names of the volumes carrying all the given labels, sorted.
func (d *Driver) ListVolumes(ctx context.Context, labels map[string]string) ([]string, error) {
	resp, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("docker: list volumes: %w", err)
	}
	names := make([]string, 0, len(resp.Volumes))
	for _, v := range resp.Volumes {
		names = append(names, v.Name)
	}
	slices.Sort(names)
	return names, nil
}

// CreateNetwork creates a bridge network with labels; an existing network of
// that name is left as it is.
func (d *Driver) CreateNetwork(ctx context.Context, name string, labels map[string]string) error {
	if name == "" {
		return fmt.Errorf("docker: create network: empty name")
	}
	exists, err := d.networkExists(ctx, name)
	if err != nil || exists {
		return err
	}
	// Run to its end like a container's create (Create): the engine finishes
	// it after a client that went away, and nobody would remove the network.
	if err := ctx.Err(); err != nil {
		return wrap("create network", name, err)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	resp, err := d.cli.NetworkCreate(cctx, name, network.CreateOptions{Driver: "bridge", Labels: labels,
		Options: map[string]string{bridgeNameOption: bridgeName(name)}})
	cancel()
	if err == nil && ctx.Err() != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if rerr := d.cli.NetworkRemove(rctx, resp.ID); rerr != nil && !cerrdefs.IsNotFound(rerr) {
			d.log.WarnContext(ctx, "cleanup of a cut-off network create failed", "network", name, "err", rerr)
		}
		err = context.Cause(ctx)
	}
	if err != nil && !cerrdefs.IsConflict(err) { // conflict: created meanwhile
		return wrap("create network", name, err)
	}
	return nil
}

// DeleteNetwork removes a network. Missing → nil; containers still attached →
// an error wrapping driver.ErrInUse.
func (d *Driver) DeleteNetwork(ctx context.Context, name string) error {
	err := d.cli.NetworkRemove(ctx, name)
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err), cerrdefs.IsPermissionDenied(err): // "has active endpoints" is 403
		return fmt.Errorf("docker: remove network %s: %w: %w", name, driver.ErrInUse, err)
	default:
		return wrap("remove network", name, err)
	}
}

// networkExists reports whether a network of exactly that name (or id) exists.
func (d *Driver) networkExists(ctx context.Context, name string) (bool, error) {
	n, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, wrap("inspect network", name, err)
	}
	return n.Name == name || n.ID == name, nil
}

// networksFor chooses the network of a new container: the container's primary
// network (its NetworkMode, "" = default bridge) and an extra network to
// connect it to after create (API 1.41 creates with one network only).
func (d *Driver) networksFor(ctx context.Context, spec InstanceSpec) (primary, extra string, err error) {
	if spec.NoNetwork {
		if spec.Network != "" {
			d.log.WarnContext(ctx, "instance asks for no network; session network ignored", "container", spec.Name, "network", spec.Network)
		}
		if err := d.ensureBayNetwork(ctx, d.cfg.IsolatedNetwork, true); err != nil {
			return "", "", err
		}
		return d.cfg.IsolatedNetwork, "", nil
	}
	if spec.Egress != nil {
		// Only the policy's bridge: any other network would be a route around it.
		if spec.Network != "" {
			d.log.WarnContext(ctx, "instance has an egress policy; session network ignored", "container", spec.Name, "network", spec.Network)
		}
		name, _, err := d.ensureEgress(ctx, *spec.Egress)
		return name, "", err
	}
	configured := ""
	if d.cfg.Network != "" && d.cfg.ConnectMode != ConnectHostPort {
		ok, err := d.networkExists(ctx, d.cfg.Network)
		if err != nil {
			return "", "", err
		}
		if ok {
			configured = d.cfg.Network
		} else {
			d.log.WarnContext(ctx, "configured docker network does not exist; using the sandbox network", "network", d.cfg.Network,
				"sandbox_network", d.cfg.SandboxNetwork)
		}
	}
	if configured == "" && spec.Network == "" {
		if err := d.ensureBayNetwork(ctx, d.cfg.SandboxNetwork, false); err != nil {
			return "", "", err
		}
		return d.cfg.SandboxNetwork, "", nil
	}
	if spec.Network != "" {
		// The engine would accept a missing network at create and fail at start.
		ok, err := d.networkExists(ctx, spec.Network)
		if err != nil {
			return "", "", err
		}
		if !ok {
			return "", "", fmt.Errorf("docker: session network %q: %w", spec.Network, driver.ErrNotFound)
		}
		if configured == spec.Network {
			configured = ""
		}
		return spec.Network, configured, nil
	}
	return configured, "", nil
}

// bridgeNameOption names a bridge network's host interface.
const bridgeNameOption = "com.docker.network.bridge.name"

// ensureBayNetwork makes sure a network of Bay's own exists as it must be:
// enable_icc=false (no traffic between its containers), its host interface
// named bridgeName(name) so the host rules cover it, and when internal (for
// instances without network) no route out. Bay still reaches every container
// from the host. A network of that name that is not so is refused, never
// silently used.
func (d *Driver) ensureBayNetwork(ctx context.Context, name string, internal bool) error {
	check := func() (bool, error) {
		n, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, wrap("inspect network", name, err)
		}
		switch {
		case internal && !n.Internal:
			return true, fmt.Errorf("docker: network %q exists but is not internal; refusing to use it for instances without network (remove it and Bay recreates it)", name)
		case n.Options["com.docker.network.bridge.enable_icc"] != "false" || n.Options[bridgeNameOption] != bridgeName(name):
			return true, fmt.Errorf("docker: network %q exists but does not isolate sandboxes (enable_icc must be false, bridge %s); remove it and Bay recreates it", name, bridgeName(name))
		}
		return true, nil
	}
	if ok, err := check(); ok || err != nil {
		return err
	}
	_, err := d.cli.NetworkCreate(ctx, name, network.CreateOptions{
		Driver:   "bridge",
		Internal: internal,
		Options:  map[string]string{"com.docker.network.bridge.enable_icc": "false", bridgeNameOption: bridgeName(name)},
		Labels:   map[string]string{driver.LabelManaged: "true"},
	})
	if err != nil && !cerrdefs.IsConflict(err) {
		return wrap("create network", name, err)
	}
	if cerrdefs.IsConflict(err) {
		_, err := check()
		return err
	}
	d.log.InfoContext(ctx, "created sandbox network", "network", name, "bridge", bridgeName(name), "internal", internal)
	return nil
}

// Prepare readies the host before the first sandbox: the sandbox network
// exists, and (IsolateHost) the host rules that keep sandboxes off the host
// are in place. An error here must stop Bay: without it, code in a sandbox
// could reach Bay's API.
func (d *Driver) Prepare(ctx context.Context) error {
	// The network is also made on demand before each first instance, so an
	// engine that is down now (Bay starts first at boot) only delays it.
	if err := d.ensureBayNetwork(ctx, d.cfg.SandboxNetwork, false); err != nil {
		if d.Ping(ctx) == nil {
			return err
		}
		d.log.WarnContext(ctx, "docker engine unreachable; the sandbox network is created once it answers", "err", err)
	}
	if !*d.cfg.IsolateHost {
		d.log.WarnContext(ctx, "driver.docker.isolate_host is off: code in a sandbox can open connections to this host (Bay's API too unless it listens on loopback only)")
		return d.prepareEgress(ctx)
	}
	var extra []string
	if d.cfg.Network != "" {
		n, err := d.cli.NetworkInspect(ctx, d.cfg.Network, network.InspectOptions{})
		switch {
		case cerrdefs.IsNotFound(err):
		case err != nil:
			// Its bridge cannot be named, so it cannot be covered: refuse.
			return wrap("inspect network", d.cfg.Network, err)
		case n.Driver == "bridge":
			iface := n.Options[bridgeNameOption]
			if iface == "" {
				iface = "br-" + n.ID[:12]
			}
			extra = append(extra, iface)
		}
	}
	if err := isolateHost(extra); err != nil {
		return fmt.Errorf("docker: cannot keep sandboxes off the host: %w; run Bay with CAP_NET_ADMIN (as root), or set driver.docker.isolate_host: false and firewall the sandbox bridges (interfaces %s*) yourself", err, bridgePrefix)
	}
	d.egressMu.Lock()
	d.extraIfaces = extra
	d.egressMu.Unlock()
	return d.prepareEgress(ctx)
}

// prepareEgress readies the configured egress policies, so that sandboxes
// that outlived a Bay restart have their DNS again. An engine that is down
// only delays it (Create readies a policy on first use).
func (d *Driver) prepareEgress(ctx context.Context) error {
	for _, e := range d.cfg.Egress {
		if _, _, err := d.ensureEgress(ctx, e); err != nil {
			if d.Ping(ctx) != nil {
				d.log.WarnContext(ctx, "docker engine unreachable; egress policy readied on first use", "egress_policy", e.Policy, "err", err)
				continue
			}
			return err
		}
	}
	return nil
}
