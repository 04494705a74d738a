package egress

import (
	"fmt"
	"net"
	"net/netip"
)

// Addresses no sandbox reaches, whatever its policy: this host and its loopback, link-local
// (which holds the clouds' metadata address 169.254.169.254), the shared address space (Alibaba's
// metadata 100.100.100.200), multicast and reserved space, and their IPv6 counterparts (AWS's
// metadata fd00:ec2::254 sits in the unique-local range below).
var builtinDeny = []string{
	"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "192.0.0.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "fe80::/10", "ff00::/8", "64:ff9b::/96",
}

// privateRanges are denied unless the operator opens some of them (network.allow_private).
var privateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}

// guard is the operator's deny list, applied before any sandbox's policy.
type guard struct {
	deny         rules // built-in, the host's own subnets, network.deny
	private      rules
	allowPrivate rules
}

// newGuard builds the deny list; ownNets are the subnets of the namespace egress leaves from.
func newGuard(deny, allowPrivate []string, ownNets []netip.Prefix) (*guard, error) {
	builtin, _ := parseRules("", builtinDeny)
	private, _ := parseRules("", privateRanges)
	operator, err := parseRules("network.deny", deny)
	if err != nil {
		return nil, fmt.Errorf("network.deny: %w", err)
	}
	opened, err := parseRules("network.allow_private", allowPrivate)
	if err != nil {
		return nil, fmt.Errorf("network.allow_private: %w", err)
	}
	if len(opened.names) > 0 {
		return nil, fmt.Errorf("network.allow_private: %s is a name; list CIDRs", opened.names[0].name)
	}
	g := &guard{private: private, allowPrivate: opened}
	g.deny.prefixes = append(append(builtin.prefixes, operator.prefixes...), ownNets...)
	g.deny.names = operator.names
	return g, nil
}

// deniedAddr says why a is never reachable, or "" when the sandbox's policy decides.
func (g *guard) deniedAddr(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case g.deny.hasAddr(a):
		return "the operator never lets sandboxes reach this address"
	case g.private.hasAddr(a) && !g.allowPrivate.hasAddr(a):
		return "private addresses are not reachable from sandboxes"
	}
	return ""
}

func (g *guard) deniedName(name string) bool { return g.deny.hasName(name) }

// interfaceNets are the subnets of every address of this network namespace's interfaces.
func interfaceNets() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list the addresses of the egress namespace: %w", err)
	}
	var nets []netip.Prefix
	for _, a := range addrs {
		if ipnet, ok := a.(*net.IPNet); ok {
			ip, _ := netip.AddrFromSlice(ipnet.IP)
			ones, _ := ipnet.Mask.Size()
			nets = append(nets, netip.PrefixFrom(ip.Unmap(), ones).Masked())
		}
	}
	return nets, nil
}
