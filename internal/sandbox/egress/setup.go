package egress

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/insien/orchestrator/internal/platform/netns"
)

// tableName is the nftables table egress owns in a sandbox's namespace.
const tableName = "insien_egress"

// sandboxAddr is the sandbox's own address on its route out (RFC 7600's IPv4 dummy address: it
// names no host anywhere, and packets to or from it go nowhere but through our rules).
var sandboxAddr = net.IPv4(192, 0, 0, 8)

// listeners are what a sandbox's redirected traffic reaches, made inside its namespace.
type listeners struct {
	tcp net.Listener
	dns net.PacketConn
}

func (l listeners) Close() {
	if l.tcp != nil {
		_ = l.tcp.Close()
	}
	if l.dns != nil {
		_ = l.dns.Close()
	}
}

// reusePort lets every replica listen on the same ports of a sandbox's loopback, so that the
// kernel shares the sandbox's connections among them and any one of them may go away.
var reusePort = net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
	return errors.Join(err, serr)
}}

// openRoute gives the namespace ns a route out that ends at our listeners: an address and a
// default route over its loopback, the listeners, and the nftables rules that redirect to them
// (replaced in one transaction, so another replica's copy is never half-written).
func openRoute(ns *os.File, proxyPort, dnsPort int) (listeners, error) {
	var l listeners
	err := netns.Do(ns, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find the loopback: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring the loopback up: %w", err)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: sandboxAddr, Mask: net.CIDRMask(32, 32)}}
		if err := netlink.AddrAdd(lo, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add the sandbox's address: %w", err)
		}
		if err := netlink.RouteReplace(defaultRoute(lo)); err != nil {
			return fmt.Errorf("add the route out: %w", err)
		}
		ctx := context.Background()
		if l.tcp, err = reusePort.Listen(ctx, "tcp4", "127.0.0.1:"+strconv.Itoa(proxyPort)); err != nil {
			return fmt.Errorf("listen for the sandbox's connections: %w", err)
		}
		if l.dns, err = reusePort.ListenPacket(ctx, "udp4", "127.0.0.1:"+strconv.Itoa(dnsPort)); err != nil {
			return fmt.Errorf("listen for the sandbox's DNS queries: %w", err)
		}
		return nil
	})
	if err == nil {
		err = writeRules(ns, proxyPort, dnsPort)
	}
	if err != nil {
		l.Close()
		return listeners{}, err
	}
	return l, nil
}

// closeRoute takes the route out away again: the sandbox is back to no network at all.
func closeRoute(ns *os.File) error {
	conn, _, err := dropTable(ns)
	if err != nil {
		return err
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("remove the egress rules: %w", err)
	}
	return netns.Do(ns, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find the loopback: %w", err)
		}
		if err := netlink.RouteDel(defaultRoute(lo)); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("remove the route out: %w", err)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: sandboxAddr, Mask: net.CIDRMask(32, 32)}}
		if err := netlink.AddrDel(lo, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove the sandbox's address: %w", err)
		}
		return nil
	})
}

func defaultRoute(lo netlink.Link) *netlink.Route {
	return &netlink.Route{LinkIndex: lo.Attrs().Index, Scope: netlink.SCOPE_LINK, Src: sandboxAddr,
		Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}}
}

// writeRules (re)writes the sandbox's egress rules:
//
//	nat output:    udp dport 53 → redirect to dnsPort; daddr on loopback or the sandbox → leave;
//	               tcp → redirect to proxyPort
//	filter output: daddr on loopback or the sandbox → accept; anything else → drop
//
// Redirected packets reach the filter with a loopback destination; what is left (UDP other than
// DNS, ICMP, IPv6 off the loopback) is dropped.
func writeRules(ns *os.File, proxyPort, dnsPort int) error {
	conn, table, err := dropTable(ns)
	if err != nil {
		return err
	}
	conn.AddTable(table)
	nat := conn.AddChain(&nftables.Chain{Name: "redirect", Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	accept := nftables.ChainPolicyAccept
	filter := conn.AddChain(&nftables.Chain{Name: "out", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	verdict := func(kind expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: kind} }
	rules := []struct {
		chain *nftables.Chain
		exprs []expr.Any
	}{
		{nat, cat(ipv4(), l4(unix.IPPROTO_UDP), dport(53), redirect(dnsPort))},
		{nat, cat(ipv4(), daddrIn(127, 8), verdict(expr.VerdictAccept))},
		{nat, cat(ipv4(), daddrIn(192, 0, 0, 8, 32), verdict(expr.VerdictAccept))},
		{nat, cat(ipv4(), l4(unix.IPPROTO_TCP), redirect(proxyPort))},
		{filter, cat(ipv4(), daddrIn(127, 8), verdict(expr.VerdictAccept))},
		{filter, cat(ipv4(), daddrIn(192, 0, 0, 8, 32), verdict(expr.VerdictAccept))},
		{filter, cat(ipv6(), daddr6Loopback(), verdict(expr.VerdictAccept))},
		{filter, cat([]expr.Any{&expr.Counter{}}, verdict(expr.VerdictDrop))},
	}
	for _, r := range rules {
		conn.AddRule(&nftables.Rule{Table: table, Chain: r.chain, Exprs: r.exprs})
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("write the egress rules: %w", err)
	}
	return nil
}

// dropTable opens nftables in the namespace ns with egress's table deleted in the pending batch
// (added first, so that deleting one that is not there is no error): what follows in the batch
// replaces it in the same transaction.
func dropTable(ns *os.File) (*nftables.Conn, *nftables.Table, error) {
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return nil, nil, fmt.Errorf("open nftables in the sandbox's namespace: %w", err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: tableName}
	conn.AddTable(table)
	conn.DelTable(table)
	return conn, table, nil
}

func cat(parts ...any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		switch p := p.(type) {
		case []expr.Any:
			out = append(out, p...)
		case expr.Any:
			out = append(out, p)
		}
	}
	return out
}

func nfproto(family byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}}}
}

func ipv4() []expr.Any { return nfproto(unix.NFPROTO_IPV4) }
func ipv6() []expr.Any { return nfproto(unix.NFPROTO_IPV6) }

func l4(proto byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}}}
}

func dport(port uint16) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)}}
}

// daddrIn matches an IPv4 destination in a prefix given as its octets then its length:
// daddrIn(127, 8) is 127.0.0.0/8, daddrIn(192, 0, 0, 8, 32) is 192.0.0.8/32.
func daddrIn(parts ...byte) []expr.Any {
	bits := int(parts[len(parts)-1])
	ip := net.IPv4(0, 0, 0, 0).To4()
	copy(ip, parts[:len(parts)-1])
	mask := net.CIDRMask(bits, 32)
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip.Mask(mask)}}
}

func daddr6Loopback() []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net.IPv6loopback}}
}

func redirect(port int) []expr.Any {
	return []expr.Any{&expr.Immediate{Register: 1, Data: binary.BigEndian.AppendUint16(nil, uint16(port))},
		&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED}}
}
