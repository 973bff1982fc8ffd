// Package gulltest starts real Gull containers (gull:latest) locked down the
// way Bay starts runtime containers (uid 1000, all capabilities dropped,
// no-new-privileges, pids and memory limits), beside a fixture web server
// (python3's http.server in a ship:latest container) on a Docker network
// the test creates, so the browser reaches http://web:8000 and nothing else.
// Everything it creates carries the label shipyard.test=gull and this run's
// id; Sweep removes what this run made.
package gulltest

import (
	"archive/tar"
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
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// Label marks everything this package creates; RunLabel holds this run's id.
const (
	Label    = "shipyard.test"
	RunLabel = "shipyard.test.run"
)

var runID = randomHex(6)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func labels() map[string]string { return map[string]string{Label: "gull", RunLabel: runID} }

// Env is a Docker network with the fixture server ("web") and a workspace
// volume that Gull containers mount.
type Env struct {
	cli     *client.Client
	Network string
	Volume  string
	web     string
}

// Gull is a running Gull container.
type Gull struct {
	ID       string
	Endpoint string
	Token    string
	env      *Env
}

// fixtureServer is the fixture web app: a login form, the page it submits
// to, a page that sets a persistent cookie and a page that never answers.
const fixtureServer = `
import http.server, socketserver, time, urllib.parse, html
PAGES = {
 "/login": "<!doctype html><title>Login</title><h1>Sign in</h1><form action='/welcome' method='get'>"
   "<label>Email <input name='email' type='email'></label> <label>Password <input name='pw' type='password'></label>"
   "<label><input type='checkbox' name='remember'> Remember me</label><button type='submit'>Log In</button></form>",
 "/big": "<!doctype html><title>Big</title>" + "".join("<p>line %d</p>" % i for i in range(300)),
 "/frame": "<!doctype html><title>Inner</title><button>Inside</button>",
 "/kitchen": """<!doctype html><title>Kitchen</title>
<a href="/login" target="_blank">New tab</a>
<button id="ask" onclick="document.getElementById('r').textContent = confirm('Sure?') ? 'yes' : 'no'">Ask</button><span id="r"></span>
<input type="file" id="f" onchange="document.getElementById('fn').textContent = this.files[0].name"><span id="fn"></span>
<iframe src="/frame" id="fr" width="300" height="80"></iframe>
<div id="src" style="width:60px;height:60px;background:red" onmousedown="window.down = 1">S</div>
<div id="dst" style="width:60px;height:60px;background:blue" onmouseup="document.getElementById('dr').textContent = window.down ? 'dropped' : ''">D</div><span id="dr"></span>
<button id="later" onclick="setTimeout(() => { const p = document.createElement('p'); p.id = 'late'; p.textContent = 'Arrived'; document.body.append(p) }, 300)">Later</button>
<div id="cd" style="cursor:pointer" onclick="this.textContent = 'div clicked'">Clickable div</div>
<input id="keys" aria-label="Keys" onkeydown="if (event.key === 'Enter') document.getElementById('k').textContent = 'enter:' + this.value"><span id="k"></span>
<button id="load" onclick="fetch('/api/data').then(r => r.json()).then(j => document.getElementById('api').textContent = j.v).catch(e => document.getElementById('api').textContent = 'blocked')">Load</button><span id="api"></span>
<button id="dbl" ondblclick="this.textContent = 'double'">Dbl</button>
<div style="height:3000px"></div>""",
}
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        if u.path == "/api/data":
            b = b'{"v":"server"}'
            self.send_response(200); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b); return
        if u.path == "/hang":
            time.sleep(3600); return
        if u.path == "/welcome":
            q = urllib.parse.parse_qs(u.query)
            body = "<!doctype html><title>Welcome</title><h1>Welcome, %s</h1><a href='/login'>Back</a>" % html.escape(q.get("email", [""])[0])
        elif u.path == "/cookie":
            self.send_response(200); self.send_header("Content-Type", "text/html")
            self.send_header("Set-Cookie", "sid=kept-across-rebuilds; Max-Age=86400; Path=/")
            self.end_headers(); self.wfile.write(b"<title>Cookie</title>set"); return
        elif u.path in PAGES:
            body = PAGES[u.path]
        else:
            self.send_response(404); self.end_headers(); return
        b = body.encode()
        self.send_response(200); self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("0.0.0.0", 8000), H).serve_forever()
`

// NewEnv creates the network, the volume and the fixture server.
func NewEnv(tb testing.TB) *Env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		tb.Fatalf("docker client: %v", err)
	}
	e := &Env{cli: cli, Network: "gulltest-" + randomHex(6), Volume: "gulltest-" + randomHex(6)}
	tb.Cleanup(func() { e.remove(tb) })
	if _, err := cli.NetworkCreate(ctx, e.Network, network.CreateOptions{Labels: labels()}); err != nil {
		tb.Fatalf("create network: %v", err)
	}
	if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: e.Volume, Labels: labels()}); err != nil {
		tb.Fatalf("create volume: %v", err)
	}
	shipImage := os.Getenv("SHIP_IMAGE")
	if shipImage == "" {
		shipImage = "ship:latest"
	}
	cfg := &container.Config{Image: shipImage, User: "1000:1000", Labels: labels(),
		Entrypoint: []string{"python3", "-c", fixtureServer}, Cmd: []string{}}
	hc := &container.HostConfig{CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
		Resources: container.Resources{Memory: 256 << 20, PidsLimit: ptr(int64(64))}}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{e.Network: {Aliases: []string{"web"}}}}
	c, err := cli.ContainerCreate(ctx, cfg, hc, nc, nil, "gulltest-web-"+randomHex(6))
	if err != nil {
		tb.Fatalf("create fixture server: %v", err)
	}
	e.web = c.ID
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		tb.Fatalf("start fixture server: %v", err)
	}
	return e
}

func (e *Env) remove(tb testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if e.web != "" {
		if err := e.cli.ContainerRemove(ctx, e.web, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			tb.Errorf("remove fixture server: %v", err)
		}
	}
	// Gull containers of this env are removed by their own cleanups first
	// (registered later, run earlier).
	if err := e.cli.NetworkRemove(ctx, e.Network); err != nil && !cerrdefs.IsNotFound(err) {
		tb.Errorf("remove network: %v", err)
	}
	if err := e.cli.VolumeRemove(ctx, e.Volume, true); err != nil && !cerrdefs.IsNotFound(err) {
		tb.Errorf("remove volume: %v", err)
	}
}

// Options of a Gull container.
type Options struct {
	Env map[string]string
	// HealthTimeout bounds the wait for /health (30s).
	HealthTimeout time.Duration
}

// StartGull starts gull:latest locked down on the env's network with the
// env's volume at /workspace, waits for /health and registers its removal.
func (e *Env) StartGull(tb testing.TB, opts Options) *Gull {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	image := os.Getenv("GULL_IMAGE")
	if image == "" {
		image = "gull:latest"
	}
	g := &Gull{Token: randomHex(16), env: e}
	env := []string{"GULL_TOKEN=" + g.Token}
	for k, v := range opts.Env {
		env = append(env, k+"="+v)
	}
	cfg := &container.Config{Image: image, User: "1000:1000", Env: env, Labels: labels(),
		ExposedPorts: nat.PortSet{"8115/tcp": struct{}{}}}
	hc := &container.HostConfig{
		PortBindings: nat.PortMap{"8115/tcp": {{HostIP: "127.0.0.1", HostPort: ""}}},
		CapDrop:      []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
		Resources: container.Resources{Memory: 1 << 30, PidsLimit: ptr(int64(256))},
		Mounts:    []mount.Mount{{Type: mount.TypeVolume, Source: e.Volume, Target: "/workspace"}},
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{e.Network: {Aliases: []string{"browser"}}}}
	c, err := e.cli.ContainerCreate(ctx, cfg, hc, nc, nil, "gulltest-"+randomHex(6))
	if err != nil {
		tb.Fatalf("create gull: %v", err)
	}
	g.ID = c.ID
	tb.Cleanup(func() {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
		defer rcancel()
		// A gull built with -race (GULL_IMAGE=gull:race, see docs/browser.md)
		// reports data races in its log.
		if logs, err := g.Logs(rctx); err == nil && strings.Contains(logs, "WARNING: DATA RACE") {
			tb.Errorf("gull reported a data race:\n%s", logs)
		}
		if err := e.cli.ContainerRemove(rctx, g.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			tb.Errorf("remove gull: %v", err)
		}
	})
	if err := e.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		tb.Fatalf("start gull: %v", err)
	}
	insp, err := e.cli.ContainerInspect(ctx, c.ID)
	if err != nil {
		tb.Fatalf("inspect gull: %v", err)
	}
	binds := insp.NetworkSettings.Ports["8115/tcp"]
	if len(binds) == 0 {
		tb.Fatal("port 8115 not published")
	}
	g.Endpoint = "http://127.0.0.1:" + binds[0].HostPort
	if opts.HealthTimeout == 0 {
		opts.HealthTimeout = 30 * time.Second
	}
	deadline := time.Now().Add(opts.HealthTimeout)
	for {
		res, err := http.Get(g.Endpoint + "/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			logs, _ := g.Logs(ctx)
			tb.Fatalf("gull not healthy within %v; logs:\n%s", opts.HealthTimeout, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return g
}

// ExecResult is /exec's answer.
type ExecResult struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exit_code"`
}

// Post sends a JSON body with the token and decodes the answer into out.
func (g *Gull) Post(tb testing.TB, path string, body, out any) int {
	tb.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, g.Endpoint+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+g.Token)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 11 * time.Minute}).Do(req)
	if err != nil {
		tb.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			tb.Fatalf("POST %s: decode %q: %v", path, data, err)
		}
	}
	return res.StatusCode
}

// Exec runs one command line.
func (g *Gull) Exec(tb testing.TB, cmd string, timeout float64) ExecResult {
	tb.Helper()
	var r ExecResult
	if code := g.Post(tb, "/exec", map[string]any{"cmd": cmd, "timeout": timeout, "sandbox_id": "sbx-test"}, &r); code != http.StatusOK {
		tb.Fatalf("exec %q: HTTP %d", cmd, code)
	}
	return r
}

// MustExec runs a command that must succeed.
func (g *Gull) MustExec(tb testing.TB, cmd string) string {
	tb.Helper()
	r := g.Exec(tb, cmd, 30)
	if r.ExitCode != 0 {
		tb.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", cmd, r.ExitCode, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// ReadFile copies a file out of the container.
func (g *Gull) ReadFile(ctx context.Context, path string) ([]byte, error) {
	rc, _, err := g.env.cli.CopyFromContainer(ctx, g.ID, path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		return nil, err
	}
	return io.ReadAll(tr)
}

// Shell runs a command in the container as its user (uid 1000).
func (g *Gull) Shell(ctx context.Context, script string) (string, error) {
	ex, err := g.env.cli.ContainerExecCreate(ctx, g.ID, container.ExecOptions{Cmd: []string{"sh", "-c", script}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", err
	}
	att, err := g.env.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", err
	}
	defer att.Close()
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, att.Reader)
	return out.String(), err
}

// Stop stops the container gracefully (gull closes Chromium, which writes
// its cookies to the profile).
func (g *Gull) Stop(ctx context.Context) error {
	secs := 15
	return g.env.cli.ContainerStop(ctx, g.ID, container.StopOptions{Timeout: &secs})
}

// Logs returns the container's output.
func (g *Gull) Logs(ctx context.Context) (string, error) {
	rc, err := g.env.cli.ContainerLogs(ctx, g.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, rc)
	return out.String(), err
}

// MemoryUsage returns the container's memory use in bytes (cgroup, without
// the page cache Docker subtracts).
func (g *Gull) MemoryUsage(ctx context.Context) (uint64, error) {
	st, err := g.env.cli.ContainerStatsOneShot(ctx, g.ID)
	if err != nil {
		return 0, err
	}
	defer st.Body.Close()
	var v container.StatsResponse
	if err := json.NewDecoder(st.Body).Decode(&v); err != nil {
		return 0, err
	}
	used := v.MemoryStats.Usage
	if c, ok := v.MemoryStats.Stats["inactive_file"]; ok && c < used {
		used -= c
	}
	return used, nil
}

// Sweep removes whatever this run left (containers, then networks and volumes).
func Sweep(ctx context.Context) error {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	f := filters.NewArgs(filters.Arg("label", RunLabel+"="+runID))
	var errs []string
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err == nil {
		for _, n := range ns {
			if err := cli.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, err.Error())
			}
		}
	}
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err == nil {
		for _, v := range vs.Volumes {
			if err := cli.VolumeRemove(ctx, v.Name, true); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// RunToExit runs gull:latest as user (e.g. "0:0") with the env's security
// options and returns its exit code and logs once it stops (within 30 s).
func (e *Env) RunToExit(tb testing.TB, user string) (int64, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	image := os.Getenv("GULL_IMAGE")
	if image == "" {
		image = "gull:latest"
	}
	hc := &container.HostConfig{CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
		Resources: container.Resources{Memory: 256 << 20, PidsLimit: ptr(int64(64))}}
	c, err := e.cli.ContainerCreate(ctx, &container.Config{Image: image, User: user, Labels: labels()}, hc, nil, nil, "gulltest-"+randomHex(6))
	if err != nil {
		tb.Fatalf("create: %v", err)
	}
	tb.Cleanup(func() {
		_ = e.cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	})
	waitC, errC := e.cli.ContainerWait(ctx, c.ID, container.WaitConditionNextExit)
	if err := e.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		tb.Fatalf("start: %v", err)
	}
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
	case err := <-errC:
		tb.Fatalf("wait: %v", err)
	case <-time.After(30 * time.Second):
		tb.Fatal("gull as root did not exit")
	}
	g := &Gull{ID: c.ID, env: e}
	logs, _ := g.Logs(ctx)
	return code, logs
}
