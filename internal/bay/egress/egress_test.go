package egress

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/miekg/dns"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		want    []string // Entries()
		wantErr string
	}{
		{in: nil, want: []string{}},
		{in: []string{"10.1.2.0/24", "pypi.internal.example", "*.example.org"}, want: []string{"10.1.2.0/24", "pypi.internal.example", "*.example.org"}},
		{in: []string{"10.1.2.3", "2001:db8::1", "10.1.2.7/24", "A.Example.COM."}, want: []string{"10.1.2.3/32", "2001:db8::1/128", "10.1.2.0/24", "a.example.com"}},
		{in: []string{"x.test", "x.test"}, want: []string{"x.test"}},
		{in: []string{""}, wantErr: "allow[0]: empty entry"},
		{in: []string{"10.1.2.0/33"}, wantErr: "not a CIDR"},
		{in: []string{"a.test", "*"}, wantErr: "allow[1]"},
		{in: []string{"a.*.test"}, wantErr: "neither a CIDR"},
		{in: []string{"-bad.test"}, wantErr: "neither a CIDR"},
		{in: []string{"http://x.test"}, wantErr: "not a CIDR"},
		{in: []string{"x test"}, wantErr: "neither a CIDR"},
		{in: []string{"fe80::1%eth0"}, wantErr: "zoned"},
		{in: []string{strings.Repeat("a", 64) + ".test"}, wantErr: "neither a CIDR"},
	} {
		p, err := Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) = %v, want error containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := p.Entries(); !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q).Entries() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPolicyMatches(t *testing.T) {
	p, err := Parse([]string{"pypi.internal.example", "*.example.org", "10.1.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"pypi.internal.example": true, "PYPI.internal.example.": true, "x.pypi.internal.example": false,
		"a.example.org": true, "a.b.example.org.": true, "example.org": false, "badexample.org": false,
		"other.test": false, "": false,
	} {
		if got := p.AllowsName(name); got != want {
			t.Errorf("AllowsName(%q) = %v, want %v", name, got, want)
		}
	}
	for addr, want := range map[string]bool{"10.1.2.9": true, "10.1.3.1": false, "::ffff:10.1.2.1": true} {
		if got := p.AllowsAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("AllowsAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

type recordSink struct {
	mu    sync.Mutex
	addrs []netip.Addr
	ttls  []time.Duration
}

func (s *recordSink) Allow(_ context.Context, addrs []netip.Addr, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs = append(s.addrs, addrs...)
	s.ttls = append(s.ttls, ttl)
	return nil
}

// upstream starts a DNS server on loopback that answers a fixed zone.
func upstream(t testing.TB, zone map[string][]dns.RR) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		rrs, ok := zone[strings.ToLower(r.Question[0].Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		m.Answer = rrs
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func mustRR(t testing.TB, s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestForwarder(t *testing.T) {
	up := upstream(t, map[string][]dns.RR{
		"allowed.test.": {mustRR(t, "allowed.test. 5 IN A 192.0.2.10")},
		"a.wild.test.":  {mustRR(t, "a.wild.test. 7200 IN CNAME cdn.other.test."), mustRR(t, "cdn.other.test. 7200 IN A 192.0.2.11"), mustRR(t, "unrelated.test. 300 IN A 192.0.2.99")},
		"denied.test.":  {mustRR(t, "denied.test. 300 IN A 192.0.2.12")},
	})
	sink := &recordSink{}
	f := &Forwarder{Upstreams: []string{up}, Sink: sink, Clients: netip.MustParsePrefix("127.0.0.0/8")}
	p, err := Parse([]string{"allowed.test", "*.wild.test"})
	if err != nil {
		t.Fatal(err)
	}
	f.SetPolicy(p)
	if err := f.ListenAndServe("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr := f.servers[0].PacketConn.LocalAddr().String()
	taddr := f.servers[1].Listener.Addr().String()

	ask := func(proto, server, name string, edns bool) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		if edns {
			m.SetEdns0(1232, false)
		}
		c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
		r, _, err := c.Exchange(m, server)
		if err != nil {
			t.Fatalf("%s %s: %v", proto, name, err)
		}
		return r
	}

	r := ask("udp", addr, "allowed.test.", false)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("allowed.test: %v", r)
	}
	r = ask("tcp", taddr, "A.WILD.test.", false)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 3 {
		t.Fatalf("a.wild.test over tcp: %v", r)
	}
	for _, rr := range r.Answer {
		if rr.Header().Ttl > uint32(DefaultMaxTTL/time.Second) {
			t.Errorf("TTL not capped: %v", rr)
		}
	}
	r = ask("udp", addr, "denied.test.", true)
	if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
		t.Fatalf("denied.test: %v", r)
	}
	if o := r.IsEdns0(); o == nil || len(o.Option) == 0 || o.Option[0].(*dns.EDNS0_EDE).InfoCode != dns.ExtendedErrorCodeBlocked {
		t.Errorf("denied.test: no EDE Blocked: %v", r)
	}

	sink.mu.Lock()
	got := slices.Clone(sink.addrs)
	ttls := slices.Clone(sink.ttls)
	sink.mu.Unlock()
	want := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")}
	if !slices.Equal(got, want) {
		t.Errorf("sink got %v, want %v (the CNAME chain only, never denied or unrelated names)", got, want)
	}
	if !slices.Equal(ttls, []time.Duration{DefaultMinTTL, DefaultMaxTTL}) {
		t.Errorf("ttls %v, want [min, max]", ttls)
	}

	// A client outside the allowed prefix is refused.
	g := &Forwarder{Upstreams: []string{up}, Sink: sink, Clients: netip.MustParsePrefix("10.0.0.0/8")}
	g.SetPolicy(p)
	if err := g.ListenAndServe("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if r := ask("udp", g.servers[0].PacketConn.LocalAddr().String(), "allowed.test.", false); r.Rcode != dns.RcodeRefused {
		t.Errorf("outside client: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}

func TestHostResolvers(t *testing.T) {
	path := t.TempDir() + "/resolv.conf"
	if err := os.WriteFile(path, []byte("# x\nnameserver 10.0.0.2\nnameserver ::1\nsearch x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := HostResolvers(path)
	if err != nil || !slices.Equal(got, []string{"10.0.0.2:53", "[::1]:53"}) {
		t.Fatalf("HostResolvers = %v, %v", got, err)
	}
	if err := os.WriteFile(path, []byte("search x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := HostResolvers(path); err == nil {
		t.Fatal("no nameserver: want error")
	}
}

// TestNFTSet: real nftables (needs root / CAP_NET_ADMIN). Addresses land in
// the right set with the timeout, a later answer extends it, an earlier one
// does not shorten it, and metadata addresses are never added.
func TestNFTSet(t *testing.T) {
	c, err := nftables.New()
	if err != nil {
		t.Skip(err)
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "bay-egress-test-" + strings.ReplaceAll(t.Name(), "/", "-")}
	c.AddTable(tbl)
	s4 := &nftables.Set{Table: tbl, Name: "d4", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	s6 := &nftables.Set{Table: tbl, Name: "d6", KeyType: nftables.TypeIP6Addr, HasTimeout: true}
	if err := c.AddSet(s4, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.AddSet(s6, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Skipf("cannot use nftables here (needs CAP_NET_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		c.DelTable(tbl)
		_ = c.Flush()
	})
	sink := &NFTSet{Table: tbl, Set4: "d4", Set6: "d6"}
	ctx := t.Context()
	a4, a6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")
	if err := sink.Allow(ctx, []netip.Addr{a4, a6, netip.MustParseAddr("169.254.169.254")}, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	expiry := func(set *nftables.Set, a netip.Addr) time.Duration {
		t.Helper()
		els, err := c.GetSetElements(set)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range els {
			if k, _ := netip.AddrFromSlice(e.Key); k == a {
				return e.Expires
			}
		}
		return -1
	}
	if els, _ := c.GetSetElements(s4); len(els) != 1 {
		t.Fatalf("v4 set has %d elements, want 1 (metadata never added): %+v", len(els), els)
	}
	if e := expiry(s4, a4); e <= 50*time.Second || e > 60*time.Second {
		t.Fatalf("v4 expiry %v, want ~60s", e)
	}
	if e := expiry(s6, a6); e <= 50*time.Second {
		t.Fatalf("v6 expiry %v, want ~60s", e)
	}
	if err := sink.Allow(ctx, []netip.Addr{a4}, 600*time.Second); err != nil {
		t.Fatal(err)
	}
	if e := expiry(s4, a4); e <= 590*time.Second {
		t.Fatalf("after a longer answer: expiry %v, want ~600s", e)
	}
	if err := sink.Allow(ctx, []netip.Addr{a4}, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if e := expiry(s4, a4); e <= 590*time.Second {
		t.Fatalf("a shorter answer shortened the expiry to %v", e)
	}
	// A new process (empty memory) re-adding an address still present works.
	fresh := &NFTSet{Table: tbl, Set4: "d4", Set6: "d6"}
	if err := fresh.Allow(ctx, []netip.Addr{a4}, 120*time.Second); err != nil {
		t.Fatalf("re-add of a present element: %v", err)
	}
}

// BenchmarkForwarder: one allowed lookup through the forwarder (loopback
// upstream), with the answer's address put into a real nftables set.
func BenchmarkForwarder(b *testing.B) {
	c, err := nftables.New()
	if err != nil {
		b.Skip(err)
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "bay-egress-bench"}
	c.AddTable(tbl)
	for _, s := range []*nftables.Set{{Table: tbl, Name: "d4", KeyType: nftables.TypeIPAddr, HasTimeout: true}, {Table: tbl, Name: "d6", KeyType: nftables.TypeIP6Addr, HasTimeout: true}} {
		if err := c.AddSet(s, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		b.Skipf("needs CAP_NET_ADMIN: %v", err)
	}
	defer func() { c.DelTable(tbl); _ = c.Flush() }()
	up := upstream(b, map[string][]dns.RR{"allowed.test.": {mustRR(b, "allowed.test. 300 IN A 192.0.2.10")}})
	f := &Forwarder{Upstreams: []string{up}, Sink: &NFTSet{Table: tbl, Set4: "d4", Set6: "d6"}}
	p, _ := Parse([]string{"allowed.test"})
	f.SetPolicy(p)
	if err := f.ListenAndServe("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	addr := f.servers[0].PacketConn.LocalAddr().String()
	m := new(dns.Msg)
	m.SetQuestion("allowed.test.", dns.TypeA)
	cl := &dns.Client{Timeout: 2 * time.Second}
	for b.Loop() {
		if r, _, err := cl.Exchange(m, addr); err != nil || r.Rcode != dns.RcodeSuccess {
			b.Fatal(r, err)
		}
	}
}

// With every upstream slot taken (a sandbox flooding its DNS), an allowed
// query is answered SERVFAIL at once instead of queueing without bound; a
// denied one is still answered.
func TestForwarderInflightBound(t *testing.T) {
	up := upstream(t, map[string][]dns.RR{"allowed.test.": {mustRR(t, "allowed.test. 300 IN A 192.0.2.10")}})
	f := &Forwarder{Upstreams: []string{up}, Sink: &recordSink{}}
	p, _ := Parse([]string{"allowed.test"})
	f.SetPolicy(p)
	if err := f.ListenAndServe("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range cap(f.inflight) {
		f.inflight <- struct{}{}
	}
	addr := f.servers[0].PacketConn.LocalAddr().String()
	ask := func(name string) int {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		return r.Rcode
	}
	if rc := ask("allowed.test."); rc != dns.RcodeServerFailure {
		t.Errorf("allowed, slots full: %s, want SERVFAIL", dns.RcodeToString[rc])
	}
	if rc := ask("denied.test."); rc != dns.RcodeNameError {
		t.Errorf("denied, slots full: %s, want NXDOMAIN", dns.RcodeToString[rc])
	}
	<-f.inflight
	if rc := ask("allowed.test."); rc != dns.RcodeSuccess {
		t.Errorf("allowed, a slot free: %s", dns.RcodeToString[rc])
	}
}
