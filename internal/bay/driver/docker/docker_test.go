package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/driver/drivertest"
)

// shipImage is the real runtime image (COMPAT §6); `make test` builds it.
// BAY_TEST_SHIP_IMAGE names another image with the same contract (a shell,
// cat, /workspace owned by 1000, a server on 8123 with GET /health).
func shipImage() string {
	if img := os.Getenv("BAY_TEST_SHIP_IMAGE"); img != "" {
		return img
	}
	return "ship:latest"
}

// TestConformance runs the driver suite on the tiny test runtime (always) and
// on the real Ship image (when it has been built).
func TestConformance(t *testing.T) {
	t.Run("testserver", func(t *testing.T) {
		img := testServerImage(t)
		d, _ := newDriver(t, Config{})
		cli := rawClient(t)
		drivertest.Run(t, d, drivertest.Options{
			Image:      img,
			PortEnv:    "PORT",
			HealthPath: "/health",
			WriteFile: func(ctx context.Context, c driver.Container, path, data string) error {
				_, err := execIn(ctx, cli, c.ID, "/testserver", "write", path, data)
				return err
			},
			ReadFile: func(ctx context.Context, c driver.Container, path string) (string, error) {
				return execIn(ctx, cli, c.ID, "/testserver", "read", path)
			},
			Dial: func(ctx context.Context, c driver.Container, addr string) error {
				out, err := execIn(ctx, cli, c.ID, "/testserver", "dial", addr)
				if err == nil && strings.TrimSpace(out) != "open" {
					err = errors.New(out)
				}
				return err
			},
		})
	})
	t.Run("ship", func(t *testing.T) {
		cli := rawClient(t)
		img := shipImage()
		if _, err := cli.ImageInspect(t.Context(), img); err != nil {
			t.Skipf("%s is not present (%v); `make test` builds it first", img, err)
		}
		d, _ := newDriver(t, Config{PullPolicy: PullNever})
		drivertest.Run(t, d, drivertest.Options{
			Image:      img,
			Port:       8123,
			PortEnv:    "SHIP_PORT",
			HealthPath: "/health",
			WriteFile: func(ctx context.Context, c driver.Container, path, data string) error {
				_, err := execIn(ctx, cli, c.ID, "sh", "-c", `printf '%s' "$1" > "$2"`, "sh", data, path)
				return err
			},
			ReadFile: func(ctx context.Context, c driver.Container, path string) (string, error) {
				return execIn(ctx, cli, c.ID, "cat", path)
			},
			Dial: func(ctx context.Context, c driver.Container, addr string) error {
				host, port, _ := net.SplitHostPort(addr)
				_, err := execIn(ctx, cli, c.ID, "bash", "-c", `exec 3<>"/dev/tcp/$1/$2"`, "bash", host, port)
				return err
			},
		})
	})
}

func testSpec(run, name, img string) InstanceSpec {
	return InstanceSpec{
		Name:   "bay-dt-" + run + "-" + name,
		Image:  img,
		Labels: map[string]string{labelTest: run, driver.LabelManaged: "false", driver.LabelSessionID: name},
		Port:   8123,
	}
}

func getHealth(t *testing.T, endpoint string) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, endpoint+"/health", nil)
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s/health: %v", endpoint, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCreateHardening checks, with docker inspect, that a created container has
// every least-privilege setting of DESIGN.md rule 11.
func TestCreateHardening(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	d, run := newDriver(t, Config{})
	ctx := t.Context()

	vol := "bay-dt-" + run + "-vol"
	if err := d.CreateVolume(ctx, vol, map[string]string{labelTest: run}, 0); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(run, "hard", img)
	spec.Volume = vol
	spec.Hostname = "shiphost"
	spec.Env = map[string]string{"ZED": "last", "ALPHA": "a:b:c", "MIDDLE": "x=y"}
	spec.Resources = driver.Resources{NanoCPUs: 500_000_000, MemoryBytes: 128 << 20}
	id, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	hc := info.HostConfig
	checks := []struct {
		name      string
		got, want any
	}{
		{"Name", strings.TrimPrefix(info.Name, "/"), spec.Name},
		{"Config.User", info.Config.User, "1000:1000"},
		{"Config.WorkingDir", info.Config.WorkingDir, "/workspace"},
		{"Config.Hostname", info.Config.Hostname, "shiphost"},
		{"Config.Env (ours, sorted)", strings.Join(ourEnv(info.Config.Env, spec.Env), " "), "ALPHA=a:b:c MIDDLE=x=y ZED=last"},
		{"Config.ExposedPorts has 8123/tcp", hasPort(info.Config.ExposedPorts, "8123/tcp"), true},
		{"HostConfig.CapDrop", strings.Join(hc.CapDrop, ","), "ALL"},
		{"HostConfig.CapAdd", len(hc.CapAdd), 0},
		{"HostConfig.Privileged", hc.Privileged, false},
		{"HostConfig.SecurityOpt", strings.Join(hc.SecurityOpt, ","), "no-new-privileges"},
		{"HostConfig.PidsLimit", derefInt(hc.PidsLimit), int64(256)},
		{"HostConfig.Memory", hc.Memory, int64(128 << 20)},
		{"HostConfig.NanoCpus", hc.NanoCPUs, int64(500_000_000)},
		{"HostConfig.Init", hc.Init != nil && *hc.Init, false},
		{"HostConfig.RestartPolicy", string(hc.RestartPolicy.Name), "no"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	for k, v := range spec.Labels {
		if info.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, info.Config.Labels[k], v)
		}
	}
	if got := info.Config.Labels[driver.LabelRuntimePort]; got != "8123" {
		t.Errorf("label %s = %q, want 8123", driver.LabelRuntimePort, got)
	}
	if len(hc.Mounts) != 1 || hc.Mounts[0].Type != mount.TypeVolume || hc.Mounts[0].Source != vol ||
		hc.Mounts[0].Target != "/workspace" || hc.Mounts[0].ReadOnly {
		t.Errorf("mounts = %+v, want volume %s rw at /workspace", hc.Mounts, vol)
	}
	bindings := 0
	for p, bs := range hc.PortBindings {
		for _, b := range bs {
			bindings++
			if b.HostIP != "127.0.0.1" {
				t.Errorf("port %s bound on %q, want 127.0.0.1 only", p, b.HostIP)
			}
		}
	}
	if bindings == 0 {
		t.Error("runtime port not published (default config publishes on 127.0.0.1)")
	}

	ep, err := d.Start(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	getHealth(t, ep)
	info, err = cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for p, bs := range info.NetworkSettings.Ports {
		for _, b := range bs {
			if b.HostIP != "127.0.0.1" {
				t.Errorf("running: port %s published on %q, want 127.0.0.1", p, b.HostIP)
			}
		}
	}
	// What the process actually gets: uid 1000, no capabilities, no_new_privs.
	id1000, err := execIn(ctx, cli, id, "/testserver", "id")
	if err != nil || strings.TrimSpace(id1000) != "1000:1000" {
		t.Errorf("process identity = %q (%v), want 1000:1000", id1000, err)
	}
	status, err := execIn(ctx, cli, id, "/testserver", "read", "/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(status, want) {
			t.Errorf("/proc/self/status lacks %q", want)
		}
	}
	// The fresh volume is writable by uid 1000 (its root takes the image's /workspace ownership).
	if _, err := execIn(ctx, cli, id, "/testserver", "write", "/workspace/probe", "ok"); err != nil {
		t.Errorf("uid 1000 cannot write the workspace volume: %v", err)
	}
}

func ourEnv(all []string, spec map[string]string) []string {
	var out []string
	for _, kv := range all {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := spec[k]; ok {
			out = append(out, kv)
		}
	}
	return out
}

func hasPort(ps nat.PortSet, p nat.Port) bool { _, ok := ps[p]; return ok }

func derefInt(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func TestPidsLimitFromSpec(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	d, run := newDriver(t, Config{DefaultPidsLimit: 100})
	for _, tc := range []struct {
		name string
		spec int64
		want int64
	}{{"default from config", 0, 100}, {"from spec", 64, 64}} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(run, "pids-"+strconv.FormatInt(tc.spec, 10), img)
			spec.Resources.PidsLimit = tc.spec
			id, err := d.Create(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			info, err := cli.ContainerInspect(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got := derefInt(info.HostConfig.PidsLimit); got != tc.want {
				t.Fatalf("PidsLimit = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPullPolicy(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	cases := []struct {
		name    string
		policy  PullPolicy
		image   string
		wantErr error // nil = created
	}{
		// No registry is reachable here, so success proves no pull was tried.
		{"if_not_present uses a present image offline", PullIfNotPresent, img, nil},
		{"never uses a present image", PullNever, img, nil},
		{"never with a missing image", PullNever, "bay-drivertest-absent:" + randHex(4), driver.ErrImageNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, run := newDriver(t, Config{PullPolicy: tc.policy})
			spec := testSpec(run, "pull", tc.image)
			id, err := d.Create(t.Context(), spec)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if st, _ := d.Status(t.Context(), id); st != driver.StateCreated {
					t.Fatalf("state %q", st)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Create err = %v, want %v", err, tc.wantErr)
			}
			if errors.Is(err, driver.ErrNotFound) {
				t.Errorf("a missing image must not look like a missing instance: %v", err)
			}
			if _, err := cli.ContainerInspect(t.Context(), spec.Name); !cerrdefs.IsNotFound(err) {
				t.Fatalf("container %s left behind after a failed create (inspect: %v)", spec.Name, err)
			}
		})
	}
}

// TestEndpointModes starts a container under each connect mode and checks the
// endpoint has the expected shape and answers.
func TestEndpointModes(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	_, netRun := newDriver(t, Config{})
	bayNet := "bay-dt-" + netRun + "-baynet"
	if _, err := cli.NetworkCreate(t.Context(), bayNet, network.CreateOptions{Driver: "bridge", Labels: map[string]string{labelTest: netRun}}); err != nil {
		t.Fatal(err)
	}
	freePort := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}

	type want struct {
		host      string // "ip:<network>" = the container's IP on that network
		port      string // "published" = the host port docker chose
		published bool   // runtime port published on 127.0.0.1
	}
	cases := []struct {
		name        string
		cfg         Config
		specNetwork bool
		want        want
	}{
		{"auto, no network: sandbox network IP, port still published", Config{}, false, want{"ip:" + DefaultSandboxNetwork, "8123", true}},
		{"auto, configured network: its IP", Config{Network: bayNet}, false, want{"ip:" + bayNet, "8123", true}},
		{"auto, missing network: sandbox network IP, port still published", Config{Network: "bay-dt-nonexistent-" + netRun}, false, want{"ip:" + DefaultSandboxNetwork, "8123", true}},
		{"auto, publishing off: sandbox network IP", Config{PublishPorts: Bool(false)}, false, want{"ip:" + DefaultSandboxNetwork, "8123", false}},
		{"host_port", Config{ConnectMode: ConnectHostPort, Network: bayNet}, false, want{"127.0.0.1", "published", true}},
		{"host_port, fixed port", Config{ConnectMode: ConnectHostPort, HostPort: freePort()}, false, want{"127.0.0.1", "fixed", true}},
		{"container_network, configured network", Config{ConnectMode: ConnectContainerNetwork, Network: bayNet}, false, want{"ip:" + bayNet, "8123", false}},
		{"container_network, sandbox network", Config{ConnectMode: ConnectContainerNetwork}, false, want{"ip:" + DefaultSandboxNetwork, "8123", false}},
		{"auto, session + configured network: configured IP", Config{Network: bayNet}, true, want{"ip:" + bayNet, "8123", true}},
		{"auto, session network: its IP", Config{}, true, want{"ip:session", "8123", true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, run := newDriver(t, tc.cfg)
			ctx := t.Context()
			spec := testSpec(run, "ep", img)
			sessNet := ""
			if tc.specNetwork {
				sessNet = "bay-dt-" + run + "-sess"
				if err := d.CreateNetwork(ctx, sessNet, map[string]string{labelTest: run}); err != nil {
					t.Fatal(err)
				}
				spec.Network = sessNet
			}
			id, err := d.Create(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			ep, err := d.Start(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			info, err := cli.ContainerInspect(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(ep)
			if err != nil {
				t.Fatal(err)
			}
			bindings := info.NetworkSettings.Ports["8123/tcp"]
			wantHost := tc.want.host
			if n, ok := strings.CutPrefix(wantHost, "ip:"); ok {
				if n == "session" {
					n = sessNet
				}
				es := info.NetworkSettings.Networks[n]
				if es == nil || es.IPAddress == "" {
					t.Fatalf("container not on network %s: %v", n, slices.Collect(mapsKeys(info.NetworkSettings.Networks)))
				}
				wantHost = es.IPAddress
			}
			wantPort := tc.want.port
			switch wantPort {
			case "published":
				if len(bindings) == 0 {
					t.Fatalf("no port binding: %+v", info.NetworkSettings.Ports)
				}
				wantPort = bindings[0].HostPort
			case "fixed":
				wantPort = strconv.Itoa(tc.cfg.HostPort)
			}
			if u.Scheme != "http" || u.Hostname() != wantHost || u.Port() != wantPort {
				t.Fatalf("endpoint %s, want http://%s:%s", ep, wantHost, wantPort)
			}
			if got := len(bindings) > 0; got != tc.want.published {
				t.Fatalf("published = %v (%+v), want %v", got, bindings, tc.want.published)
			}
			for _, b := range bindings {
				if b.HostIP != "127.0.0.1" {
					t.Fatalf("published on %q", b.HostIP)
				}
			}
			getHealth(t, ep)
			if err := d.Destroy(ctx, id); err != nil {
				t.Fatal(err)
			}
			if sessNet != "" {
				if err := d.DeleteNetwork(ctx, sessNet); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func mapsKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestNoNetwork: a profile without network gets an internal network with no
// route out and no traffic between instances, no published port, and Bay still
// reaches its runtime.
func TestNoNetwork(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	// The driver creates the isolated network itself (without our test label):
	// remove it after the sweep of the containers on it (cleanups run LIFO).
	iso := "bay-dt-" + randHex(4) + "-iso"
	t.Cleanup(func() {
		if err := cli.NetworkRemove(context.Background(), iso); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing %s: %v", iso, err)
		}
	})
	d, run := newDriver(t, Config{IsolatedNetwork: iso, Network: "bay-dt-whatever"})
	ctx := t.Context()

	spec := testSpec(run, "nonet", img)
	spec.NoNetwork = true
	id, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := d.Start(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	getHealth(t, ep)
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if string(info.HostConfig.NetworkMode) != iso || len(info.NetworkSettings.Networks) != 1 {
		t.Fatalf("network mode %q, networks %v; want only %s", info.HostConfig.NetworkMode, slices.Collect(mapsKeys(info.NetworkSettings.Networks)), iso)
	}
	if len(info.HostConfig.PortBindings) != 0 {
		t.Fatalf("port bindings %v on a no-network instance", info.HostConfig.PortBindings)
	}
	n, err := cli.NetworkInspect(ctx, iso, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Internal || n.Options["com.docker.network.bridge.enable_icc"] != "false" {
		t.Fatalf("isolated network: internal=%v options=%v", n.Internal, n.Options)
	}
	if u, _ := url.Parse(ep); u.Hostname() != info.NetworkSettings.Networks[iso].IPAddress {
		t.Fatalf("endpoint %s is not the container's IP on %s", ep, iso)
	}

	// A non-internal network squatting on the name is refused.
	squat := "bay-dt-" + run + "-squat"
	if _, err := cli.NetworkCreate(ctx, squat, network.CreateOptions{Driver: "bridge", Labels: map[string]string{labelTest: run}}); err != nil {
		t.Fatal(err)
	}
	d2, _ := newDriver(t, Config{IsolatedNetwork: squat})
	spec2 := testSpec(run, "nonet-squat", img)
	spec2.NoNetwork = true
	if _, err := d2.Create(ctx, spec2); err == nil || !strings.Contains(err.Error(), "not internal") {
		t.Fatalf("Create on a non-internal isolated network: %v", err)
	}
}

func TestStartFailureReportsExit(t *testing.T) {
	img := testServerImage(t)
	d, run := newDriver(t, Config{})
	spec := testSpec(run, "crash", img)
	spec.Env = map[string]string{"PORT": "not-a-port"}
	id, err := d.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	// Start may see the process before or after it dies; either way the
	// container ends exited, and the error (when Start catches it) says why.
	_, startErr := d.Start(t.Context(), id)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := d.Status(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st == driver.StateExited {
			break // left for the caller to Destroy
		}
		if time.Now().After(deadline) {
			t.Fatalf("crashing container still %q", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	err = startErr
	if err == nil {
		info, ierr := rawClient(t).ContainerInspect(t.Context(), id)
		if ierr != nil {
			t.Fatal(ierr)
		}
		err = d.exitedError(t.Context(), id, info)
	}
	if !strings.Contains(err.Error(), "exit code 1") || !strings.Contains(err.Error(), "not-a-port") {
		t.Fatalf("Start error lacks exit code or output: %v", err)
	}
	if err := d.Destroy(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}

func TestInUse(t *testing.T) {
	img := testServerImage(t)
	d, run := newDriver(t, Config{})
	ctx := t.Context()
	vol, netName := "bay-dt-"+run+"-busyvol", "bay-dt-"+run+"-busynet"
	labels := map[string]string{labelTest: run}
	if err := d.CreateVolume(ctx, vol, labels, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateNetwork(ctx, netName, labels); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(run, "busy", img)
	spec.Volume, spec.Network = vol, netName
	id, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteVolume(ctx, vol); !errors.Is(err, driver.ErrInUse) {
		t.Errorf("DeleteVolume of a mounted volume: %v, want ErrInUse", err)
	}
	if err := d.DeleteNetwork(ctx, netName); !errors.Is(err, driver.ErrInUse) {
		t.Errorf("DeleteNetwork of a used network: %v, want ErrInUse", err)
	}
	if err := d.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteVolume(ctx, vol); err != nil {
		t.Errorf("DeleteVolume after Destroy: %v", err)
	}
	if err := d.DeleteNetwork(ctx, netName); err != nil {
		t.Errorf("DeleteNetwork after Destroy: %v", err)
	}
}

// TestCreateFailuresLeaveNothing: every failing Create leaves no container.
func TestCreateFailuresLeaveNothing(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	cases := []struct {
		name string
		cfg  Config
		mod  func(*InstanceSpec)
		is   error
	}{
		{"missing session network", Config{}, func(s *InstanceSpec) { s.Network = "bay-dt-no-such-net-" + randHex(3) }, driver.ErrNotFound},
		{"missing runtime", Config{}, func(s *InstanceSpec) { s.Runtime = "bay-no-such-runtime" }, nil},
		{"canceled context", Config{}, nil, context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, run := newDriver(t, tc.cfg)
			spec := testSpec(run, "fail", img)
			if tc.mod != nil {
				tc.mod(&spec)
			}
			ctx := t.Context()
			if tc.is == context.Canceled {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				cancel()
			}
			_, err := d.Create(ctx, spec)
			if err == nil {
				t.Fatal("Create succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			cs, err := cli.ContainerList(t.Context(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelTest+"="+run))})
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 0 {
				t.Fatalf("%d containers left behind", len(cs))
			}
		})
	}
}

func TestStopTimeoutAndStatus(t *testing.T) {
	img := testServerImage(t)
	// A long grace, so that a stop that waited for it (instead of the SIGTERM
	// ending the server) is told apart from a slow stop on a loaded machine.
	d, run := newDriver(t, Config{StopTimeout: 30 * time.Second})
	ctx := t.Context()
	id, err := d.Create(ctx, testSpec(run, "stop", img))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The test server exits on SIGTERM, so a stop is quick, well under the timeout.
	start := time.Now()
	if err := d.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("Stop took %s: it waited for the grace period instead of the SIGTERM", el)
	}
	if st, err := d.Status(ctx, id); err != nil || st != driver.StateExited {
		t.Fatalf("Status after Stop = %q, %v", st, err)
	}
	// List by name label sees the exited instance with its labels.
	got, err := d.List(ctx, map[string]string{labelTest: run})
	if err != nil || len(got) != 1 || got[0].ID != id || got[0].State != driver.StateExited || got[0].Labels[driver.LabelSessionID] != "stop" {
		t.Fatalf("List = %+v, %v", got, err)
	}
}

func TestPing(t *testing.T) {
	d, _ := newDriver(t, Config{})
	if err := d.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	bad, err := New(Config{Socket: "unix:///nonexistent/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(t.Context()); err == nil {
		t.Fatal("Ping of a missing socket succeeded")
	}
}

// TestRuntimes: the engine's registered runtimes are listed (runc always; runsc
// because make test registers it), and a dead engine is an error, not an empty list.
func TestRuntimes(t *testing.T) {
	d, _ := newDriver(t, Config{})
	got, err := d.Runtimes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"runc", "runsc"} {
		if !slices.Contains(got, want) {
			t.Errorf("Runtimes() = %v, want %s among them (make docker registers runsc)", got, want)
		}
	}
	bad, err := New(Config{Socket: "unix:///nonexistent/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if rts, err := bad.Runtimes(t.Context()); err == nil {
		t.Fatalf("Runtimes of a missing socket = %v, nil error", rts)
	}
}

// TestRemoveIfOurs: the clean-up after a create cut off by its context removes
// the container only when it carries the spec's labels.
func TestRemoveIfOurs(t *testing.T) {
	img := testServerImage(t)
	d, run := newDriver(t, Config{})
	spec := testSpec(run, "cutoff", img)
	id, err := d.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	other := map[string]string{labelTest: run, driver.LabelSessionID: "someone-else"}
	d.removeIfOurs(t.Context(), spec.Name, other)
	if st, _ := d.Status(t.Context(), id); st != driver.StateCreated {
		t.Fatalf("someone else's container removed (state %q)", st)
	}
	d.removeIfOurs(t.Context(), spec.Name, spec.Labels)
	if st, _ := d.Status(t.Context(), id); st != driver.StateNotFound {
		t.Fatalf("our half-created container kept (state %q)", st)
	}
}

// TestCreateCutOffInFlight: a create whose context ends while the engine is
// making the container (or a session's network) leaves nothing behind, now or
// later. The engine finishes such a create after its client has gone; a check
// made at once missed it, and warm-pool members of a Bay stopped mid-fill
// stayed behind.
func TestCreateCutOffInFlight(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	d, run := newDriver(t, Config{})
	f := filters.NewArgs(filters.Arg("label", labelTest+"="+run))
	cases := []struct {
		kind   string
		create func(ctx context.Context, i int) (string, error) // → what the list shows of it
		list   func() ([]string, error)
	}{
		{"container", func(ctx context.Context, i int) (string, error) {
			return d.Create(ctx, testSpec(run, fmt.Sprintf("cut%d", i), img))
		}, func() (ids []string, err error) {
			cs, err := cli.ContainerList(t.Context(), container.ListOptions{All: true, Filters: f})
			for _, c := range cs {
				ids = append(ids, c.ID)
			}
			return ids, err
		}},
		{"network", func(ctx context.Context, i int) (string, error) {
			name := fmt.Sprintf("bay-dt-%s-cut%d", run, i)
			return name, d.CreateNetwork(ctx, name, map[string]string{labelTest: run})
		}, func() (names []string, err error) {
			ns, err := cli.NetworkList(t.Context(), network.ListOptions{Filters: f})
			for _, n := range ns {
				names = append(names, n.Name)
			}
			return names, err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			afters := []time.Duration{time.Millisecond, 3 * time.Millisecond, 10 * time.Millisecond,
				30 * time.Millisecond, 60 * time.Millisecond, 120 * time.Millisecond, 250 * time.Millisecond}
			var made []string
			for i, after := range afters {
				ctx, cancel := context.WithTimeout(t.Context(), after)
				ref, err := tc.create(ctx, i)
				cancel()
				switch {
				case err == nil:
					made = append(made, ref)
				case !errors.Is(err, context.DeadlineExceeded):
					t.Fatalf("create cut off after %v: %v, want a deadline error", after, err)
				}
			}
			if len(made) == len(afters) {
				t.Fatal("no create was cut off: the test exercised nothing")
			}
			time.Sleep(2 * time.Second) // what the engine was still making has been made
			have, err := tc.list()
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, ref := range have {
				if !slices.Contains(made, ref) {
					left = append(left, ref)
				}
			}
			if len(left) > 0 {
				t.Fatalf("cut-off creates left %v behind (%d creates answered)", left, len(made))
			}
		})
	}
}
