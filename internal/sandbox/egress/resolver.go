package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// Bounds on what a sandbox's lookups teach the proxy: an answer is believed at least minNameTTL
// (an app may connect a little after a short TTL ran out) and at most maxNameTTL; a sandbox keeps
// at most maxNames of them.
const (
	minNameTTL = time.Minute
	maxNameTTL = time.Hour
	maxNames   = 4096
)

// upstream asks the operator's DNS servers, from the namespace egress leaves from.
type upstream struct {
	servers []string
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	timeout time.Duration
}

// exchange sends q to each server in turn until one answers.
func (u *upstream) exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	var errs []error
	for _, server := range u.servers {
		ctx, cancel := context.WithTimeout(ctx, u.timeout)
		conn, err := u.dial(ctx, "udp", server)
		if err != nil {
			cancel()
			errs = append(errs, err)
			continue
		}
		client := dns.Client{Net: "udp", Timeout: u.timeout}
		resp, _, err := client.ExchangeWithConnContext(ctx, q, &dns.Conn{Conn: conn})
		_ = conn.Close()
		cancel()
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("no DNS server is configured (network.dns_servers, or nameservers in /etc/resolv.conf)")
	}
	return nil, fmt.Errorf("no DNS server answered: %w", errors.Join(errs...))
}

// lookup returns the IPv4 addresses name has now.
func (u *upstream) lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	resp, err := u.exchange(ctx, q)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			if addr, ok := netip.AddrFromSlice(a.A.To4()); ok {
				addrs = append(addrs, addr)
			}
		}
	}
	return addrs, nil
}

// resolvConfServers reads the nameservers of an /etc/resolv.conf.
func resolvConfServers(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var servers []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			servers = append(servers, net.JoinHostPort(fields[1], "53"))
		}
	}
	return servers
}

// names is what a sandbox's lookups through our resolver returned: which names lead to which
// addresses, until their (bounded) TTL runs out.
type names struct {
	mu      sync.Mutex
	entries map[netip.Addr]map[string]time.Time
}

func (n *names) learn(name string, addr netip.Addr, ttl time.Duration) {
	ttl = min(max(ttl, minNameTTL), maxNameTTL)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.entries == nil {
		n.entries = map[netip.Addr]map[string]time.Time{}
	}
	if len(n.entries) >= maxNames {
		n.expire()
	}
	if len(n.entries) >= maxNames {
		return // an app resolving without end learns nothing more until some expire
	}
	if n.entries[addr] == nil {
		n.entries[addr] = map[string]time.Time{}
	}
	n.entries[addr][name] = time.Now().Add(ttl)
}

func (n *names) expire() {
	now := time.Now()
	for addr, byName := range n.entries {
		for name, until := range byName {
			if now.After(until) {
				delete(byName, name)
			}
		}
		if len(byName) == 0 {
			delete(n.entries, addr)
		}
	}
}

// of returns the names that led to addr.
func (n *names) of(addr netip.Addr) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	var out []string
	for name, until := range n.entries[addr] {
		if now.Before(until) {
			out = append(out, name)
		}
	}
	return out
}

// leadsTo reports whether the sandbox learned that name leads to addr.
func (n *names) leadsTo(name string, addr netip.Addr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	until, ok := n.entries[addr][name]
	return ok && time.Now().Before(until)
}

// dnsHandler answers one sandbox's queries: names its policy lets it reach are looked up
// upstream, their answers cut to IPv4 addresses the guard allows, and learnt; any other name gets
// NXDOMAIN without a query leaving (no tunnelling data out through lookups).
type dnsHandler struct{ a *attachment }

func (h dnsHandler) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	a := h.a
	resp := new(dns.Msg)
	resp.SetReply(q)
	resp.RecursionAvailable = true
	if len(q.Question) != 1 || q.Opcode != dns.OpcodeQuery {
		resp.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(resp)
		return
	}
	question := q.Question[0]
	name := strings.ToLower(strings.TrimSuffix(question.Name, "."))
	ctx, cancel := context.WithTimeout(context.Background(), a.svc.cfg.DialTimeout)
	defer cancel()
	pol := a.policy(ctx)
	if reason := pol.nameRefused(a.svc.guard, name); reason != "" {
		a.svc.block(a, BlockedAttempt{Protocol: "dns", Name: name, Reason: reason})
		resp.Rcode = dns.RcodeNameError
		_ = w.WriteMsg(resp)
		return
	}
	if question.Qtype != dns.TypeA && question.Qtype != dns.TypeCNAME {
		// IPv4 only: an AAAA (or any other) query has no answer, so apps fall back to A.
		_ = w.WriteMsg(resp)
		return
	}
	up, err := a.svc.upstream.exchange(ctx, q)
	if err != nil {
		a.svc.log.Debug("a sandbox's lookup failed upstream", zap.String("name", name), zap.Error(err))
		resp.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(resp)
		return
	}
	resp.Rcode = up.Rcode
	for _, rr := range up.Answer {
		switch rr := rr.(type) {
		case *dns.CNAME:
			resp.Answer = append(resp.Answer, rr)
		case *dns.A:
			addr, ok := netip.AddrFromSlice(rr.A.To4())
			if !ok {
				continue
			}
			if reason := a.svc.guard.deniedAddr(addr); reason != "" {
				// A name of the outside that points inside (DNS rebinding) resolves to nothing.
				a.svc.block(a, BlockedAttempt{Protocol: "dns", Name: name, Destination: addr.String(), Reason: reason})
				continue
			}
			a.names.learn(name, addr, time.Duration(rr.Hdr.Ttl)*time.Second)
			resp.Answer = append(resp.Answer, rr)
		}
	}
	_ = w.WriteMsg(resp)
}
