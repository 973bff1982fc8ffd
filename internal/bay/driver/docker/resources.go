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
func (d *Driver) CreateVolume(ctx context.Context, name string, labels map[string]string) error {
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
	_, err = d.cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels})
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
func (d *Driver) networksFor(ctx context.Context, spec driver.InstanceSpec) (primary, extra string, err error) {
	if spec.NoNetwork {
		if spec.Network != "" {
			d.log.WarnContext(ctx, "instance asks for no network; session network ignored", "container", spec.Name, "network", spec.Network)
		}
		if err := d.ensureIsolatedNetwork(ctx); err != nil {
			return "", "", err
		}
		return d.cfg.IsolatedNetwork, "", nil
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
			d.log.WarnContext(ctx, "configured docker network does not exist; using the default bridge", "network", d.cfg.Network)
		}
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

// ensureIsolatedNetwork makes sure the network for NoNetwork instances exists
// and really is internal: no route out, no traffic between its containers
// (icc off), reachable from the host so Bay can still talk to the runtime.
func (d *Driver) ensureIsolatedNetwork(ctx context.Context) error {
	name := d.cfg.IsolatedNetwork
	check := func() (bool, error) {
		n, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, wrap("inspect network", name, err)
		}
		if !n.Internal {
			return true, fmt.Errorf("docker: network %q exists but is not internal; refusing to use it for instances without network", name)
		}
		return true, nil
	}
	if ok, err := check(); ok || err != nil {
		return err
	}
	_, err := d.cli.NetworkCreate(ctx, name, network.CreateOptions{
		Driver:   "bridge",
		Internal: true,
		Options:  map[string]string{"com.docker.network.bridge.enable_icc": "false"},
		Labels:   map[string]string{driver.LabelManaged: "true"},
	})
	if err != nil && !cerrdefs.IsConflict(err) {
		return wrap("create network", name, err)
	}
	if cerrdefs.IsConflict(err) {
		_, err := check()
		return err
	}
	d.log.InfoContext(ctx, "created isolated network for instances without network", "network", name)
	return nil
}
