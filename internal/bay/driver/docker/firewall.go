package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/shipyard/shipyard/internal/bay/egress"
)

// Every bridge this driver creates gets an interface name starting with
// bridgePrefix, so one host rule covers them all, including session networks
// created later.
const bridgePrefix = "bay"

// Host firewall objects: an inet table of Bay's own (IPv4 and IPv6) with one
// base chain on the input hook. Docker's rules live in other tables and are
// never touched.
const (
	firewallTable        = "bay"
	firewallChain        = "sandbox-input"
	firewallForwardChain = "sandbox-forward"
)

// bridgeName is the host interface name of the Bay network called name:
// bridgePrefix and a hash of the name, within Linux's 15-byte limit.
func bridgeName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return bridgePrefix + hex.EncodeToString(sum[:])[:12]
}

// isolateHost installs (or refreshes, atomically) the rules that keep
// sandboxes off the host itself: a packet arriving from a sandbox bridge and
// addressed to the host (Bay's API whatever its bind address, the Docker
// socket if exposed over TCP, any other host service) is rejected unless it
// answers a connection the host opened (Bay → Ship). Traffic routed through
// the host (egress) is Docker's FORWARD business, except that nothing from a
// sandbox bridge is forwarded to egress.AlwaysBlocked (cloud metadata); traffic
// between sandboxes is cut by the bridges' enable_icc=false and Docker's
// isolation between bridges.
//
// extra names interfaces outside bridgePrefix to cover as well (a
// configured network Bay did not create).
func isolateHost(extra []string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: firewallTable})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: firewallChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.FlushChain(ch)
	// DNS of egress policies: udp/tcp 53 to exactly a policy bridge's gateway
	// from that bridge (pairs in the set, added by installEgress; the set and
	// its elements outlive this flush, so several Bays on one host keep each
	// other's pairs).
	dnsSet := egressDNSSet(t)
	if err := c.AddSet(dnsSet, nil); err != nil {
		return fmt.Errorf("nftables set %s: %w", dnsSet.Name, err)
	}
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 8},
			&expr.Payload{DestRegister: 12, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: 8, SetName: dnsSet.Name, SetID: dnsSet.ID},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
	}
	ifaces := [][]byte{[]byte(bridgePrefix)} // a prefix: cmp compares len(data) bytes
	for _, name := range extra {
		ifaces = append(ifaces, append([]byte(name), 0)) // exact name
	}
	established := binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED)
	for _, iface := range ifaces {
		match := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: iface},
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(match[:2:2],
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: established, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			&expr.Verdict{Kind: expr.VerdictAccept},
		)})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(match[:2:2],
			&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED},
		)})
	}
	// Whatever a sandbox's egress policy (network: full included), nothing
	// from a sandbox bridge is forwarded to cloud metadata and the other
	// always-blocked destinations.
	fwd := c.AddChain(&nftables.Chain{Name: firewallForwardChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.FlushChain(fwd)
	for _, iface := range ifaces {
		for _, p := range egress.AlwaysBlocked {
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: append([]expr.Any{
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: iface},
			}, append(prefixMatch(p),
				&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED})...)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nftables rules (table inet %s): %w", firewallTable, err)
	}
	return nil
}
