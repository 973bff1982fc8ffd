// Package egress enforces a profile's `network: {allow: [...]}` policy from
// outside the sandbox: it parses the allow list, answers the sandboxes' DNS
// for the allowed names only (a small forwarder to the host's resolvers), and
// keeps the addresses it answered with in a kernel set that the firewall
// consults. The firewall rules themselves belong to the driver.
package egress

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Policy is a parsed allow list.
type Policy struct {
	Prefixes []netip.Prefix // CIDRs and single addresses (as /32, /128), masked
	Names    []string       // exact host names, lower case, no trailing dot
	Suffixes []string       // from "*.example.org": ".example.org" (subdomains only)
}

var labelRE = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`)

// Parse reads an allow list: CIDRs ("10.1.2.0/24"), single addresses, host
// names ("pypi.internal.example") and wildcards of one leading label
// ("*.example.org": every name under example.org, not example.org itself).
// Errors name the entry and say what is wrong.
func Parse(allow []string) (Policy, error) {
	var p Policy
	for i, raw := range allow {
		e := strings.TrimSpace(raw)
		switch {
		case e == "":
			return Policy{}, fmt.Errorf("allow[%d]: empty entry", i)
		case strings.Contains(e, "/"):
			pfx, err := netip.ParsePrefix(e)
			if err != nil {
				return Policy{}, fmt.Errorf("allow[%d]: %q is not a CIDR (e.g. 10.1.2.0/24)", i, raw)
			}
			p.Prefixes = append(p.Prefixes, pfx.Masked())
		default:
			if ip, err := netip.ParseAddr(e); err == nil {
				if ip.Zone() != "" {
					return Policy{}, fmt.Errorf("allow[%d]: %q: zoned addresses are not allowed", i, raw)
				}
				ip = ip.Unmap()
				p.Prefixes = append(p.Prefixes, netip.PrefixFrom(ip, ip.BitLen()))
				continue
			}
			name := strings.TrimSuffix(strings.ToLower(e), ".")
			wild := strings.HasPrefix(name, "*.")
			if wild {
				name = name[2:]
			}
			if err := checkName(name); err != nil {
				return Policy{}, fmt.Errorf("allow[%d]: %q is neither a CIDR, an IP address nor a host name (%v); wildcards are one leading label: *.example.org", i, raw, err)
			}
			if wild {
				p.Suffixes = append(p.Suffixes, "."+name)
			} else {
				p.Names = append(p.Names, name)
			}
		}
	}
	for _, s := range []*[]string{&p.Names, &p.Suffixes} {
		slices.Sort(*s)
		*s = slices.Compact(*s)
	}
	return p, nil
}

func checkName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("length")
	}
	for _, l := range strings.Split(name, ".") {
		if !labelRE.MatchString(l) {
			return fmt.Errorf("label %q", l)
		}
	}
	return nil
}

// AllowsName reports whether DNS may resolve name (any case, trailing dot or not).
func (p Policy) AllowsName(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if _, found := slices.BinarySearch(p.Names, name); found {
		return true
	}
	for _, s := range p.Suffixes {
		if len(name) > len(s) && strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// AllowsAddr reports whether addr is inside an allowed CIDR.
func (p Policy) AllowsAddr(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, pfx := range p.Prefixes {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// Entries is the policy as an allow list again (normalized), for display.
func (p Policy) Entries() []string {
	out := make([]string, 0, len(p.Prefixes)+len(p.Names)+len(p.Suffixes))
	for _, pfx := range p.Prefixes {
		out = append(out, pfx.String())
	}
	out = append(out, p.Names...)
	for _, s := range p.Suffixes {
		out = append(out, "*"+s)
	}
	return out
}

// AlwaysBlocked are destinations no allow list opens: link-local (cloud
// metadata at 169.254.169.254 and the like), the IPv6 link-local range and
// the IPv6 metadata address some clouds use. The host itself and other
// sandboxes are kept off by the driver's interface rules, not by address.
var AlwaysBlocked = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"), // AWS IMDS over IPv6
}
