package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// InstanceSpec describes one container to create: the unit the Docker
// driver builds sessions of (tests use it directly).
type InstanceSpec struct {
	Name      string // e.g. bay-session-<session_id>
	Hostname  string // "" = driver default
	Image     string
	Env       map[string]string // real environment variables
	Labels    map[string]string // all bay.* labels, set by the caller
	Volume    string            // volume name mounted read-write at /workspace
	Port      int               // runtime port inside the instance (8123 for Ship)
	Network   string            // session network to join ("" = driver's configured network / default)
	Runtime   string            // OCI runtime, e.g. "runsc" ("" = default)
	NoNetwork bool              // profile asked for no network at all
	Egress    *driver.Egress    // nil = full egress (or none with NoNetwork)
	Resources driver.Resources
}

// Instance is one container as the engine reports it.
type Instance struct {
	ID        string
	Name      string
	State     driver.State
	Labels    map[string]string
	CreatedAt time.Time
}

// Labels of the Docker driver's own: a container's place in its session, and
// how many containers the session has (so one removed behind Bay's back
// shows as a session not running).
const (
	labelContainerIndex = "bay.container_index"
	labelContainerCount = "bay.container_count"
)

var _ driver.Driver = (*Driver)(nil)

// sessionNetwork is the private network of a session of several containers,
// on which they reach each other by name.
func sessionNetwork(id string) string { return "bay_net_" + id }

// containerName: a session of one container is bay-session-<id> (COMPAT §6),
// the containers of a larger one bay-<id>-<name>.
func containerName(spec driver.SessionSpec, c driver.ContainerSpec) string {
	if len(spec.Containers) == 1 {
		return "bay-session-" + spec.ID
	}
	return "bay-" + spec.ID + "-" + c.Name
}

func validateSession(spec driver.SessionSpec) error {
	if spec.ID == "" || strings.ContainsAny(spec.ID, "/ ") {
		return fmt.Errorf("docker: session id %q is not valid", spec.ID)
	}
	if len(spec.Containers) == 0 {
		return fmt.Errorf("docker: session %s has no container", spec.ID)
	}
	names := map[string]bool{}
	for _, c := range spec.Containers {
		if c.Name == "" || names[c.Name] {
			return fmt.Errorf("docker: session %s: container names must be set and unique (%q)", spec.ID, c.Name)
		}
		names[c.Name] = true
	}
	return nil
}

// CreateSession creates the session's containers (and, for several, their
// network), not started. A session of that id existing already is
// driver.ErrConflict; on any failure what it made is removed again.
func (d *Driver) CreateSession(ctx context.Context, spec driver.SessionSpec) (s *driver.Session, err error) {
	if err := validateSession(spec); err != nil {
		return nil, err
	}
	if have, err := d.sessionContainers(ctx, spec.ID); err != nil {
		return nil, err
	} else if len(have) > 0 {
		return nil, fmt.Errorf("docker: session %s exists (%s): %w", spec.ID, have[0].Name, driver.ErrConflict)
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[driver.LabelSessionID] = spec.ID
	multi := len(spec.Containers) > 1
	network := ""
	var made []string
	defer func() {
		if err == nil {
			return
		}
		for _, id := range made {
			d.removeDetached(ctx, id)
		}
		if network != "" {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if derr := d.DeleteNetwork(rctx, network); derr != nil {
				d.log.WarnContext(ctx, "cleanup of a half-created session network failed", "network", network, "err", derr)
			}
		}
	}()
	if multi && !spec.NoNetwork && spec.Egress == nil {
		if err := d.CreateNetwork(ctx, sessionNetwork(spec.ID), labels); err != nil {
			return nil, fmt.Errorf("docker: session %s: network: %w", spec.ID, err)
		}
		network = sessionNetwork(spec.ID)
	}
	out := &driver.Session{ID: spec.ID, State: driver.StateCreated, Labels: labels, CreatedAt: time.Now().UTC()}
	for i, c := range spec.Containers {
		cl := maps.Clone(labels)
		maps.Copy(cl, c.Labels)
		cl[driver.LabelContainerName] = c.Name
		cl[labelContainerIndex] = strconv.Itoa(i)
		cl[labelContainerCount] = strconv.Itoa(len(spec.Containers))
		in := InstanceSpec{
			Name: containerName(spec, c), Image: c.Image, Env: c.Env, Labels: cl, Volume: spec.Volume, Port: c.Port,
			Network: network, Runtime: spec.Runtime, NoNetwork: spec.NoNetwork, Egress: spec.Egress, Resources: c.Resources,
		}
		if multi {
			in.Hostname = c.Name
		}
		id, err := d.Create(ctx, in)
		if err != nil {
			if cerrdefs.IsConflict(err) {
				return nil, fmt.Errorf("%w: %w", driver.ErrConflict, err)
			}
			return nil, err
		}
		made = append(made, id)
		out.Containers = append(out.Containers, driver.Container{Name: c.Name, ID: id, State: driver.StateCreated})
	}
	return out, nil
}

// sessionContainers lists the containers of a session, in spec order.
func (d *Driver) sessionContainers(ctx context.Context, id string) ([]Instance, error) {
	return d.List(ctx, map[string]string{driver.LabelSessionID: id})
}

// group turns a session's containers (all carrying its id) into a session.
func group(id string, list []Instance) *driver.Session {
	slices.SortStableFunc(list, func(a, b Instance) int { return index(a) - index(b) })
	s := &driver.Session{ID: id, Labels: list[0].Labels, CreatedAt: list[0].CreatedAt}
	for _, in := range list {
		name := in.Labels[driver.LabelContainerName]
		if name == "" { // made before container names were labelled on single sessions
			name = in.Name
		}
		s.Containers = append(s.Containers, driver.Container{Name: name, ID: in.ID, State: in.State})
		if in.CreatedAt.Before(s.CreatedAt) {
			s.CreatedAt = in.CreatedAt
		}
	}
	s.State = driver.Aggregate(s.Containers)
	if n, err := strconv.Atoi(list[0].Labels[labelContainerCount]); err == nil && len(list) < n {
		s.State = driver.StateExited // a container is missing
	}
	return s
}

// index is a container's place in its session (unlabelled ones last).
func index(in Instance) int {
	if i, err := strconv.Atoi(in.Labels[labelContainerIndex]); err == nil {
		return i
	}
	return 1 << 20
}

// StartSession starts every container of the session that is not running and
// returns each one's endpoint. On failure the session is left for DestroySession.
func (d *Driver) StartSession(ctx context.Context, id string) (*driver.Session, error) {
	list, err := d.sessionContainers(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("docker: session %s: %w", id, driver.ErrNotFound)
	}
	s := group(id, list)
	errList := make([]error, len(s.Containers))
	var wg sync.WaitGroup
	for i := range s.Containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &s.Containers[i]
			ep, err := d.Start(ctx, c.ID)
			if err != nil {
				errList[i] = fmt.Errorf("container %s: %w", c.Name, err)
				return
			}
			c.Endpoint, c.State = ep, driver.StateRunning
		}()
	}
	wg.Wait()
	if err := errors.Join(errList...); err != nil {
		return nil, fmt.Errorf("docker: start session %s: %w", id, err)
	}
	s.State = driver.StateRunning
	return s, nil
}

// StopSession stops every container gracefully and keeps them.
func (d *Driver) StopSession(ctx context.Context, id string) error {
	list, err := d.sessionContainers(ctx, id)
	if err != nil {
		return err
	}
	return d.each(list, func(in Instance) error { return d.Stop(ctx, in.ID) })
}

// DestroySession force-removes every container and the session network.
func (d *Driver) DestroySession(ctx context.Context, id string) error {
	list, err := d.sessionContainers(ctx, id)
	if err != nil {
		return err
	}
	if err := d.each(list, func(in Instance) error { return d.Destroy(ctx, in.ID) }); err != nil {
		return err
	}
	// A session of one container has no network of its own (a count label
	// above one: its other containers were removed behind the driver's back).
	if len(list) == 1 {
		if n, _ := strconv.Atoi(list[0].Labels[labelContainerCount]); n <= 1 {
			return nil
		}
	}
	if err := d.DeleteNetwork(ctx, sessionNetwork(id)); err != nil {
		return fmt.Errorf("docker: destroy session %s: %w", id, err)
	}
	return nil
}

func (d *Driver) each(list []Instance, f func(Instance) error) error {
	errList := make([]error, len(list))
	var wg sync.WaitGroup
	for i, in := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errList[i] = f(in)
		}()
	}
	wg.Wait()
	return errors.Join(errList...)
}

// InspectSession observes the session's containers. A session of one
// container (the common case, probed every few seconds while in use) is
// found by its name in one lookup; others by their session label, a listing
// that grows with the number of containers on the engine.
func (d *Driver) InspectSession(ctx context.Context, id string) (*driver.Session, error) {
	info, err := d.cli.ContainerInspect(ctx, "bay-session-"+id)
	switch {
	case err == nil && info.Config != nil && info.Config.Labels[driver.LabelSessionID] == id && info.State != nil:
		created, _ := time.Parse(time.RFC3339Nano, info.Created)
		return group(id, []Instance{{ID: info.ID, Name: strings.TrimPrefix(info.Name, "/"), State: mapState(info.State.Status),
			Labels: info.Config.Labels, CreatedAt: created.UTC()}}), nil
	case err != nil && !cerrdefs.IsNotFound(err):
		return nil, wrap("inspect container", "bay-session-"+id, err)
	}
	list, err := d.sessionContainers(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("docker: session %s: %w", id, driver.ErrNotFound)
	}
	return group(id, list), nil
}

// ListSessions returns the sessions whose containers carry all the given
// labels, sorted by id. Containers without a session id are not sessions.
func (d *Driver) ListSessions(ctx context.Context, labels map[string]string) ([]driver.Session, error) {
	f := labelFilters(labels)
	f.Add("label", driver.LabelSessionID)
	list, err := d.list(ctx, f)
	if err != nil {
		return nil, err
	}
	by := map[string][]Instance{}
	for _, in := range list {
		if id := in.Labels[driver.LabelSessionID]; id != "" {
			by[id] = append(by[id], in)
		}
	}
	out := make([]driver.Session, 0, len(by))
	for _, id := range slices.Sorted(maps.Keys(by)) {
		out = append(out, *group(id, by[id]))
	}
	return out, nil
}

// list returns every container (any state) the filters match, sorted by name.
func (d *Driver) list(ctx context.Context, f filters.Args) ([]Instance, error) {
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", err)
	}
	out := make([]Instance, 0, len(cs))
	for _, c := range cs {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, Instance{
			ID:        c.ID,
			Name:      name,
			State:     mapState(c.State),
			Labels:    c.Labels,
			CreatedAt: time.Unix(c.Created, 0).UTC(),
		})
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
