// Package netguard names the address ranges a connection made on a user's behalf must not reach
// (this host, the private network, the clouds' metadata services), so that sandbox egress and
// outbound webhooks refuse the same addresses from one list.
package netguard

import (
	"net/netip"
	"slices"
)

// span is a range and what it is, for the reason given when an address in it is refused.
type span struct {
	prefix netip.Prefix
	kind   string
}

func spans(kind string, cidrs ...string) []span {
	out := make([]span, len(cidrs))
	for i, c := range cidrs {
		out[i] = span{prefix: netip.MustParsePrefix(c), kind: kind}
	}
	return out
}

// reserved is never reachable: this host and its loopback, link-local (which holds the clouds'
// metadata address 169.254.169.254), the shared address space (Alibaba's metadata
// 100.100.100.200), multicast and reserved space, and their IPv6 counterparts (AWS's metadata
// fd00:ec2::254 sits in the unique-local range of private).
var reserved = slices.Concat(
	spans("loopback", "127.0.0.0/8", "::1/128"),
	spans("link-local (cloud metadata)", "169.254.0.0/16", "fe80::/10"),
	spans("shared address space (carrier-grade NAT, cloud metadata)", "100.64.0.0/10"),
	spans("unspecified", "0.0.0.0/8", "::/128"),
	spans("reserved", "192.0.0.0/24", "240.0.0.0/4", "64:ff9b::/96"),
	spans("multicast", "224.0.0.0/4", "ff00::/8"),
)

// private is the private network (RFC 1918 and IPv6 unique-local), which an operator may open.
var private = spans("private", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

func prefixes(ss []span) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = s.prefix
	}
	return out
}

// Reserved are the ranges no connection on a user's behalf reaches, whatever the configuration
// of the feature making it (a fresh slice each call).
func Reserved() []netip.Prefix { return prefixes(reserved) }

// Private are the private network's ranges (a fresh slice each call).
func Private() []netip.Prefix { return prefixes(private) }

// Classify says which kind of refused range holds a ("loopback", "private", ...), or "" for a
// public address. IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
func Classify(a netip.Addr) string {
	a = a.Unmap()
	for _, s := range slices.Concat(reserved, private) {
		if s.prefix.Contains(a) {
			return s.kind
		}
	}
	return ""
}
