package docker

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"

	"github.com/shipyard/shipyard/internal/bay/egress"
)

// TestSandboxIsolation: a sandbox reaches neither the host (a server bound to
// every interface, as Bay is with server.host 0.0.0.0) nor another sandbox,
// while the host still reaches both. A container on an ordinary bridge does
// reach the same server: the probe can see an open port.
func TestSandboxIsolation(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	d, run := newDriver(t, Config{})
	ctx := t.Context()
	if err := d.Prepare(ctx); err != nil {
		t.Fatalf("Prepare: %v", err)
	}

	// The "Bay" on the host: listening on every interface.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	start := func(name string) (id, ip string) {
		t.Helper()
		id, err := d.Create(ctx, testSpec(run, name, img))
		if err != nil {
			t.Fatal(err)
		}
		ep, err := d.Start(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		getHealth(t, ep) // the host reaches the sandbox
		info, err := cli.ContainerInspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		es := info.NetworkSettings.Networks[DefaultSandboxNetwork]
		if es == nil {
			t.Fatalf("%s is not on %s", name, DefaultSandboxNetwork)
		}
		return id, es.IPAddress
	}
	a, _ := start("a")
	_, ipB := start("b")

	n, err := cli.NetworkInspect(ctx, DefaultSandboxNetwork, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.IPAM.Config) == 0 || n.IPAM.Config[0].Gateway == "" {
		t.Fatalf("sandbox network has no gateway: %+v", n.IPAM)
	}
	gateway := n.IPAM.Config[0].Gateway
	targets := map[string]string{
		"host via the sandbox gateway": net.JoinHostPort(gateway, port),
		"other sandbox's runtime":      net.JoinHostPort(ipB, "8123"),
	}
	if ip := hostIP(t); ip != "" {
		targets["host via its own address "+ip] = net.JoinHostPort(ip, port)
	}
	for what, addr := range targets {
		out, err := execIn(ctx, cli, a, "/testserver", "dial", addr)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) == "open" {
			t.Errorf("sandbox reached %s (%s)", what, addr)
		}
	}

	// Control: the same probe from a plain bridge reaches the host server.
	plain := "bay-dt-" + run + "-plain"
	if _, err := cli.NetworkCreate(ctx, plain, network.CreateOptions{Driver: "bridge", Labels: map[string]string{labelTest: run}}); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(run, "control", img)
	spec.Network = plain
	id, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	pn, err := cli.NetworkInspect(ctx, plain, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := execIn(ctx, cli, id, "/testserver", "dial", net.JoinHostPort(pn.IPAM.Config[0].Gateway, port))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "open" {
		t.Fatalf("control probe from a plain bridge: %q, want open (the probe cannot see an open port)", out)
	}
	if err := d.Destroy(context.WithoutCancel(ctx), id); err != nil {
		t.Fatal(err)
	}
}

// hostIP is a non-loopback IPv4 address of this host, "" if none.
func hostIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil && !strings.HasPrefix(ipn.IP.String(), "172.") {
			return ipn.IP.String()
		}
	}
	return ""
}

// TestMetadataBlockedForEverySandbox: whatever a sandbox's egress policy
// (network: full included), the host forwards nothing from a sandbox bridge to
// cloud metadata and the other always-blocked ranges. Checked on the installed
// rules, never by sending traffic to those addresses.
func TestMetadataBlockedForEverySandbox(t *testing.T) {
	d, _ := newDriver(t, Config{})
	if err := d.Prepare(t.Context()); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	for _, p := range egress.AlwaysBlocked {
		if i := chainRuleFor(t, firewallForwardChain, p, false); i < 0 {
			t.Errorf("no reject of %s in chain %s", p, firewallForwardChain)
		}
	}
}
