package bay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
	"golang.org/x/sys/unix"

	"github.com/shipyard/shipyard/internal/bay/driver/docker"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/test/baytest"
)

// outsideServer stands in for the Internet: an HTTP server in a network
// namespace the test makes, joined to the host by a veth pair and routed like
// any outside destination. Nothing leaves this machine.
func outsideServer(t *testing.T) netip.AddrPort {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	run := hex.EncodeToString(b)
	// 198.18.0.0/15 is the benchmarking range: nothing real lives there.
	host := netip.AddrFrom4([4]byte{198, 19, b[0], 1})
	srv := netip.AddrFrom4([4]byte{198, 19, b[0], 2})
	ns, vh, vn := "bay-egb-"+run, "bwh"+run, "bwn"+run
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("link", "add", vh, "type", "veth", "peer", "name", vn)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", vh).Run() })
	ip("link", "set", vn, "netns", ns)
	ip("addr", "add", host.String()+"/30", "dev", vh)
	ip("link", "set", vh, "up")
	ip("-n", ns, "addr", "add", srv.String()+"/30", "dev", vn)
	ip("-n", ns, "link", "set", vn, "up")
	ip("-n", ns, "route", "add", "default", "via", host.String())
	lnc, errc := make(chan net.Listener, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread() // left in the namespace: never unlocked, the thread ends with the goroutine
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ln, err := net.Listen("tcp", netip.AddrPortFrom(srv, 8080).String())
		if err != nil {
			errc <- err
			return
		}
		lnc <- ln
	}()
	var ln net.Listener
	select {
	case ln = <-lnc:
	case err := <-errc:
		t.Fatalf("server in netns: %v", err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("outside")) })}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return netip.AddrPortFrom(srv, 8080)
}

// routeAdd asks the kernel for a new default route over rtnetlink and prints
// the errno it answers (what `ip route add` would do; the image has no ip).
const routeAdd = `
import socket, struct
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
rt = struct.pack("BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 4, 0, 1, 0)
attr = struct.pack("HH4s", 8, 5, socket.inet_aton("1.1.1.1"))
body = rt + attr
s.send(struct.pack("IHHII", 16 + len(body), 24, 0x1 | 0x4 | 0x400 | 0x200, 1, 0) + body)
err = struct.unpack("i", s.recv(4096)[16:20])[0]
print("route add errno", -err)
`

// TestEgressProfiles: profiles with network none and {allow: [...]} through
// Bay: /v1/profiles shows the policies; a none sandbox runs python and shell
// but reaches nothing outside; an allow sandbox reaches the listed outside
// server and nothing unlisted, resolves no unlisted name, and its user code
// can neither rewrite resolv.conf nor add a route.
func TestEgressProfiles(t *testing.T) {
	baytest.Skip(t)
	out := outsideServer(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	allowID, noneID := "egress-"+hex.EncodeToString(suffix), "offline-"+hex.EncodeToString(suffix)
	// Beside the outside server: ranges and addresses that must stay closed
	// whatever the list says (metadata, every Docker bridge, the host).
	allow := []any{netip.PrefixFrom(out.Addr(), 30).Masked().String(), "169.254.0.0/16", "172.16.0.0/12", "pypi.internal.example"}
	for _, a := range hostAddrs(t) {
		allow = append(allow, a+"/32")
	}
	allowYAML, _ := json.Marshal(allow)
	// Registered before Bay starts, so it runs after Bay's own clean-up has
	// removed the containers: then the policy's network and rules go.
	t.Cleanup(func() {
		d, err := docker.New(docker.Config{})
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.RemoveEgress(ctx, allowID); err != nil {
			t.Errorf("RemoveEgress: %v", err)
		}
	})
	b := baytest.Start(t, baytest.Options{Listen: "0.0.0.0:0", ConfigYAML: fmt.Sprintf(`
profiles:
  - id: %s
    image: ship:latest
    network: {allow: %s}
  - id: %s
    image: ship:latest
    network: none
  - id: legacy-offline
    image: ship:latest
    no_network: true
  - id: python-default
    image: ship:latest
`, allowID, allowYAML, noneID), Env: map[string]string{"BAY_DRIVER__IMAGE_PULL_POLICY": "never"}})

	profiles := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/profiles"})
	got := map[string]any{}
	for _, p := range profiles["items"].([]any) {
		m := p.(map[string]any)
		got[m["id"].(string)] = m["network"]
	}
	want := map[string]any{allowID: map[string]any{"allow": allow}, noneID: "none", "legacy-offline": "none", "python-default": "full"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("/v1/profiles networks = %v, want %v", got, want)
	}

	fetch := fmt.Sprintf(`
import urllib.request
try:
    print(urllib.request.urlopen("http://%s/", timeout=3).read().decode())
except Exception as e:
    print("failed:", e)
`, out)
	pyOut := func(id, code string) string {
		t.Helper()
		r := b.Python(t, id, code)
		if r["success"] != true {
			t.Fatalf("python: %v", r)
		}
		return strings.TrimSpace(r["output"].(string))
	}

	// none: python and shell work, nothing outside answers.
	offline := b.CreateSandbox(t, map[string]any{"profile": noneID})
	if got := pyOut(offline, "print(1+1)"); got != "2" {
		t.Fatalf("python in a none sandbox: %q", got)
	}
	sh := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + offline + "/shell/exec", Body: map[string]any{"command": "id -u"}})
	if strings.TrimSpace(sh["output"].(string)) != "1000" {
		t.Fatalf("shell in a none sandbox: %v", sh)
	}
	if got := pyOut(offline, fetch); !strings.HasPrefix(got, "failed:") {
		t.Errorf("a none sandbox reached the outside server: %q", got)
	}

	// allow: the listed range answers; nothing else resolves.
	locked := b.CreateSandbox(t, map[string]any{"profile": allowID})
	if got := pyOut(locked, fetch); got != "outside" {
		t.Errorf("allow sandbox to the listed server: %q", got)
	}
	if got := pyOut(locked, `
import socket
try:
    print(socket.getaddrinfo("unlisted.invalid", 80))
except OSError as e:
    print("failed:", e)
`); !strings.HasPrefix(got, "failed:") {
		t.Errorf("an unlisted name resolved: %q", got)
	}
	sh = b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + locked + "/shell/exec",
		Body: map[string]any{"command": "{ echo nameserver 192.0.2.53 > /etc/resolv.conf; } 2>&1; echo rc=$?; grep -c 192.0.2.53 /etc/resolv.conf"}})
	if o := sh["output"].(string); !strings.Contains(o, "Permission denied") || !strings.HasSuffix(strings.TrimSpace(o), "rc=1\n0") {
		t.Errorf("rewriting resolv.conf: %q, want Permission denied", o)
	}
	if got := pyOut(locked, routeAdd); got != fmt.Sprintf("route add errno %d", unix.EPERM) {
		t.Errorf("adding a route: %q, want EPERM", got)
	}
	if got := pyOut(offline, routeAdd); got != fmt.Sprintf("route add errno %d", unix.EPERM) {
		t.Errorf("adding a route in a none sandbox: %q, want EPERM", got)
	}

	// Bay (listening on every address here), the Docker API ports, the host
	// and another sandbox stay out of reach from both, though the allow list
	// covers the host's addresses and every Docker bridge.
	u, _ := url.Parse(b.URL)
	iso, err := baytest.Docker(t).NetworkInspect(t.Context(), docker.DefaultIsolatedNetwork, network.InspectOptions{})
	if err != nil || len(iso.IPAM.Config) == 0 {
		t.Fatalf("inspect %s: %v", docker.DefaultIsolatedNetwork, err)
	}
	for id, targets := range map[string][]string{
		locked:  {"gw:" + u.Port(), "gw:2375", net.JoinHostPort(sandboxIP(t, offline), "8123")},
		offline: {net.JoinHostPort(iso.IPAM.Config[0].Gateway, u.Port()), net.JoinHostPort(sandboxIP(t, locked), "8123")},
	} {
		for _, a := range hostAddrs(t) {
			targets = append(targets, net.JoinHostPort(a, u.Port()))
		}
		slices.Sort(targets)
		targets = slices.Compact(targets)
		t0 := time.Now()
		js, _ := json.Marshal(targets)
		var res map[string]any
		if err := json.Unmarshal([]byte(pyOut(id, "TARGETS = "+string(js)+"\n"+probeScript)), &res); err != nil {
			t.Fatal(err)
		}
		for k, v := range res {
			if v == "open" || v == true {
				t.Errorf("from %s: %s is reachable", id, k)
			}
		}
		if len(res) != len(targets)+1 {
			t.Errorf("probe answered %d of %d: %v", len(res), len(targets)+1, res)
		}
		t.Logf("probes from %s: %v (%s)", id, res, time.Since(t0).Round(time.Millisecond))
	}
}

// resolveProbe prints how the sandbox's resolver answers an unlisted name:
// "nxdomain" (Bay's DNS answered: not allowed) or the resolver's error.
const resolveProbe = `
import socket
try:
    socket.getaddrinfo("unlisted.invalid", 80)
    print("resolved")
except socket.gaierror as e:
    print("nxdomain" if e.errno == socket.EAI_NONAME else "error %d" % e.errno)
`

// TestEgressSurvivesBayRestart: a sandbox of an allow profile outlives a Bay
// restart with its policy whole: while Bay is down its DNS does not answer
// (fails closed, the rules stay), and once Bay is back the same container's
// DNS answers again and the listed range is reached. Only unlisted names are
// asked, so no query leaves this machine.
func TestEgressSurvivesBayRestart(t *testing.T) {
	baytest.Skip(t)
	out := outsideServer(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	profile := "egress-restart-" + hex.EncodeToString(suffix)
	t.Cleanup(func() { // after both Bays' clean-up
		d, err := docker.New(docker.Config{})
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.RemoveEgress(ctx, profile); err != nil {
			t.Errorf("RemoveEgress: %v", err)
		}
	})
	opts := baytest.Options{DataDir: t.TempDir(), InstanceID: model.NewID("test"), ConfigYAML: fmt.Sprintf(`
profiles:
  - id: %s
    image: ship:latest
    network: {allow: ["%s"]}
`, profile, netip.PrefixFrom(out.Addr(), 30).Masked()), Env: map[string]string{"BAY_DRIVER__IMAGE_PULL_POLICY": "never"}}
	fetch := fmt.Sprintf("import urllib.request\nprint(urllib.request.urlopen('http://%s/', timeout=3).read().decode())", out)

	b1 := baytest.Start(t, opts)
	id := b1.CreateSandbox(t, map[string]any{"profile": profile})
	if r := b1.Python(t, id, resolveProbe); strings.TrimSpace(fmt.Sprint(r["output"])) != "nxdomain" {
		t.Fatalf("before the restart: %v", r)
	}
	b1.Stop()

	// Bay down: the container runs on, its DNS is silent.
	cid := sandboxContainer(t, id)
	if got := dockerPython(t, cid, resolveProbe); got == "nxdomain" || got == "resolved" {
		t.Fatalf("with Bay stopped the sandbox's DNS still answered: %q", got)
	} else {
		t.Logf("with Bay stopped: %s", got)
	}

	b2 := baytest.Start(t, opts)
	if got := dockerPython(t, cid, resolveProbe); got != "nxdomain" {
		t.Errorf("after the restart, before any call: %q (Bay readies its policies at start-up)", got)
	}
	if r := b2.Python(t, id, fetch); strings.TrimSpace(fmt.Sprint(r["output"])) != "outside" {
		t.Errorf("listed range after the restart: %v", r)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 1 {
		t.Fatalf("%d containers after restart", n)
	}
}

// dockerPython runs python3 code in a container as uid 1000 and returns its
// trimmed stdout (Bay need not be running).
func dockerPython(t *testing.T, containerID, code string) string {
	t.Helper()
	cli := baytest.Docker(t)
	ctx := t.Context()
	ex, err := cli.ContainerExecCreate(ctx, containerID, container.ExecOptions{User: "1000:1000", Cmd: []string{"python3", "-c", code}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(stdout.String() + stderr.String())
}
