package docker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// internet stands in for the Internet: a network namespace made by the test,
// joined to the host by a veth pair and routed like any outside destination
// (not a Docker bridge, whose own isolation would hide the policy), with an
// HTTP server listening inside it. It returns the server's address.
func internet(t *testing.T, run string) netip.AddrPort {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	// 198.18.0.0/15 is the benchmarking range: nothing real lives there.
	b := []byte(run)
	third := int(b[0])<<2 ^ int(b[1])
	host := netip.AddrFrom4([4]byte{198, 18, byte(third), 1})
	srv := netip.AddrFrom4([4]byte{198, 18, byte(third), 2})
	ns, vh, vn := "bay-egt-"+run, "bvh"+run, "bvn"+run
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
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "route", "add", "default", "via", host.String())

	// Open the listening socket inside the namespace; it stays there.
	lnc := make(chan net.Listener, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // this thread may end in another namespace: never unlocked, so it dies with the goroutine
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
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
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("internet")) })}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return netip.AddrPortFrom(srv, 8080)
}

// testResolver is an upstream DNS server on loopback that answers
// allowed.test and denied.test with addr.
func testResolver(t *testing.T, addr netip.Addr) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch strings.ToLower(q.Name) {
		case "allowed.test.", "denied.test.":
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: addr.AsSlice()})
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// cleanupEgress removes what the test's policies left: the test's
// containers first, then each policy's network, rules and sets.
func cleanupEgress(t *testing.T, d *Driver, ids *[]string, policies ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, id := range *ids {
			_ = d.Destroy(ctx, id)
		}
		for _, p := range policies {
			if err := d.RemoveEgress(ctx, p); err != nil {
				t.Errorf("RemoveEgress(%s): %v", p, err)
			}
		}
		for _, p := range policies {
			if chains, sets := egressObjects(t, p); len(chains)+len(sets) > 0 {
				t.Errorf("policy %s left chains %v, sets %v", p, chains, sets)
			}
		}
	})
}

// TestEgressPolicy: sandboxes of an allow policy reach what it lists (a
// CIDR, a name resolved by Bay's DNS) and nothing else: not a listed name's
// neighbour, not a denied name or its address, not the host or another
// sandbox even when the list covers their addresses, not metadata (checked in
// the rules, never with traffic); a no-network sandbox reaches nothing; user
// code cannot edit its resolv.conf and has no capability to change routes.
func TestEgressPolicy(t *testing.T) {
	img := testServerImage(t)
	cli := rawClient(t)
	run := randHex(4)
	net0 := internet(t, run)
	resolver := testResolver(t, net0.Addr())
	d, run2 := newDriver(t, Config{EgressUpstreams: []string{resolver}})
	ctx := t.Context()
	if err := d.Prepare(ctx); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	// The host: a server on every interface.
	hostLn, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	hostSrv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go func() { _ = hostSrv.Serve(hostLn) }()
	t.Cleanup(func() { _ = hostSrv.Close() })
	hostPort := uint16(hostLn.Addr().(*net.TCPAddr).Port)

	cidrPolicy, dnsPolicy := "t-"+run+"-cidr", "t-"+run+"-dns"
	var ids []string
	cleanupEgress(t, d, &ids, cidrPolicy, dnsPolicy)

	start := func(name string, mod func(*InstanceSpec)) string {
		t.Helper()
		spec := testSpec(run2, name, img)
		mod(&spec)
		id, err := d.Create(ctx, spec)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		ids = append(ids, id)
		ep, err := d.Start(ctx, id)
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		getHealth(t, ep) // Bay still reaches it
		return id
	}
	run1 := func(id string, argv ...string) string {
		t.Helper()
		out, err := execIn(ctx, cli, id, append([]string{"/testserver"}, argv...)...)
		if err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
		return strings.TrimSpace(out)
	}
	expect := func(id, what, addr string, open bool) {
		t.Helper()
		began := time.Now()
		got := run1(id, "dial", addr)
		if (got == "open") != open {
			t.Errorf("%s (%s): %q, want open=%v", what, addr, got, open)
		}
		if !open && !strings.HasPrefix(what, "none:") && time.Since(began) > 1500*time.Millisecond {
			t.Errorf("%s (%s): refusal took %v; the rules should reject at once", what, addr, time.Since(began))
		}
	}

	other := start("other", func(*InstanceSpec) {}) // a sandbox on bay-sandbox
	oinfo, err := cli.ContainerInspect(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	otherIP := oinfo.NetworkSettings.Networks[DefaultSandboxNetwork].IPAddress

	// A CIDR policy whose list also covers metadata, the host and every
	// Docker bridge: only the listed outside range opens.
	allow := []string{netip.PrefixFrom(net0.Addr(), 30).Masked().String(), "169.254.0.0/16", "172.16.0.0/12"}
	hostAddr := hostIP(t)
	if hostAddr != "" {
		allow = append(allow, hostAddr)
	}
	cidr := start("cidr", func(s *InstanceSpec) { s.Egress = &driver.Egress{Policy: cidrPolicy, Allow: allow} })
	cinfo, err := cli.ContainerInspect(ctx, cidr)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cinfo.NetworkSettings.Networks[egressNetwork(cidrPolicy)]; !ok || len(cinfo.NetworkSettings.Networks) != 1 {
		t.Fatalf("cidr sandbox networks %v, want only %s", keys(cinfo.NetworkSettings.Networks), egressNetwork(cidrPolicy))
	}
	gw := d.egressDNSFor(egressNetwork(cidrPolicy))
	if len(cinfo.HostConfig.DNS) != 1 || cinfo.HostConfig.DNS[0] != gw {
		t.Fatalf("cidr sandbox DNS %v, want [%s]", cinfo.HostConfig.DNS, gw)
	}
	expect(cidr, "listed CIDR", net0.String(), true)
	expect(cidr, "host via the policy gateway (listed)", netip.AddrPortFrom(netip.MustParseAddr(gw), hostPort).String(), false)
	if hostAddr != "" {
		expect(cidr, "host via its own address (listed)", net.JoinHostPort(hostAddr, fmt.Sprint(hostPort)), false)
	}
	expect(cidr, "another sandbox (listed range)", net.JoinHostPort(otherIP, "8123"), false)
	if got := run1(cidr, "resolve", "allowed.test"); !strings.HasPrefix(got, "error:") {
		t.Errorf("a CIDR-only policy resolved allowed.test: %q", got)
	}

	// Metadata: by the rules, never by traffic. The reject of 169.254.0.0/16
	// comes before the list's accept of the same range.
	meta := netip.MustParsePrefix("169.254.0.0/16")
	rej, acc := ruleFor(t, cidrPolicy, meta, false), ruleFor(t, cidrPolicy, meta, true)
	if rej < 0 || acc < 0 || rej > acc {
		t.Errorf("metadata range: reject at rule %d, the list's accept at rule %d; the reject must come first", rej, acc)
	}

	// A name policy: DNS answers only the listed name, and only its answer opens.
	named := start("dns", func(s *InstanceSpec) {
		s.Egress = &driver.Egress{Policy: dnsPolicy, Allow: []string{"allowed.test"}}
	})
	if got := run1(named, "resolve", "denied.test"); !strings.HasPrefix(got, "error:") {
		t.Errorf("denied.test resolved: %q", got)
	}
	expect(named, "denied name's address", net0.String(), false)
	if got := run1(named, "resolve", "allowed.test"); got != net0.Addr().String() {
		t.Fatalf("allowed.test resolved to %q, want %s", got, net0.Addr())
	}
	expect(named, "allowed name", net.JoinHostPort("allowed.test", "8080"), true)
	if got := run1(named, "resolve", "other.invalid"); !strings.HasPrefix(got, "error:") {
		t.Errorf("other.invalid resolved: %q", got)
	}

	// Under gVisor (runsc, its own network stack off: the container's netns)
	// the same rules and DNS apply.
	if rts, err := d.Runtimes(ctx); err == nil && slices.Contains(rts, "runsc") {
		secure := start("dns-runsc", func(s *InstanceSpec) {
			s.Runtime = "runsc"
			s.Egress = &driver.Egress{Policy: dnsPolicy, Allow: []string{"allowed.test"}}
		})
		if got := run1(secure, "resolve", "denied.test"); !strings.HasPrefix(got, "error:") {
			t.Errorf("runsc: denied.test resolved: %q", got)
		}
		expect(secure, "runsc: allowed name", net.JoinHostPort("allowed.test", "8080"), true)
		expect(secure, "runsc: host via the policy gateway", net.JoinHostPort(d.egressDNSFor(egressNetwork(dnsPolicy)), fmt.Sprint(hostPort)), false)
	} else {
		t.Log("no runsc runtime registered: gVisor case skipped (make docker registers it)")
	}

	// A changed list (a Bay restarted with another config) takes effect for
	// running sandboxes at once, and what the former list's DNS let through
	// goes with it.
	if _, _, err := d.ensureEgress(ctx, driver.Egress{Policy: dnsPolicy, Allow: []string{"denied.test"}}); err != nil {
		t.Fatal(err)
	}
	expect(named, "a name the former list allowed", net.JoinHostPort(net0.Addr().String(), "8080"), false)
	if got := run1(named, "resolve", "allowed.test"); !strings.HasPrefix(got, "error:") {
		t.Errorf("allowed.test resolved after it left the list: %q", got)
	}
	if got := run1(named, "resolve", "denied.test"); got != net0.Addr().String() {
		t.Errorf("denied.test, now listed, resolved to %q", got)
	}
	expect(named, "a name the new list allows", net.JoinHostPort("denied.test", "8080"), true)
	if _, sets := egressObjects(t, dnsPolicy); len(sets) != 2 {
		t.Errorf("the former list's sets stayed: %v", sets)
	}

	// User code cannot point DNS elsewhere, nor touch routes (no capability).
	if _, err := execIn(ctx, cli, named, "/testserver", "write", "/etc/resolv.conf", "nameserver 1.1.1.1\n"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("editing /etc/resolv.conf: %v, want permission denied", err)
	}
	status := run1(named, "read", "/proc/self/status")
	if !strings.Contains(status, "CapEff:\t0000000000000000") {
		t.Errorf("user code has capabilities:\n%s", status)
	}

	// none: no route out; Bay still reaches it (getHealth in start).
	none := start("none", func(s *InstanceSpec) { s.NoNetwork = true })
	expect(none, "none: internet from a no-network sandbox (dropped, not rejected)", net0.String(), false)
	iso, err := cli.NetworkInspect(ctx, DefaultIsolatedNetwork, network.InspectOptions{})
	if err != nil || len(iso.IPAM.Config) == 0 {
		t.Fatalf("inspect %s: %v %+v", DefaultIsolatedNetwork, err, iso.IPAM)
	}
	expect(none, "none: host via its gateway", net.JoinHostPort(iso.IPAM.Config[0].Gateway, fmt.Sprint(hostPort)), false)
	if hostAddr != "" {
		expect(none, "none: host via its own address", net.JoinHostPort(hostAddr, fmt.Sprint(hostPort)), false)
	}
	// Control: a sandbox with full egress reaches the same server.
	expect(other, "internet from a full-egress sandbox", net0.String(), true)
}

// egressObjects lists the chains and sets of Bay's table that belong to policy.
func egressObjects(t *testing.T, policy string) (chains, sets []string) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	prefix := "egress-" + egressID(policy)
	chs, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chs {
		if ch.Table.Name == firewallTable && strings.HasPrefix(ch.Name, prefix) {
			chains = append(chains, ch.Name)
		}
	}
	ss, err := c.GetSets(&nftables.Table{Family: nftables.TableFamilyINet, Name: firewallTable})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if strings.HasPrefix(s.Name, prefix+"-") {
			sets = append(sets, s.Name)
		}
	}
	return chains, sets
}

// ruleFor is the index of the first rule of the policy's chain that matches
// destination prefix p and accepts (accept) or rejects (!accept); -1 if none.
func ruleFor(t *testing.T, policy string, p netip.Prefix, accept bool) int {
	t.Helper()
	return chainRuleFor(t, "egress-"+egressID(policy), p, accept)
}

// chainRuleFor is ruleFor on any chain of Bay's table.
func chainRuleFor(t *testing.T, chain string, p netip.Prefix, accept bool) int {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: firewallTable}
	rules, err := c.GetRules(tbl, &nftables.Chain{Table: tbl, Name: chain})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rules {
		masked, matches, verdict := false, false, ""
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Bitwise:
				masked = bytes.Equal(e.Mask, net.CIDRMask(p.Bits(), p.Addr().BitLen()))
			case *expr.Cmp:
				if masked && bytes.Equal(e.Data, p.Addr().AsSlice()) {
					matches = true
				}
			case *expr.Reject:
				verdict = "reject"
			case *expr.Verdict:
				if e.Kind == expr.VerdictAccept {
					verdict = "accept"
				}
			}
		}
		if matches && (verdict == "accept") == accept && verdict != "" {
			return i
		}
	}
	return -1
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestEgressBadPolicy: an invalid allow list fails Create with a clear error
// and leaves no container.
func TestEgressBadPolicy(t *testing.T) {
	img := testServerImage(t)
	d, run := newDriver(t, Config{EgressUpstreams: []string{"127.0.0.1:1"}})
	spec := testSpec(run, "bad", img)
	spec.Egress = &driver.Egress{Policy: "t-" + run + "-bad", Allow: []string{"not a name"}}
	_, err := d.Create(t.Context(), spec)
	if err == nil || !strings.Contains(err.Error(), "allow[0]") {
		t.Fatalf("Create with a bad allow list: %v", err)
	}
	if _, err := rawClient(t).NetworkInspect(t.Context(), egressNetwork(spec.Egress.Policy), network.InspectOptions{}); err == nil {
		t.Error("a bad policy created its network")
	}
}
