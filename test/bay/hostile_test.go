package bay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/shipyard/shipyard/test/baytest"
)

// probeScript reports, as JSON, whether TCP connections from inside a sandbox
// to each target open. Targets are "host:port"; "gw" is the sandbox's default
// gateway (the host, seen from the sandbox).
const probeScript = `
import json, os, socket, struct
def gw():
    for line in open('/proc/net/route').read().splitlines()[1:]:
        f = line.split()
        if f[1] == '00000000':
            return socket.inet_ntoa(struct.pack('<L', int(f[2], 16)))
def probe(addr):
    host, port = addr.rsplit(':', 1)
    if host == 'gw':
        host = gw()
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, int(port)))
        return 'open'
    except Exception as e:
        return 'closed: %s' % e
    finally:
        s.close()
res = {a: probe(a) for a in TARGETS}
res['docker.sock'] = os.path.exists('/var/run/docker.sock') or os.path.exists('/run/docker.sock')
print(json.dumps(res))
`

// TestHostileTenant: a real Bay on its default security settings, listening on
// every interface (the worst bind an operator can choose), and two sandboxes.
// The attacker tries to reach Bay, the Docker socket and the victim's Ship,
// overflows TTLs, prints huge output, exhausts its pids and stops its own Ship.
// Bay and the victim are unaffected throughout and the attacker's sandbox
// recovers with its files.
func TestHostileTenant(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{Listen: "0.0.0.0:0"})
	u, _ := url.Parse(b.URL)
	port := u.Port()

	victim := b.CreateSandbox(t, nil)
	b.Python(t, victim, "secret = 42")
	b.Must(t, http.StatusOK, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + victim + "/filesystem/files",
		Body: map[string]any{"path": "secret.txt", "content": "victim data"}})
	attacker := b.CreateSandbox(t, nil)
	b.Must(t, http.StatusOK, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + attacker + "/filesystem/files",
		Body: map[string]any{"path": "mine.txt", "content": "attacker data"}})

	victimIP := sandboxIP(t, victim)
	targets := []string{"gw:" + port, "gw:2375", "gw:2376", victimIP + ":8123"}
	for _, ip := range hostAddrs(t) {
		targets = append(targets, net.JoinHostPort(ip, port))
	}

	t.Run("network: Bay, the Docker socket and other sandboxes are out of reach", func(t *testing.T) {
		js, _ := json.Marshal(targets)
		out := b.Python(t, attacker, "TARGETS = "+string(js)+"\n"+probeScript)
		text, _ := out["output"].(string)
		var res map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(text)), &res); err != nil {
			t.Fatalf("probe output %q: %v", text, err)
		}
		for k, v := range res {
			if v == "open" || v == true {
				t.Errorf("from a sandbox: %s is reachable (%v)", k, v)
			}
		}
		if len(res) != len(targets)+1 {
			t.Fatalf("probe answered %d of %d: %v", len(res), len(targets)+1, res)
		}
		// Bay itself is served on those addresses: the host reaches it.
		if r := b.Do(t, baytest.Req{Method: "GET", Path: "/health"}); r.Status != http.StatusOK {
			t.Fatalf("Bay health from the host: %d", r.Status)
		}
	})

	t.Run("anonymous and malformed credentials are refused", func(t *testing.T) {
		for _, h := range []string{"", "Basic Zm9vOmJhcg==", "Bearer", "Bearer ", "BEARER sk-wrong", "Bearer " + baytest.APIKey + " x"} {
			req := baytest.Req{Method: "GET", Path: "/v1/sandboxes", NoAuth: true}
			if h != "" {
				req.Headers = map[string]string{"Authorization": h}
			}
			if r := b.Do(t, req); r.Status != http.StatusUnauthorized {
				t.Errorf("Authorization %q: %d, want 401", h, r.Status)
			}
		}
	})

	t.Run("TTL overflow is refused and expires nothing", func(t *testing.T) {
		for _, body := range []map[string]any{{"ttl": 1e10}, {"ttl": 9223372036854775807}, {"ttl": -1e19}} {
			if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: body}); r.Status != http.StatusUnprocessableEntity {
				t.Errorf("create %v: %d, want 422: %s", body, r.Status, r.Body)
			}
		}
		ttl := b.CreateSandbox(t, map[string]any{"ttl": 600})
		for _, by := range []any{1e10, 9223372036854775807, 9.3e9} {
			if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + ttl + "/extend_ttl", Body: map[string]any{"extend_by": by}}); r.Status != http.StatusUnprocessableEntity {
				t.Errorf("extend_by %v: %d, want 422: %s", by, r.Status, r.Body)
			}
		}
		got := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + ttl})
		exp, _ := time.Parse("2006-01-02T15:04:05.999999", fmt.Sprint(got["expires_at"]))
		if time.Until(exp) < 5*time.Minute {
			t.Fatalf("expires_at %v after refused extends", got["expires_at"])
		}
	})

	t.Run("another sandbox's managed cargo cannot be attached", func(t *testing.T) {
		sb := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + victim})
		r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"cargo_id": sb["cargo_id"]}})
		if r.Status != http.StatusConflict {
			t.Fatalf("attach the victim's managed cargo: %d, want 409: %s", r.Status, r.Body)
		}
	})

	t.Run("huge output is bounded", func(t *testing.T) {
		peak := vmHWM(t) // Bay runs in this process: its peak RSS must not follow the output
		for _, code := range []string{
			"from IPython.display import HTML, display\ndisplay(HTML('h'*50_000_000))",
			"raise ValueError('e'*50_000_000)",
			"print('p'*50_000_000)",
		} {
			r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + attacker + "/python/exec", Body: map[string]any{"code": code, "timeout": 120}})
			if r.Status != http.StatusOK {
				t.Fatalf("%.40s: %d %.300s", code, r.Status, r.Body)
			}
			if len(r.Body) > 8<<20 {
				t.Errorf("%.40s: a %d-byte response", code, len(r.Body))
			}
			if r.JSON()["truncated"] != true {
				t.Errorf("%.40s: truncated not set: %.300s", code, r.Body)
			}
		}
		sh := b.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + attacker + "/shell/exec",
			Body: map[string]any{"command": "head -c 30000000 /dev/zero | tr '\\0' s"}})
		if out, _ := sh["output"].(string); sh["truncated"] != true || len(out) > 2<<20 || !strings.Contains(out, "truncated") {
			t.Errorf("30 MB of shell output: truncated=%v, %d bytes", sh["truncated"], len(out))
		}
		hist := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + attacker + "/history?limit=3"})
		if hist.Status != http.StatusOK || len(hist.Body) > 8<<20 {
			t.Errorf("history: %d, %d bytes", hist.Status, len(hist.Body))
		}
		if grew := vmHWM(t) - peak; grew > 150<<20 {
			t.Errorf("peak RSS grew by %d MiB over three 50 MB outputs", grew>>20)
		}
	})

	t.Run("fork bomb and pid exhaustion: the sandbox recovers", func(t *testing.T) {
		b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + attacker + "/shell/exec",
			Body: map[string]any{"command": "bomb() { bomb | bomb & }; bomb", "timeout": 5}})
		b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + attacker + "/shell/exec",
			Body: map[string]any{"command": "for i in $(seq 400); do setsid sleep 100000 & done; echo started", "timeout": 20}})
		recovered(t, b, attacker)
	})

	t.Run("a stopped Ship is noticed and replaced", func(t *testing.T) {
		before := sandboxContainer(t, attacker)
		// The shell's parent is Ship; the call cannot answer once Ship stops.
		b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + attacker + "/shell/exec",
			Body: map[string]any{"command": "kill -STOP $PPID", "timeout": 10}})
		recovered(t, b, attacker)
		if after := sandboxContainer(t, attacker); after == before {
			t.Fatalf("the stopped runtime %.12s is still the sandbox's container", before)
		}
	})

	t.Run("the victim and Bay were never disturbed", func(t *testing.T) {
		if out := b.Python(t, victim, "secret"); out["output"] != "42" {
			t.Fatalf("victim's kernel state: %v", out)
		}
		got := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + victim + "/filesystem/files?path=secret.txt"})
		if got["content"] != "victim data" {
			t.Fatalf("victim's file: %v", got)
		}
		if r := b.Do(t, baytest.Req{Method: "GET", Path: "/health"}); r.Status != http.StatusOK {
			t.Fatalf("Bay health: %d %s", r.Status, r.Body)
		}
	})
}

// recovered waits until the sandbox answers a python and a shell call again
// and its files are still there.
func recovered(t *testing.T, b *baytest.Bay, id string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec",
			Body: map[string]any{"command": "cat mine.txt", "timeout": 10}})
		if r.Status == http.StatusOK && r.JSON()["output"] == "attacker data" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox did not recover: last answer %d %.300s", r.Status, r.Body)
		}
		time.Sleep(time.Second)
	}
	if out := b.Python(t, id, "1+1"); out["output"] != "2" {
		t.Fatalf("python after recovery: %v", out)
	}
	st := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id})
	if st["status"] != "ready" {
		t.Fatalf("status after recovery: %v", st["status"])
	}
}

// running is the one running container of the sandbox's session.
func running(t *testing.T, sandboxID string) container.Summary {
	t.Helper()
	cli := baytest.Docker(t)
	list, err := cli.ContainerList(context.Background(), container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", "bay.sandbox_id="+sandboxID))})
	if err != nil || len(list) != 1 {
		t.Fatalf("running containers of %s: %v %v", sandboxID, list, err)
	}
	return list[0]
}

func sandboxContainer(t *testing.T, sandboxID string) string { return running(t, sandboxID).ID }

// vmHWM is this process's peak resident set size in bytes.
func vmHWM(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// sandboxIP is the container IP of the sandbox's running session.
func sandboxIP(t *testing.T, sandboxID string) string {
	t.Helper()
	c := running(t, sandboxID)
	for _, n := range c.NetworkSettings.Networks {
		if n.IPAddress != "" {
			return n.IPAddress
		}
	}
	t.Fatalf("no IP for %s", sandboxID)
	return ""
}

// hostAddrs are this host's non-loopback IPv4 addresses (Bay listens on all).
func hostAddrs(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}
