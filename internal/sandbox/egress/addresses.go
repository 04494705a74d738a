package egress

import (
	"net/netip"
	"slices"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
)

// everywhere is every IPv4 address: what egress all allows before its exceptions.
var everywhere = netip.MustParsePrefix("0.0.0.0/0")

// addressesOnly refuses the names of a policy for a driver that enforces addresses only.
func addressesOnly(pol *policy) error {
	for field, r := range map[string]rules{"network.allow": pol.allow, "network.deny": pol.deny} {
		if len(r.names) > 0 {
			return apierror.Invalid(field, "%s: %q is a domain name; this server's runtime (Kubernetes NetworkPolicies) enforces IPs and CIDRs only",
				field, r.names[0].name)
		}
	}
	return nil
}

// addressRules is a policy as address ranges (IPv4), for a driver that enforces addresses only:
// nil for none. The guard's ranges are excepted from every allowed range that holds them, and an
// allowed range inside one of them is dropped, unless the operator opened it (allow_private).
func (s *Service) addressRules(pol *policy) *runtimes.EgressRules {
	if pol.mode == model.EgressNone {
		return nil
	}
	g := s.guard
	var denied []netip.Prefix
	for _, p := range slices.Concat(g.deny.prefixes, g.private.prefixes, pol.deny.prefixes) {
		if p.Addr().Is4() {
			denied = append(denied, p)
		}
	}
	opened := func(p netip.Prefix) bool {
		return slices.ContainsFunc(g.allowPrivate.prefixes, func(o netip.Prefix) bool { return o.Bits() <= p.Bits() && o.Contains(p.Addr()) })
	}
	inside := func(p netip.Prefix) bool {
		for _, d := range denied {
			if d.Bits() <= p.Bits() && d.Contains(p.Addr()) && !(slices.Contains(g.private.prefixes, d) && opened(p)) {
				return true
			}
		}
		return false
	}
	rules := &runtimes.EgressRules{Allow: []netip.Prefix{}}
	candidates := pol.allow.prefixes
	if pol.mode == model.EgressAll {
		candidates = append([]netip.Prefix{everywhere}, g.allowPrivate.prefixes...)
	}
	for _, p := range candidates {
		if p.Addr().Is4() && !inside(p) {
			rules.Allow = append(rules.Allow, p)
		}
	}
	for _, d := range denied {
		if !slices.Contains(g.private.prefixes, d) || !opened(d) {
			rules.Except = append(rules.Except, d)
		}
	}
	return rules
}
