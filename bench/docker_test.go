package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// shipImage is the image every sandbox and every floor run uses.
const shipImage = "ship:latest"

// benchLabel marks the containers and volumes the floor runs create; Bay's
// own carry bay.instance_id=bench-…. Both are swept at start and at the end.
const benchLabel = "shipyard.bench"

// floorPrefix names floor containers and volumes.
const floorPrefix = "bench-floor-"

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newDocker() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// sweepBench removes what a benchmark run (this one or one that crashed)
// left: floor containers/volumes and everything of Bay instances "bench-…".
// It never touches anything else.
func sweepBench(ctx context.Context, cli *client.Client) (removed int, err error) {
	ours := func(labels map[string]string) bool {
		_, floor := labels[benchLabel]
		return floor || strings.HasPrefix(labels["bay.instance_id"], "bench-")
	}
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return 0, err
	}
	for _, c := range cs {
		if ours(c.Labels) {
			if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err == nil {
				removed++
			}
		}
	}
	vols, err := cli.VolumeList(ctx, volume.ListOptions{})
	if err != nil {
		return removed, err
	}
	for _, v := range vols.Volumes {
		if ours(v.Labels) || strings.HasPrefix(v.Name, floorPrefix) {
			if err := cli.VolumeRemove(ctx, v.Name, true); err == nil {
				removed++
			}
		}
	}
	nets, err := cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return removed, err
	}
	for _, n := range nets {
		if ours(n.Labels) {
			if err := cli.NetworkRemove(ctx, n.ID); err == nil {
				removed++
			}
		}
	}
	return removed, nil
}

// shipOfSandbox finds the container of a Bay sandbox by its label and reads
// the published port and SHIP_TOKEN the way an operator would.
func shipOfSandbox(ctx context.Context, cli *client.Client, sandboxID string) (*shipTarget, error) {
	cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "bay.sandbox_id="+sandboxID))})
	if err != nil {
		return nil, err
	}
	if len(cs) != 1 {
		return nil, fmt.Errorf("sandbox %s: %d running containers", sandboxID, len(cs))
	}
	insp, err := cli.ContainerInspect(ctx, cs[0].ID)
	if err != nil {
		return nil, err
	}
	st := &shipTarget{ContainerID: cs[0].ID, http: newHTTPClient()}
	for _, e := range insp.Config.Env {
		if v, ok := strings.CutPrefix(e, "SHIP_TOKEN="); ok {
			st.Token = v
		}
	}
	binds := insp.NetworkSettings.Ports["8123/tcp"]
	if len(binds) == 0 || st.Token == "" {
		return nil, fmt.Errorf("sandbox %s: no published port or token", sandboxID)
	}
	st.Endpoint = "http://127.0.0.1:" + binds[0].HostPort
	for _, n := range insp.NetworkSettings.Networks {
		if n.IPAddress != "" {
			st.IPEndpoint = "http://" + n.IPAddress + ":8123"
			break
		}
	}
	return st, nil
}

// dockerExec runs argv in a container (as its user) and returns stdout+stderr.
func dockerExec(ctx context.Context, cli *client.Client, id string, argv ...string) (string, error) {
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", err
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", err
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		return out.String(), err
	}
	return out.String(), nil
}

// shipRSS reads VmRSS and VmHWM (KiB) of the process named ship in the
// container (tini and the kernel excluded).
func shipRSS(ctx context.Context, cli *client.Client, id string) (rss, hwm int, err error) {
	out, err := dockerExec(ctx, cli, id, "sh", "-c",
		`for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = ship ] && cat $p/status; done`)
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(out)
}

// floorArgs are the flags Bay's Docker driver gives a sandbox container
// (its network, user, capabilities, no-new-privileges, pids/memory/CPU
// limits of the default profile, the Ship port on 127.0.0.1, a named volume
// at /workspace).
func floorArgs(name, token, network string, port int) []string {
	return []string{"run", "-d", "--name", name, "--label", benchLabel + "=floor", "--network", network,
		"--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--pids-limit", "256", "-m", "1g", "--cpus", "1",
		"-p", "127.0.0.1:" + strconv.Itoa(port) + ":8123", "-e", "SHIP_TOKEN=" + token,
		"-v", name + ":/workspace", shipImage}
}

// floorRun is one start of a raw Ship container to its first call.
type floorRun struct {
	total  time.Duration // start → first call answered
	health time.Duration // start → first /health 200
	// Engine API floor only: container create and start calls, and the time
	// from the start call's return to the first /health 200.
	create, start, ready time.Duration
	started              time.Time
	remove               func(context.Context)
}

// firstCall is the first call a cold start is timed to: `1+1` or `echo hi`.
type firstCall func(ctx context.Context, st *shipTarget) error

func firstPython(ctx context.Context, st *shipTarget) error { return st.python(ctx, "1+1", "2") }
func firstShell(ctx context.Context, st *shipTarget) error  { return st.shell(ctx, "echo hi", "hi") }

// floorCLI times `docker run` of the image to its first call straight to Ship.
func floorCLI(ctx context.Context, cli *client.Client, port int, network string, first firstCall) (*floorRun, error) {
	name := floorPrefix + randHex(5)
	token := randHex(16)
	fr := &floorRun{remove: func(ctx context.Context) {
		_ = cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
		_ = cli.VolumeRemove(ctx, name, true)
	}}
	t0 := time.Now()
	if out, err := exec.CommandContext(ctx, "docker", floorArgs(name, token, network, port)...).CombinedOutput(); err != nil {
		return fr, fmt.Errorf("docker run: %v: %s", err, out)
	}
	ep := "http://127.0.0.1:" + strconv.Itoa(port)
	return fr, fr.firstExec(ctx, t0, ep, token, first)
}

// floorAPI does the same through the Engine API, the calls Bay's driver makes
// (volume create, container create, start, inspect for the port).
func floorAPI(ctx context.Context, cli *client.Client, network string, first firstCall) (*floorRun, error) {
	name := floorPrefix + randHex(5)
	token := randHex(16)
	fr := &floorRun{remove: func(ctx context.Context) {
		_ = cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
		_ = cli.VolumeRemove(ctx, name, true)
	}}
	labels := map[string]string{benchLabel: "floor"}
	pids := int64(256)
	t0 := time.Now()
	if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels}); err != nil {
		return fr, err
	}
	cfg := &container.Config{Image: shipImage, User: "1000:1000", Env: []string{"SHIP_TOKEN=" + token}, Labels: labels,
		ExposedPorts: nat.PortSet{"8123/tcp": struct{}{}}}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(network),
		CapDrop:     []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
		Resources:    container.Resources{Memory: 1 << 30, NanoCPUs: 1e9, PidsLimit: &pids},
		PortBindings: nat.PortMap{"8123/tcp": {{HostIP: "127.0.0.1"}}},
		Mounts:       []mount.Mount{{Type: mount.TypeVolume, Source: name, Target: "/workspace"}},
	}
	t1 := time.Now()
	created, err := cli.ContainerCreate(ctx, cfg, hc, nil, nil, name)
	if err != nil {
		return fr, err
	}
	t2 := time.Now()
	fr.create = t2.Sub(t1)
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return fr, err
	}
	fr.started = time.Now()
	fr.start = fr.started.Sub(t2)
	insp, err := cli.ContainerInspect(ctx, created.ID)
	if err != nil {
		return fr, err
	}
	binds := insp.NetworkSettings.Ports["8123/tcp"]
	if len(binds) == 0 {
		return fr, fmt.Errorf("port not published")
	}
	return fr, fr.firstExec(ctx, t0, "http://127.0.0.1:"+binds[0].HostPort, token, first)
}

// firstExec polls /health every 5 ms, then makes the first call.
func (fr *floorRun) firstExec(ctx context.Context, t0 time.Time, endpoint, token string, first firstCall) error {
	h, err := pollHealthy(endpoint+"/health", t0, 2*time.Minute, 5*time.Millisecond, nil)
	if err != nil {
		return err
	}
	fr.health = h
	if !fr.started.IsZero() {
		fr.ready = t0.Add(h).Sub(fr.started)
	}
	st := &shipTarget{Endpoint: endpoint, Token: token, http: newHTTPClient()}
	defer st.http.CloseIdleConnections()
	if err := first(ctx, st); err != nil {
		return err
	}
	fr.total = time.Since(t0)
	return nil
}

// kernelStart reads the "kernel started" line of Ship's log in a container:
// from Ship spawning the kernel to the kernel's first answer.
func kernelStart(ctx context.Context, cli *client.Client, id string) (time.Duration, error) {
	rc, err := cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out.String(), "\n") {
		var e struct {
			Msg  string `json:"msg"`
			Took int64  `json:"took"` // slog's JSON: nanoseconds
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "kernel started" {
			return time.Duration(e.Took), nil
		}
	}
	return 0, fmt.Errorf("container %s: no \"kernel started\" line in Ship's log", id)
}

// pythonPass times `python3 -c pass` in a container, as its user, with bash's
// own clock: the interpreter's floor in the kernel's own file system.
func pythonPass(ctx context.Context, cli *client.Client, id string) (time.Duration, error) {
	out, err := dockerExec(ctx, cli, id, "bash", "-c", "TIMEFORMAT=%3R; time python3 -c pass")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return 0, fmt.Errorf("python3 -c pass: no timing in %q", out)
	}
	s, err := strconv.ParseFloat(f[len(f)-1], 64)
	if err != nil {
		return 0, fmt.Errorf("python3 -c pass: %q: %w", out, err)
	}
	return time.Duration(s * float64(time.Second)), nil
}
