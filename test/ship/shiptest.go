// Package shiptest starts real Ship containers (ship:latest) the way Bay's
// Docker driver does, for the container tests here and for benchmarks
// elsewhere (bench/ imports StartContainer). Every container and volume it
// creates carries the label shipyard.test=ship; Sweep removes them all.
package shiptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// Label marks everything this package creates.
const Label = "shipyard.test"

// LabelValue is the value of Label.
const LabelValue = "ship"

// Options of a test container. Zero values give Bay's settings.
type Options struct {
	Image string            // default $SHIP_IMAGE or ship:latest
	Token string            // default: a random token
	Env   map[string]string // extra environment (e.g. BAY_PROFILE_ENV_JSON)
	// User is the container user (default "1000:1000"). AsRoot starts it as
	// root with Docker's default capabilities instead (Ship then drops to 1000).
	User   string
	AsRoot bool
	// NoVolume runs without a named volume at /workspace (the image directory is used).
	NoVolume      bool
	HealthTimeout time.Duration // default 90s
}

// Container is a running Ship.
type Container struct {
	ID       string
	Endpoint string // http://127.0.0.1:<port>
	Token    string
	Volume   string
	// StartToHealthy is the time from `docker start` to the first /health 200.
	StartToHealthy time.Duration
	cli            *client.Client
}

// Docker returns a client for the local engine (API version negotiated, so
// Engine 20.10 works).
func Docker() (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return cli, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StartContainer starts a Ship container, waits for /health 200 and registers
// its removal with tb.Cleanup. It returns the endpoint and the bearer token.
func StartContainer(tb testing.TB, opts Options) (endpoint, token string) {
	tb.Helper()
	c := Start(tb, opts)
	return c.Endpoint, c.Token
}

// Start is StartContainer returning the whole Container.
func Start(tb testing.TB, opts Options) *Container {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := start(ctx, opts)
	if c != nil {
		tb.Cleanup(func() {
			rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
			defer rcancel()
			if err := c.Remove(rctx); err != nil {
				tb.Errorf("remove container: %v", err)
			}
		})
	}
	if err != nil {
		tb.Fatalf("start ship container: %v", err)
	}
	return c
}

func start(ctx context.Context, opts Options) (*Container, error) {
	if opts.Image == "" {
		opts.Image = os.Getenv("SHIP_IMAGE")
		if opts.Image == "" {
			opts.Image = "ship:latest"
		}
	}
	if opts.Token == "" {
		opts.Token = randomHex(16)
	}
	if opts.User == "" {
		opts.User = "1000:1000"
	}
	if opts.HealthTimeout == 0 {
		opts.HealthTimeout = 90 * time.Second
	}
	cli, err := Docker()
	if err != nil {
		return nil, err
	}
	labels := map[string]string{Label: LabelValue}
	c := &Container{Token: opts.Token, cli: cli}
	hc := &container.HostConfig{
		PortBindings: nat.PortMap{"8123/tcp": {{HostIP: "127.0.0.1", HostPort: ""}}},
		Resources:    container.Resources{Memory: 1 << 30, PidsLimit: ptr(int64(256))},
	}
	if !opts.AsRoot {
		hc.CapDrop = []string{"ALL"}
		hc.SecurityOpt = []string{"no-new-privileges"}
	}
	if !opts.NoVolume {
		c.Volume = "shiptest-" + randomHex(6)
		if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: c.Volume, Labels: labels}); err != nil {
			return nil, fmt.Errorf("create volume: %w", err)
		}
		hc.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: c.Volume, Target: "/workspace"}}
	}
	env := []string{"SHIP_TOKEN=" + opts.Token}
	for k, v := range opts.Env {
		env = append(env, k+"="+v)
	}
	user := opts.User
	if opts.AsRoot {
		user = "0:0"
	}
	cfg := &container.Config{
		Image: opts.Image, User: user, Env: env, Labels: labels,
		ExposedPorts: nat.PortSet{"8123/tcp": struct{}{}},
	}
	created, err := cli.ContainerCreate(ctx, cfg, hc, nil, nil, "shiptest-"+randomHex(6))
	if err != nil {
		return c, fmt.Errorf("create container: %w", err)
	}
	c.ID = created.ID
	t0 := time.Now()
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return c, fmt.Errorf("start container: %w", err)
	}
	insp, err := cli.ContainerInspect(ctx, c.ID)
	if err != nil {
		return c, fmt.Errorf("inspect: %w", err)
	}
	binds := insp.NetworkSettings.Ports["8123/tcp"]
	if len(binds) == 0 {
		return c, fmt.Errorf("port 8123 not published")
	}
	c.Endpoint = "http://127.0.0.1:" + binds[0].HostPort
	if err := waitHealthy(ctx, c.Endpoint, opts.HealthTimeout); err != nil {
		logs, _ := c.Logs(ctx)
		return c, fmt.Errorf("%w; logs:\n%s", err, logs)
	}
	c.StartToHealthy = time.Since(t0)
	return c, nil
}

func ptr[T any](v T) *T { return &v }

func waitHealthy(ctx context.Context, endpoint string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/health", nil)
		if res, err := hc.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no /health 200 within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Remove force-removes the container and its volume.
func (c *Container) Remove(ctx context.Context) error {
	var errs []string
	if c.ID != "" {
		if err := c.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	if c.Volume != "" {
		if err := c.cli.VolumeRemove(ctx, c.Volume, true); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Stop stops the container (SIGTERM, then SIGKILL after grace) and returns
// how long it took and the exit code.
func (c *Container) Stop(ctx context.Context, grace time.Duration) (time.Duration, int, error) {
	secs := int(grace.Seconds())
	t0 := time.Now()
	if err := c.cli.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &secs}); err != nil {
		return 0, 0, fmt.Errorf("stop: %w", err)
	}
	took := time.Since(t0)
	insp, err := c.cli.ContainerInspect(ctx, c.ID)
	if err != nil {
		return took, 0, fmt.Errorf("inspect: %w", err)
	}
	return took, insp.State.ExitCode, nil
}

// Logs returns the container's output (Ship's JSON log lines).
func (c *Container) Logs(ctx context.Context) (string, error) {
	rc, err := c.cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", fmt.Errorf("logs: %w", err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return out.String(), fmt.Errorf("read logs: %w", err)
	}
	return out.String(), nil
}

// Exec runs argv in the container (as its user) and returns combined output.
func (c *Container) Exec(ctx context.Context, argv ...string) (string, error) {
	ex, err := c.cli.ContainerExecCreate(ctx, c.ID, container.ExecOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", fmt.Errorf("exec create: %w", err)
	}
	att, err := c.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", fmt.Errorf("exec attach: %w", err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		return out.String(), fmt.Errorf("exec read: %w", err)
	}
	insp, err := c.cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return out.String(), fmt.Errorf("exec inspect: %w", err)
	}
	if insp.ExitCode != 0 {
		return out.String(), fmt.Errorf("exec %v: exit %d", argv, insp.ExitCode)
	}
	return out.String(), nil
}

// ShipRSSKiB reads VmRSS of the ship process (the kernel excluded).
func (c *Container) ShipRSSKiB(ctx context.Context) (int, error) {
	out, err := c.Exec(ctx, "sh", "-c", `for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = ship ] && grep VmRSS $p/status; done; true`)
	if err != nil {
		return 0, err
	}
	var kib int
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "VmRSS: %d kB", &kib); err != nil {
		return 0, fmt.Errorf("parse %q: %w", out, err)
	}
	return kib, nil
}

// Sweep removes every container and volume labelled by this package (left
// behind by a crashed run, for instance).
func Sweep(ctx context.Context) error {
	cli, err := Docker()
	if err != nil {
		return err
	}
	defer cli.Close()
	f := filters.NewArgs(filters.Arg("label", Label+"="+LabelValue))
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []string
	for _, ct := range list {
		if err := cli.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	vols, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list volumes: %w", err)
	}
	for _, v := range vols.Volumes {
		if err := cli.VolumeRemove(ctx, v.Name, true); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sweep: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Client calls one Ship with its token.
type Client struct {
	Endpoint, Token string
	HTTP            *http.Client
}

// NewClient returns a Client with a pooled HTTP client.
func NewClient(endpoint, token string) *Client {
	return &Client{Endpoint: endpoint, Token: token, HTTP: &http.Client{Timeout: 5 * time.Minute}}
}

// Do sends a request (body: nil, io.Reader, or any value sent as JSON) and
// returns the status and body.
func (c *Client) Do(ctx context.Context, method, path string, body any, hdr map[string]string) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		js, err := json.Marshal(b)
		if err != nil {
			return 0, nil, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Endpoint+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("new request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, b, fmt.Errorf("read body: %w", err)
	}
	return res.StatusCode, b, nil
}

// JSON posts body and decodes a 200 answer into out.
func (c *Client) JSON(ctx context.Context, path string, body, out any) error {
	status, b, err := c.Do(ctx, http.MethodPost, path, body, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("POST %s: %d %s", path, status, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode %s: %w (%s)", path, err, b)
	}
	return nil
}
