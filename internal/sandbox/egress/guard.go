package egress

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/insien/orchestrator/internal/platform/netguard"
)

// guard is the operator's deny list, applied before any sandbox's policy.
type guard struct {
	deny         rules // built-in, the host's own subnets, network.deny
	private      rules
	allowPrivate rules
}

// newGuard builds the deny list; ownNets are the subnets of the namespace egress leaves from.
func newGuard(deny, allowPrivate []string, ownNets []netip.Prefix) (*guard, error) {
	builtin := rules{prefixes: netguard.Reserved()}
	private := rules{prefixes: netguard.Private()} // denied unless the operator opens some (network.allow_private)
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
