// Package egress enforces a sandbox's network policy: what it may reach outside. A sandbox with
// an open policy gets a route out that leads only to the orchestrator: nftables rules in its own
// network namespace (which it has no capability to change) send its TCP to a proxy and its DNS to
// a resolver, both listening on its loopback and run by the orchestrator, and drop everything
// else. The proxy decides each connection by the address actually dialed and, for domain rules,
// the name the client asked for (TLS SNI or the HTTP Host) checked against what that name
// resolves to, then connects from the orchestrator's side.
package egress

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/sandbox/model"
)

// MaxEntries bounds each of a policy's lists.
const MaxEntries = 256

// rules are a list of entries, parsed: address ranges and name patterns.
type rules struct {
	prefixes []netip.Prefix
	names    []pattern
}

// pattern is a domain name, or with wildcard every name under it (not the name itself).
type pattern struct {
	name     string
	wildcard bool
}

func (p pattern) matches(name string) bool {
	if p.wildcard {
		return strings.HasSuffix(name, "."+p.name)
	}
	return name == p.name
}

func (r rules) hasAddr(a netip.Addr) bool {
	return slices.ContainsFunc(r.prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
}

func (r rules) hasName(name string) bool {
	return name != "" && slices.ContainsFunc(r.names, func(p pattern) bool { return p.matches(name) })
}

// policy is a model.Network, parsed.
type policy struct {
	mode  string
	allow rules
	deny  rules
}

// parseRules parses entries: IPs, CIDRs and domain names with an optional leading "*.". The
// error names the first bad entry.
func parseRules(field string, entries []string) (rules, error) {
	var r rules
	if len(entries) > MaxEntries {
		return r, apierror.Invalid(field, "%s has %d entries, at most %d", field, len(entries), MaxEntries)
	}
	for _, entry := range entries {
		if p, err := netip.ParsePrefix(entry); err == nil {
			r.prefixes = append(r.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(entry); err == nil {
			r.prefixes = append(r.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, ok := parsePattern(entry)
		if !ok {
			return r, apierror.Invalid(field,
				"%s: %q is not an IP, a CIDR or a domain name (a leading \"*.\" matches every name under one)", field, entry)
		}
		r.names = append(r.names, p)
	}
	return r, nil
}

// parsePattern accepts a DNS name of letters, digits, '-' and '.', optionally after "*.".
func parsePattern(entry string) (pattern, bool) {
	name, wildcard := strings.CutPrefix(strings.ToLower(strings.TrimSuffix(entry, ".")), "*.")
	if name == "" || len(name) > 253 {
		return pattern{}, false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return pattern{}, false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return pattern{}, false
			}
		}
	}
	// All digits and dots is an address that failed to parse (999.1.1.1), never a name.
	if strings.Trim(name, "0123456789.") == "" {
		return pattern{}, false
	}
	return pattern{name: name, wildcard: wildcard}, true
}

// parsePolicy parses and checks a user's policy; allowedModes are the operator's cap.
func parsePolicy(n model.Network, allowedModes []string) (*policy, error) {
	if !slices.Contains(model.EgressModes, n.Egress) {
		return nil, apierror.Invalid("network.egress", "network.egress must be one of %s", strings.Join(model.EgressModes, ", "))
	}
	if !slices.Contains(allowedModes, n.Egress) {
		return nil, apierror.Forbidden("network_mode_not_allowed",
			"this server does not let sandboxes use egress %q (allowed: %s)", n.Egress, strings.Join(allowedModes, ", "))
	}
	if n.Egress == model.EgressNone && (len(n.Allow) > 0 || len(n.Deny) > 0) {
		return nil, apierror.Invalid("network", "network.allow and network.deny need egress allow or all; with none nothing leaves")
	}
	if n.Egress == model.EgressAll && len(n.Allow) > 0 {
		return nil, apierror.Invalid("network.allow", "network.allow means nothing with egress all (everything not denied is allowed); use egress allow")
	}
	allow, err := parseRules("network.allow", n.Allow)
	if err != nil {
		return nil, err
	}
	deny, err := parseRules("network.deny", n.Deny)
	if err != nil {
		return nil, err
	}
	return &policy{mode: n.Egress, allow: allow, deny: deny}, nil
}

// Normalize checks a user's policy against the operator's cap and returns it as stored: the mode
// defaulted to none, entries lower-cased.
func Normalize(n model.Network, allowedModes []string) (model.Network, error) {
	n, _, err := normalize(n, allowedModes)
	return n, err
}

// normalize is Normalize, with the policy parsed.
func normalize(n model.Network, allowedModes []string) (model.Network, *policy, error) {
	if n.Egress == "" {
		n.Egress = model.EgressNone
	}
	pol, err := parsePolicy(n, allowedModes)
	if err != nil {
		return model.Network{}, nil, err
	}
	lower := func(entries []string) []string {
		out := make([]string, len(entries))
		for i, e := range entries {
			out[i] = strings.ToLower(e)
		}
		return out
	}
	return model.Network{Egress: n.Egress, Allow: lower(n.Allow), Deny: lower(n.Deny)}, pol, nil
}

// enforced is a stored policy as it is enforced: closed (none) when it is no longer allowed here
// (the operator's cap changed since it was set).
func enforced(n model.Network, allowedModes []string) *policy {
	pol, err := parsePolicy(n, allowedModes)
	if err != nil {
		return &policy{mode: model.EgressNone}
	}
	return pol
}
