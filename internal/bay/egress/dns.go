package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// Sink learns the addresses an allowed name resolved to, for ttl.
type Sink interface {
	Allow(ctx context.Context, addrs []netip.Addr, ttl time.Duration) error
}

// Defaults of a Forwarder.
const (
	DefaultMinTTL   = 60 * time.Second
	DefaultMaxTTL   = time.Hour
	upstreamTimeout = 3 * time.Second
)

// Forwarder is the DNS server of one egress policy: it answers queries for
// allowed names by asking the upstream resolvers, hands the A/AAAA addresses
// of the answer to Sink before replying (so the connection that follows the
// lookup is already allowed), and answers every other name NXDOMAIN (with an
// extended error "Blocked" when the client speaks EDNS). Queries from
// outside Clients are refused.
type Forwarder struct {
	Upstreams []string     // host:port of the resolvers asked, in order
	Clients   netip.Prefix // who may ask (the policy's bridge subnet); zero = anyone
	Sink      Sink
	Log       *slog.Logger
	MinTTL    time.Duration // shortest time an answered address stays allowed; default 60s
	MaxTTL    time.Duration // longest; answers' TTLs are capped to it too; default 1h

	policy   atomic.Pointer[Policy]
	inflight chan struct{} // bounds concurrent upstream exchanges
	mu       sync.Mutex
	servers  []*dns.Server
}

// Bounds of one forwarder, so that a sandbox flooding its DNS cannot grow
// Bay's goroutines or file descriptors without limit.
const (
	maxTCPConns = 64  // open TCP connections
	maxInflight = 128 // upstream exchanges in progress; beyond: SERVFAIL
)

// SetPolicy replaces the policy (safe while serving).
func (f *Forwarder) SetPolicy(p Policy) { f.policy.Store(&p) }

// ListenAndServe starts serving on addr (host:port) over UDP and TCP and
// returns once both sockets are bound.
func (f *Forwarder) ListenAndServe(addr string) error {
	if f.policy.Load() == nil {
		return errors.New("egress: forwarder has no policy")
	}
	if len(f.Upstreams) == 0 {
		return errors.New("egress: forwarder has no upstream resolver")
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("egress: dns on udp %s: %w", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("egress: dns on tcp %s: %w", addr, err)
	}
	f.inflight = make(chan struct{}, maxInflight)
	udp := &dns.Server{PacketConn: pc, Handler: f}
	tcp := &dns.Server{Listener: netutil.LimitListener(ln, maxTCPConns), Handler: f,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 5 * time.Second }}
	f.mu.Lock()
	f.servers = append(f.servers, udp, tcp)
	f.mu.Unlock()
	for _, s := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() {
			if err := s.ActivateAndServe(); err != nil {
				f.log().Warn("egress dns server stopped", "addr", addr, "err", err)
			}
		}()
		<-started
	}
	return nil
}

// Close stops every server started by ListenAndServe.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	servers := f.servers
	f.servers = nil
	f.mu.Unlock()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Shutdown())
	}
	return errors.Join(errs...)
}

func (f *Forwarder) log() *slog.Logger {
	if f.Log == nil {
		return slog.Default()
	}
	return f.Log
}

// ServeDNS implements dns.Handler.
func (f *Forwarder) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	resp := f.answer(w.RemoteAddr(), r)
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = max(int(o.UDPSize()), dns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	_ = w.WriteMsg(resp)
}

func (f *Forwarder) answer(from net.Addr, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	if f.Clients.IsValid() && !f.Clients.Contains(addrOf(from)) {
		return m.SetRcode(r, dns.RcodeRefused)
	}
	if r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 {
		return m.SetRcode(r, dns.RcodeNotImplemented)
	}
	q := r.Question[0]
	if !f.policy.Load().AllowsName(q.Name) {
		f.log().Debug("egress dns: name not allowed", "name", q.Name, "client", from.String())
		m.SetRcode(r, dns.RcodeNameError)
		if r.IsEdns0() != nil {
			m.SetEdns0(dns.DefaultMsgSize, false)
			o := m.IsEdns0()
			o.Option = append(o.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: "not in this sandbox's egress allow list"})
		}
		return m
	}
	select {
	case f.inflight <- struct{}{}:
		defer func() { <-f.inflight }()
	default:
		f.log().Warn("egress dns: too many queries in flight; answering SERVFAIL", "name", q.Name, "client", from.String())
		return m.SetRcode(r, dns.RcodeServerFailure)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*upstreamTimeout)
	defer cancel()
	resp, err := f.exchange(ctx, r)
	if err != nil {
		f.log().Warn("egress dns: upstream failed", "name", q.Name, "err", err)
		return m.SetRcode(r, dns.RcodeServerFailure)
	}
	addrs, ttl := f.addresses(q.Name, resp)
	if len(addrs) > 0 {
		if err := f.Sink.Allow(ctx, addrs, ttl); err != nil {
			f.log().Error("egress dns: cannot allow the answer's addresses", "name", q.Name, "err", err)
			return m.SetRcode(r, dns.RcodeServerFailure)
		}
	}
	resp.Id = r.Id
	return resp
}

// exchange asks the upstreams in turn, over TCP when the UDP answer is truncated.
func (f *Forwarder) exchange(ctx context.Context, r *dns.Msg) (*dns.Msg, error) {
	q := r.Copy()
	q.Id = dns.Id()
	var errs []error
	for _, up := range f.Upstreams {
		for _, proto := range []string{"udp", "tcp"} {
			c := &dns.Client{Net: proto, Timeout: upstreamTimeout}
			resp, _, err := c.ExchangeContext(ctx, q, up)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", proto, up, err))
				break
			}
			if resp.Truncated && proto == "udp" {
				continue
			}
			return resp, nil
		}
	}
	return nil, errors.Join(errs...)
}

// addresses collects the A/AAAA records of the answer that belong to name or
// to the CNAME chain starting at it (never unrelated records an upstream may
// add), and how long to allow them: the shortest TTL, within MinTTL..MaxTTL.
// The answer's TTLs are capped at MaxTTL so clients do not cache an address
// longer than it stays allowed.
func (f *Forwarder) addresses(name string, resp *dns.Msg) ([]netip.Addr, time.Duration) {
	minTTL, maxTTL := f.MinTTL, f.MaxTTL
	if minTTL <= 0 {
		minTTL = DefaultMinTTL
	}
	if maxTTL <= 0 {
		maxTTL = DefaultMaxTTL
	}
	capTTL := uint32(maxTTL / time.Second)
	for _, rr := range resp.Answer {
		if h := rr.Header(); h.Ttl > capTTL {
			h.Ttl = capTTL
		}
	}
	chain := map[string]bool{strings.ToLower(dns.Fqdn(name)): true}
	for range 16 { // follow CNAMEs (bounded)
		grown := false
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && chain[strings.ToLower(c.Hdr.Name)] && !chain[strings.ToLower(c.Target)] {
				chain[strings.ToLower(c.Target)] = true
				grown = true
			}
		}
		if !grown {
			break
		}
	}
	var addrs []netip.Addr
	ttl := maxTTL
	for _, rr := range resp.Answer {
		var ip net.IP
		switch v := rr.(type) {
		case *dns.A:
			ip = v.A
		case *dns.AAAA:
			ip = v.AAAA
		default:
			continue
		}
		if !chain[strings.ToLower(rr.Header().Name)] {
			continue
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		addrs = append(addrs, a.Unmap())
		ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	return addrs, max(ttl, minTTL)
}

func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// HostResolvers reads the nameservers of a resolv.conf file as host:53
// addresses (the host's resolvers, which the forwarder asks).
func HostResolvers(path string) ([]string, error) {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("egress: read resolvers: %w", err)
	}
	out := make([]string, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("egress: no nameserver in %s", path)
	}
	return out, nil
}
