package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/network"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/egress"
)

// An egress policy (profile `network: {allow: [...]}`) on this driver:
//
//   - its sandboxes join a bridge of their own, bay-egress-<id> (enable_icc=false,
//     interface bay<hash>, so the host rules of isolateHost cover it);
//   - a base chain egress-<id> on the forward hook of Bay's table drops
//     everything from that bridge except replies, the allowed CIDRs and the
//     addresses in the sets egress-<id>-<list hash>-4/-6 that Bay's DNS
//     forwarder fills (a changed list gets new sets);
//     other Bay bridges (other sandboxes) and AlwaysBlocked (cloud metadata)
//     are refused before any allow rule, so no allow entry opens them; the
//     host itself is the input hook's business (isolateHost), where only DNS
//     to the bridge's gateway passes;
//   - the forwarder listens on the gateway, port 53, and is the containers'
//     DNS server (HostConfig.DNS).
//
// Each policy's chain and sets are its own, so Bays (and tests) with
// different policies on one host never overwrite each other's.
type egressNet struct {
	network string
	gateway netip.Addr
	allow   []string
	sink    *egress.NFTSet
	fwd     *egress.Forwarder // nil when another process already serves the policy's DNS
}

// egressID names a policy's objects: a hash, since profile ids may hold any character.
func egressID(policy string) string {
	sum := sha256.Sum256([]byte(policy))
	return hex.EncodeToString(sum[:])[:12]
}

func egressNetwork(policy string) string { return "bay-egress-" + egressID(policy) }

func egressDNSSet(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: "egress-dns", Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)}
}

// ensureEgress readies a policy (network, rules, DNS) once per driver, and
// again when its allow list or its network changes. It returns the network to
// join and the DNS server to use.
func (d *Driver) ensureEgress(ctx context.Context, e driver.Egress) (netName, dns string, err error) {
	pol, err := egress.Parse(e.Allow)
	if err != nil {
		return "", "", fmt.Errorf("docker: egress policy %q: %w", e.Policy, err)
	}
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	name := egressNetwork(e.Policy)
	if err := d.ensureBayNetwork(ctx, name, false); err != nil {
		return "", "", err
	}
	info, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil {
		return "", "", wrap("inspect network", name, err)
	}
	var subnet netip.Prefix
	var gw netip.Addr
	for _, c := range info.IPAM.Config {
		s, err1 := netip.ParsePrefix(c.Subnet)
		g, err2 := netip.ParseAddr(c.Gateway)
		if err1 == nil && err2 == nil && s.Addr().Is4() {
			subnet, gw = s, g
			break
		}
	}
	if !gw.IsValid() {
		return "", "", fmt.Errorf("docker: egress network %s has no IPv4 subnet and gateway (%+v)", name, info.IPAM.Config)
	}
	n := d.egressNets[e.Policy]
	if n != nil && n.gateway == gw && slices.Equal(n.allow, e.Allow) {
		return n.network, gw.String(), nil
	}

	id := egressID(e.Policy)
	set4, set6 := egressSets(id, pol)
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: firewallTable}
	if err := installEgress(t, id, set4, set6, bridgeName(name), gw, pol, d.extraIfaces); err != nil {
		return "", "", fmt.Errorf("docker: egress policy %q needs Bay's nftables rules and cannot install them: %w (run Bay with CAP_NET_ADMIN, as root)", e.Policy, err)
	}
	if n != nil && n.gateway == gw && n.fwd != nil {
		// Same address: the running forwarder takes the new list and sets.
		n.sink.Use(set4, set6)
		n.fwd.SetPolicy(pol)
		n.allow = slices.Clone(e.Allow)
		d.log.InfoContext(ctx, "egress policy changed", "egress_policy", e.Policy, "allow", pol.Entries())
		return name, gw.String(), nil
	}
	if n != nil && n.fwd != nil {
		_ = n.fwd.Close()
	}
	n = &egressNet{network: name, gateway: gw, allow: slices.Clone(e.Allow),
		sink: &egress.NFTSet{Table: t, Set4: set4, Set6: set6}}
	ups := d.cfg.EgressUpstreams
	if len(ups) == 0 {
		if ups, err = egress.HostResolvers("/etc/resolv.conf"); err != nil {
			return "", "", fmt.Errorf("docker: egress policy %q: %w", e.Policy, err)
		}
	}
	fwd := &egress.Forwarder{Upstreams: ups, Clients: subnet, Log: d.log.With("egress_policy", e.Policy), Sink: n.sink}
	fwd.SetPolicy(pol)
	addr := net.JoinHostPort(gw.String(), "53")
	switch err := fwd.ListenAndServe(addr); {
	case errors.Is(err, syscall.EADDRINUSE):
		// Another Bay on this host serves this policy's DNS (same profile id).
		d.log.WarnContext(ctx, "egress DNS address in use; another process serves it", "egress_policy", e.Policy, "addr", addr)
	case err != nil:
		return "", "", fmt.Errorf("docker: egress policy %q: %w", e.Policy, err)
	default:
		n.fwd = fwd
	}
	if d.egressNets == nil {
		d.egressNets = map[string]*egressNet{}
	}
	d.egressNets[e.Policy] = n
	d.log.InfoContext(ctx, "egress policy ready", "egress_policy", e.Policy, "network", name, "dns", gw.String(), "allow", pol.Entries())
	return name, gw.String(), nil
}

// egressSets names the DNS sets of a policy's allow list: another list gets
// other (empty) sets, so addresses answered for names that only a former
// list allowed do not stay reachable.
func egressSets(id string, pol egress.Policy) (v4, v6 string) {
	sum := sha256.Sum256([]byte(strings.Join(pol.Entries(), "\n")))
	base := "egress-" + id + "-" + hex.EncodeToString(sum[:4])
	return base + "-4", base + "-6"
}

// egressDNSFor is the DNS server of instances on network name ("" = the engine's default).
func (d *Driver) egressDNSFor(name string) string {
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	for _, n := range d.egressNets {
		if n.network == name {
			return n.gateway.String()
		}
	}
	return ""
}

// closeEgress stops the DNS forwarders (the rules stay: without DNS the
// sandboxes reach only the allowed CIDRs, never more).
func (d *Driver) closeEgress() {
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	for _, n := range d.egressNets {
		if n.fwd != nil {
			_ = n.fwd.Close()
		}
	}
	d.egressNets = nil
}

// installEgress installs (atomically, idempotently) the policy's forward
// chain and sets, and lets DNS from its bridge to its gateway through the
// host rules. extra names further interfaces of other sandboxes (a configured
// network) to refuse like Bay's own bridges.
func installEgress(t *nftables.Table, id, name4, name6, iface string, gw netip.Addr, pol egress.Policy, extra []string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	existing, _ := c.GetSets(t) // none yet when the table is new
	c.AddTable(t)
	set4 := &nftables.Set{Table: t, Name: name4, KeyType: nftables.TypeIPAddr, HasTimeout: true, Size: 65536}
	set6 := &nftables.Set{Table: t, Name: name6, KeyType: nftables.TypeIP6Addr, HasTimeout: true, Size: 65536}
	dnsSet := egressDNSSet(t)
	for _, s := range []*nftables.Set{set4, set6, dnsSet} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	key := make([]byte, 16, 20) // ifname (IFNAMSIZ, zero padded) . ipv4
	copy(key, iface)
	key = append(key, gw.AsSlice()...)
	if err := c.SetAddElements(dnsSet, []nftables.SetElement{{Key: key}}); err != nil {
		return fmt.Errorf("set %s: %w", dnsSet.Name, err)
	}

	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "egress-" + id, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.FlushChain(ch)
	rule := func(e ...expr.Any) { c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e}) }
	reject := &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}
	verdict := func(k expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: k} }

	// Not from this bridge: not this chain's business.
	rule(&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: append([]byte(iface), 0)},
		verdict(expr.VerdictReturn))
	// Replies and the rest of connections already allowed.
	established := binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED)
	rule(&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: established, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		verdict(expr.VerdictAccept))
	// Other sandboxes, whatever the allow list says.
	outs := [][]byte{[]byte(bridgePrefix)}
	for _, x := range extra {
		outs = append(outs, append([]byte(x), 0))
	}
	for _, o := range outs {
		rule(&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: o}, reject)
	}
	for _, p := range egress.AlwaysBlocked {
		rule(append(prefixMatch(p), reject)...)
	}
	for _, p := range pol.Prefixes {
		rule(append(prefixMatch(p), verdict(expr.VerdictAccept))...)
	}
	for _, s := range []*nftables.Set{set4, set6} {
		proto, off, n := byte(unix.NFPROTO_IPV4), uint32(16), uint32(4)
		if s == set6 {
			proto, off, n = unix.NFPROTO_IPV6, 24, 16
		}
		rule(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
			verdict(expr.VerdictAccept))
	}
	rule(reject)
	// The sets of a former allow list go, now that no rule uses them.
	for _, s := range existing {
		if strings.HasPrefix(s.Name, "egress-"+id+"-") && s.Name != name4 && s.Name != name6 {
			c.DelSet(s)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nftables rules (table inet %s, chain egress-%s): %w", t.Name, id, err)
	}
	return nil
}

// prefixMatch matches packets whose destination is in p (of p's family).
func prefixMatch(p netip.Prefix) []expr.Any {
	proto, off := byte(unix.NFPROTO_IPV4), uint32(16)
	if p.Addr().Is6() {
		proto, off = unix.NFPROTO_IPV6, 24
	}
	n := uint32(p.Addr().BitLen() / 8)
	mask := net.CIDRMask(p.Bits(), p.Addr().BitLen())
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

// RemoveEgress removes what a policy left on the host: its DNS forwarder,
// network (an error wrapping driver.ErrInUse while instances use it), chain,
// sets and DNS rule entry. For an operator's clean-up and tests; Bay keeps a
// policy's objects while its profile exists.
func (d *Driver) RemoveEgress(ctx context.Context, policy string) error {
	name := egressNetwork(policy)
	if err := d.DeleteNetwork(ctx, name); err != nil {
		return err
	}
	d.egressMu.Lock()
	n := d.egressNets[policy]
	delete(d.egressNets, policy)
	d.egressMu.Unlock()
	if n != nil && n.fwd != nil {
		_ = n.fwd.Close()
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: firewallTable}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("list nftables chains: %w", err)
	}
	id := egressID(policy)
	for _, ch := range chains {
		if ch.Table.Name == firewallTable && ch.Name == "egress-"+id {
			c.DelChain(ch)
		}
	}
	if sets, err := c.GetSets(t); err == nil {
		for _, s := range sets {
			if strings.HasPrefix(s.Name, "egress-"+id+"-") {
				c.DelSet(s)
			}
		}
		if n != nil {
			key := make([]byte, 16, 20)
			copy(key, bridgeName(name))
			_ = c.SetDeleteElements(egressDNSSet(t), []nftables.SetElement{{Key: append(key, n.gateway.AsSlice()...)}})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove nftables rules of egress policy %q: %w", policy, err)
	}
	return nil
}

// EnforcesEgress reports that this driver enforces network: none and
// network: {allow: [...]} (sandbox.EgressEnforcer).
func (d *Driver) EnforcesEgress() bool { return true }
