// Package docker is the Docker Engine driver of Bay: a session is its
// containers (one, or several on a private bridge network where they reach
// each other by name), cargos are named volumes, all through the
// official Engine client with API version negotiation (Engine 20.10 / API 1.41
// and newer).
//
// Every container runs as uid 1000:1000 with all capabilities dropped,
// no-new-privileges, pids/memory/CPU limits and no init (the image brings its
// own), and its runtime port is published on 127.0.0.1 only (DESIGN.md rule 11).
package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// Fixed facts of every container (spec/COMPAT.md §6, DESIGN.md rule 11).
const (
	WorkspacePath = "/workspace"
	ContainerUser = "1000:1000"
)

// cleanupTimeout bounds the best-effort removal of a half-made container after
// the caller's context has gone.
const cleanupTimeout = 30 * time.Second

// Driver runs instances as Docker containers. It is safe for concurrent use.
type Driver struct {
	cfg Config
	cli *client.Client
	log *slog.Logger

	// reach reports whether Bay can open TCP connections to addr; nil = dial it.
	reach    func(addr string) bool
	bridgeOK atomic.Int32 // auto mode: 0 unknown, 1 bridge IPs reachable, 2 not

	ncpuMu sync.Mutex
	ncpu   int // host CPUs, 0 = not known yet

	egressMu    sync.Mutex
	egressNets  map[string]*egressNet // by policy name
	extraIfaces []string              // other sandboxes' interfaces beyond bay* (set by Prepare)
}

// New returns a driver for the engine at cfg.Socket. It does not require the
// engine to be up; call Ping to check it is reachable.
func New(cfg Config) (*Driver, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cli, err := client.NewClientWithOpts(client.WithHost(c.Socket), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker: client for %s: %w", c.Socket, err)
	}
	// Negotiate the API version now, before any concurrency: the client does
	// it lazily on first use otherwise, and concurrent first calls race on it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	cli.NegotiateAPIVersion(ctx)
	cancel()
	return &Driver{cfg: c, cli: cli, log: c.Logger.With("component", "driver.docker")}, nil
}

// Config returns the effective configuration (defaults filled in).
func (d *Driver) Config() Config { return d.cfg }

// Close stops the egress DNS forwarders and releases the client's connections.
func (d *Driver) Close() error {
	d.closeEgress()
	return d.cli.Close()
}

// Ping checks the engine answers.
func (d *Driver) Ping(ctx context.Context) error {
	if _, err := d.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker: ping %s: %w", d.cfg.Socket, err)
	}
	return nil
}

// Runtimes lists the OCI runtimes the engine has registered ("runc", "runsc", ...),
// so Bay can tell at start-up which profiles cannot start.
func (d *Driver) Runtimes(ctx context.Context) ([]string, error) {
	info, err := d.cli.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker: info: %w", err)
	}
	return slices.Sorted(maps.Keys(info.Runtimes)), nil
}

// wrap adds context to an engine error and maps "not found" to driver.ErrNotFound.
func wrap(op, ref string, err error) error {
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: %s %s: %w: %w", op, ref, driver.ErrNotFound, err)
	}
	return fmt.Errorf("docker: %s %s: %w", op, ref, err)
}

func validateSpec(spec InstanceSpec) error {
	if spec.Image == "" {
		return errors.New("docker: instance spec has no image")
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return fmt.Errorf("docker: instance spec port %d out of range", spec.Port)
	}
	for k, v := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("docker: invalid environment variable name %q", k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("docker: environment variable %s contains NUL", k)
		}
	}
	r := spec.Resources
	if r.NanoCPUs < 0 || r.MemoryBytes < 0 || r.PidsLimit < 0 {
		return fmt.Errorf("docker: negative resource limit in %+v", r)
	}
	return nil
}

// envList turns the map into KEY=VALUE pairs sorted by key, so the same spec
// always yields the same container config.
func envList(env map[string]string) []string {
	if len(env) == 0 {
		return nil
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func runtimePort(port int) nat.Port { return nat.Port(strconv.Itoa(port) + "/tcp") }

// Create pulls the image per the pull policy and creates (does not start) the
// container. A failure after the container exists removes it again.
func (d *Driver) Create(ctx context.Context, spec InstanceSpec) (string, error) {
	if err := validateSpec(spec); err != nil {
		return "", err
	}
	if err := d.ensureImage(ctx, spec.Image); err != nil {
		return "", err
	}
	netMode, extraNet, err := d.networksFor(ctx, spec)
	if err != nil {
		return "", err
	}

	port := runtimePort(spec.Port)
	// The runtime port is recorded in its COMPAT label so Start (and anyone
	// listing) knows which port is Bay's, whatever else the image exposes.
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[driver.LabelRuntimePort] = strconv.Itoa(spec.Port)
	cfg := &container.Config{
		Image:        spec.Image,
		Hostname:     spec.Hostname,
		Env:          envList(spec.Env),
		Labels:       labels,
		WorkingDir:   WorkspacePath,
		User:         ContainerUser,
		ExposedPorts: nat.PortSet{port: struct{}{}},
	}
	pids := spec.Resources.PidsLimit
	if pids == 0 {
		pids = d.cfg.DefaultPidsLimit
	}
	noInit := false
	hc := &container.HostConfig{
		NetworkMode:   container.NetworkMode(netMode),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		CapDrop:       []string{"ALL"},
		SecurityOpt:   []string{"no-new-privileges"},
		Init:          &noInit,
		Runtime:       spec.Runtime,
		Resources: container.Resources{
			Memory:    spec.Resources.MemoryBytes,
			NanoCPUs:  d.clampCPUs(ctx, spec.Resources.NanoCPUs),
			PidsLimit: &pids,
		},
	}
	if dns := d.egressDNSFor(netMode); dns != "" {
		hc.DNS = []string{dns}
	}
	if spec.Volume != "" {
		hc.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: spec.Volume, Target: WorkspacePath}}
	}
	if d.publishes(spec) {
		hostPort := ""
		if d.cfg.HostPort != 0 {
			hostPort = strconv.Itoa(d.cfg.HostPort)
		}
		hc.PortBindings = nat.PortMap{port: {{HostIP: d.cfg.PublishAddress, HostPort: hostPort}}}
	}

	var nc *network.NetworkingConfig
	if spec.Hostname != "" && spec.Network != "" && netMode == spec.Network {
		// The containers of one session reach each other by name on its
		// network (the browser opens http://ship:<port>/).
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netMode: {Aliases: []string{spec.Hostname}}}}
	}
	// The engine finishes a create whose client went away, so a create cut off
	// by ctx could leave a container behind after any check for it (seen: a
	// warm-pool fill stopped with Bay). The create runs to its end instead, and
	// a container made for a caller that has gone is removed again.
	if err := ctx.Err(); err != nil {
		return "", wrap("create container", spec.Name, err)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	resp, err := d.cli.ContainerCreate(cctx, cfg, hc, nc, nil, spec.Name)
	cancel()
	if err == nil && ctx.Err() != nil {
		d.removeDetached(ctx, resp.ID)
		err = context.Cause(ctx)
	} else if err != nil && cctx.Err() != nil && spec.Name != "" {
		// The engine may yet create it after this bound.
		d.removeIfOurs(ctx, spec.Name, labels)
	}
	if err != nil {
		return "", wrap("create container", spec.Name, err)
	}
	for _, w := range resp.Warnings {
		d.log.WarnContext(ctx, "docker create warning", "container", spec.Name, "warning", w)
	}
	if extraNet != "" {
		if err := d.cli.NetworkConnect(ctx, extraNet, resp.ID, nil); err != nil {
			d.removeDetached(ctx, resp.ID)
			return "", wrap("connect container "+spec.Name+" to network", extraNet, err)
		}
	}
	d.log.DebugContext(ctx, "container created", "container", spec.Name, "id", resp.ID, "image", spec.Image, "network", netMode)
	return resp.ID, nil
}

// publishes says whether the runtime port of spec is published on the host.
func (d *Driver) publishes(spec InstanceSpec) bool {
	return *d.cfg.PublishPorts && !spec.NoNetwork && d.cfg.ConnectMode != ConnectContainerNetwork
}

// removeDetached force-removes a container on a failure path, even when ctx is done.
func (d *Driver) removeDetached(ctx context.Context, ref string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := d.cli.ContainerRemove(rctx, ref, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		d.log.WarnContext(ctx, "cleanup of half-created container failed", "container", ref, "err", err)
	}
}

// removeIfOurs removes the container called name if it carries all the
// labels of the spec that failed to create it (never someone else's container
// that happens to hold the name).
func (d *Driver) removeIfOurs(ctx context.Context, name string, labels map[string]string) {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	info, err := d.cli.ContainerInspect(ictx, name)
	if err != nil || info.Config == nil {
		return
	}
	for k, v := range labels { // the image may add labels of its own
		if got, ok := info.Config.Labels[k]; !ok || got != v {
			return
		}
	}
	d.removeDetached(ctx, info.ID)
}

// clampCPUs caps a CPU limit at the host's CPU count (the engine refuses more),
// so a profile written for a bigger machine still runs here.
func (d *Driver) clampCPUs(ctx context.Context, nano int64) int64 {
	if nano == 0 {
		return 0
	}
	d.ncpuMu.Lock()
	defer d.ncpuMu.Unlock()
	if d.ncpu == 0 {
		info, err := d.cli.Info(ctx)
		if err != nil || info.NCPU <= 0 {
			return nano // let the engine judge
		}
		d.ncpu = info.NCPU
	}
	if limit := int64(d.ncpu) * 1e9; nano > limit {
		d.log.WarnContext(ctx, "cpu limit above host cpus; clamped", "requested_nano_cpus", nano, "host_cpus", d.ncpu)
		return limit
	}
	return nano
}

// ensureImage applies the pull policy.
func (d *Driver) ensureImage(ctx context.Context, ref string) error {
	if d.cfg.PullPolicy == PullAlways {
		if err := d.pull(ctx, ref); err != nil {
			return fmt.Errorf("docker: pull image %q (pull policy always): %w", ref, err)
		}
		return nil
	}
	_, err := d.cli.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: inspect image %q: %w", ref, err)
	}
	if d.cfg.PullPolicy == PullNever {
		return fmt.Errorf("docker: image %q is not present and the pull policy is never: %w", ref, driver.ErrImageNotFound)
	}
	if err := d.pull(ctx, ref); err != nil {
		return fmt.Errorf("docker: image %q is not present and pulling it failed: %w: %w", ref, driver.ErrImageNotFound, err)
	}
	return nil
}

// pull pulls ref and reads the progress stream to its end; an error reported
// inside the stream is an error too.
func (d *Driver) pull(ctx context.Context, ref string) error {
	d.log.InfoContext(ctx, "pulling image", "image", ref)
	rc, err := d.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading pull progress: %w", err)
		}
		if msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

// Start starts the container and returns the endpoint of its runtime port.
// On failure the container is left for the caller to Destroy.
func (d *Driver) Start(ctx context.Context, id string) (string, error) {
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return "", wrap("start container", id, err)
	}
	// Docker may report the address or the port binding a moment after start.
	deadline := time.Now().Add(d.cfg.EndpointTimeout)
	const pause = 50 * time.Millisecond
	for {
		info, err := d.cli.ContainerInspect(ctx, id)
		if err != nil {
			return "", wrap("inspect container", id, err)
		}
		if info.State != nil && !info.State.Running && info.State.Status != "created" {
			return "", d.exitedError(ctx, id, info)
		}
		if ep, ok := d.endpoint(info); ok {
			d.log.DebugContext(ctx, "container started", "container", strings.TrimPrefix(info.Name, "/"), "id", id, "endpoint", ep)
			return ep, nil
		}
		if time.Now().Add(pause).After(deadline) {
			return "", fmt.Errorf("docker: container %s started but reported no reachable address for its runtime port within %s (connect mode %s)", id, d.cfg.EndpointTimeout, d.cfg.ConnectMode)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("docker: waiting for endpoint of %s: %w", id, ctx.Err())
		case <-t.C:
		}
	}
}

// exitedError describes a container that stopped right after start, with the
// tail of its output.
func (d *Driver) exitedError(ctx context.Context, id string, info container.InspectResponse) error {
	msg := fmt.Sprintf("docker: container %s is %s right after start (exit code %d", id, info.State.Status, info.State.ExitCode)
	if info.State.Error != "" {
		msg += ", " + info.State.Error
	}
	msg += ")"
	if tail := d.logTail(ctx, id); tail != "" {
		msg += "; last output: " + tail
	}
	return errors.New(msg)
}

func (d *Driver) logTail(ctx context.Context, id string) string {
	rc, err := d.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, io.LimitReader(rc, 8<<10))
	return strings.TrimSpace(out.String())
}

// endpoint picks how Bay reaches the runtime port of a started container:
//
//   - NoNetwork instances (on the isolated network): the container IP.
//   - container_network: the container IP (configured network first).
//   - host_port: the published port at HostAddress.
//   - auto: the container IP when a container network is configured/used, else
//     the published port.
//
// Each mode falls back to the other address when its own is absent (e.g.
// host_port with publishing disabled).
func (d *Driver) endpoint(info container.InspectResponse) (string, bool) {
	ns := info.NetworkSettings
	if info.Config == nil || info.HostConfig == nil || ns == nil {
		return "", false
	}
	var port nat.Port
	if p, err := strconv.Atoi(info.Config.Labels[driver.LabelRuntimePort]); err == nil {
		port = runtimePort(p)
	} else { // not made by this driver: the lowest exposed TCP port
		for _, p := range slices.Sorted(maps.Keys(info.Config.ExposedPorts)) {
			if p.Proto() == "tcp" {
				port = p
				break
			}
		}
	}
	if port == "" {
		return "", false
	}
	primary := string(info.HostConfig.NetworkMode)

	ipOn := func(name string) string {
		if ep := ns.Networks[name]; ep != nil {
			return ep.IPAddress
		}
		return ""
	}
	// Preference for the container IP: configured network, the container's
	// own (session or isolated) network, any custom one, the default bridge.
	var custom, ip string
	if d.cfg.Network != "" {
		custom = ipOn(d.cfg.Network)
	}
	if custom == "" && isCustomNetwork(primary) {
		custom = ipOn(primary)
	}
	if custom == "" {
		for _, name := range slices.Sorted(maps.Keys(ns.Networks)) {
			if isCustomNetwork(name) {
				if custom = ipOn(name); custom != "" {
					break
				}
			}
		}
	}
	ip = custom
	if ip == "" {
		ip = ipOn("bridge")
	}
	hostPort := ""
	for _, b := range ns.Ports[port] {
		if b.HostPort != "" {
			hostPort = b.HostPort
			if b.HostIP == d.cfg.PublishAddress {
				break
			}
		}
	}
	viaIP := func() (string, bool) {
		if ip == "" {
			return "", false
		}
		return "http://" + net.JoinHostPort(ip, port.Port()), true
	}
	viaHost := func() (string, bool) {
		if hostPort == "" {
			return "", false
		}
		return "http://" + net.JoinHostPort(d.cfg.HostAddress, hostPort), true
	}
	first, second := viaHost, viaIP
	switch {
	case primary == d.cfg.IsolatedNetwork:
		first, second = viaIP, viaIP
	case d.cfg.ConnectMode == ConnectContainerNetwork:
		first, second = viaIP, viaHost
	case d.cfg.ConnectMode == ConnectAuto && custom != "":
		first, second = viaIP, viaHost
	case d.cfg.ConnectMode == ConnectAuto && ip != "" && d.bridgeReachable(net.JoinHostPort(ip, port.Port())):
		// Straight to the container skips docker-proxy, the userland copy
		// behind published ports (~0.4 ms a call here); the published port
		// stays for operators and as the fallback where container IPs are
		// not routable (Docker Desktop, rootless engines).
		first, second = viaIP, viaHost
	}
	if ep, ok := first(); ok {
		return ep, true
	}
	return second()
}

// bridgeReachable decides once per driver whether container IPs on the default
// bridge can be dialled from here. The runtime is not listening yet when this
// runs, so a refused connection counts as reachable: only a route that
// swallows the packets (timeout, no route) does not.
func (d *Driver) bridgeReachable(addr string) bool {
	switch d.bridgeOK.Load() {
	case 1:
		return true
	case 2:
		return false
	}
	reach := d.reach
	if reach == nil {
		reach = dialable
	}
	ok := reach(addr)
	if ok {
		d.bridgeOK.Store(1)
	} else {
		d.bridgeOK.Store(2)
		d.log.Info("container IPs are not reachable from Bay; using published ports", "probe", addr)
	}
	return ok
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err == nil {
		c.Close()
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

func isCustomNetwork(name string) bool {
	switch name {
	case "", "default", "bridge", "host", "none":
		return false
	}
	return !strings.HasPrefix(name, "container:")
}

// Stop stops the container gracefully (SIGTERM, then SIGKILL after
// StopTimeout) and keeps it. A missing container is not an error.
func (d *Driver) Stop(ctx context.Context, id string) error {
	secs := int(math.Ceil(d.cfg.StopTimeout.Seconds()))
	err := d.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return wrap("stop container", id, err)
	}
	return nil
}

// Destroy force-removes the container and its anonymous volumes (never the
// named cargo volume). A missing container is not an error.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "in progress"):
		// Someone else is removing it: wait until it is gone.
		return d.waitGone(ctx, id)
	default:
		return wrap("remove container", id, err)
	}
}

func (d *Driver) waitGone(ctx context.Context, id string) error {
	for {
		_, err := d.cli.ContainerInspect(ctx, id)
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return wrap("inspect container", id, err)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("docker: waiting for removal of %s: %w", id, ctx.Err())
		case <-t.C:
		}
	}
}

// Status reports the observed state; a missing container is StateNotFound.
func (d *Driver) Status(ctx context.Context, id string) (driver.State, error) {
	info, err := d.cli.ContainerInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return driver.StateNotFound, nil
	}
	if err != nil {
		return "", wrap("inspect container", id, err)
	}
	if info.State == nil {
		return driver.StateExited, nil
	}
	return mapState(info.State.Status), nil
}

// mapState maps Docker's container states to the driver's: a live process
// (running, restarting, paused) is running; created is created; anything else
// (exited, dead, removing) is exited.
func mapState(s container.ContainerState) driver.State {
	switch s {
	case container.StateCreated:
		return driver.StateCreated
	case container.StateRunning, container.StateRestarting, container.StatePaused:
		return driver.StateRunning
	default:
		return driver.StateExited
	}
}

func labelFilters(labels map[string]string) filters.Args {
	f := filters.NewArgs()
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	return f
}

// List returns every container (any state) carrying all the given labels,
// sorted by name.
func (d *Driver) List(ctx context.Context, labels map[string]string) ([]Instance, error) {
	return d.list(ctx, labelFilters(labels))
}
