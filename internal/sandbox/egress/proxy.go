package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/sandbox/model"
	"golang.org/x/sys/unix"
)

// maxSniff bounds what the proxy reads of a connection before deciding it.
const maxSniff = 16 << 10

// nameRefused says why a sandbox may not look name up (or connect by it), or "".
func (p *policy) nameRefused(g *guard, name string) string {
	switch {
	case p.mode == model.EgressNone:
		return "the sandbox's egress is none"
	case g.deniedName(name):
		return "the operator denies this name"
	case p.deny.hasName(name):
		return "denied by network.deny"
	case p.mode == model.EgressAllow && !p.allow.hasName(name):
		return "not in network.allow"
	}
	return ""
}

// needsName reports whether a connection to dst is decided by a name: the address alone neither
// refuses it nor, when no deny rule names a name, lets it through.
func (p *policy) needsName(g *guard, dst netip.Addr) bool {
	denyNames := len(p.deny.names) > 0 || len(g.deny.names) > 0
	if p.mode == model.EgressAll || p.allow.hasAddr(dst) {
		return denyNames
	}
	return len(p.allow.names) > 0
}

// decide rules on a connection to dst. name is what the client asked for (TLS SNI, HTTP Host),
// "" when it said nothing; learnt are the names the sandbox's lookups led to dst by. A name the
// client gives must lead to dst (by its lookups, or by ours now), so that neither /etc/hosts nor
// a raw address passes for an allowed name.
func (a *attachment) decide(ctx context.Context, pol *policy, dst netip.Addr, name string) string {
	g := a.svc.guard
	if pol.mode == model.EgressNone {
		return "the sandbox's egress is none"
	}
	if reason := g.deniedAddr(dst); reason != "" {
		return reason
	}
	if pol.deny.hasAddr(dst) {
		return "denied by network.deny"
	}
	learnt := a.names.of(dst)
	for _, n := range append(learnt, name) {
		if n != "" && (g.deniedName(n) || pol.deny.hasName(n)) {
			return "the name is denied (" + n + ")"
		}
	}
	if pol.mode == model.EgressAll || pol.allow.hasAddr(dst) {
		return ""
	}
	if name != "" {
		if reason := pol.nameRefused(g, name); reason != "" {
			return reason + " (" + name + ")"
		}
		if !a.leadsTo(ctx, name, dst) {
			return "the address is not one " + name + " resolves to"
		}
		return ""
	}
	if slices.ContainsFunc(learnt, func(n string) bool { return pol.nameRefused(g, n) == "" }) {
		return ""
	}
	return "not in network.allow"
}

// leadsTo: the sandbox's own lookups led name to dst, or a lookup of ours does now.
func (a *attachment) leadsTo(ctx context.Context, name string, dst netip.Addr) bool {
	if a.names.leadsTo(name, dst) {
		return true
	}
	addrs, err := a.svc.upstream.lookup(ctx, name)
	return err == nil && slices.Contains(addrs, dst)
}

// serveTCP accepts the sandbox's redirected connections until the listener closes.
func (a *attachment) serveTCP() {
	for {
		conn, err := a.listen.tcp.Accept()
		if err != nil {
			return
		}
		select {
		case a.slots <- struct{}{}:
		default:
			_ = conn.Close() // at its limit: the app sees a reset, the orchestrator holds nothing more
			continue
		}
		go func() {
			defer func() { <-a.slots }()
			a.proxy(conn.(*net.TCPConn))
		}()
	}
}

// proxy decides one connection and, if it may go, carries it to where the sandbox dialed.
func (a *attachment) proxy(conn *net.TCPConn) {
	defer conn.Close()
	cfg := a.svc.cfg
	dst, err := originalDst(conn)
	if err != nil {
		a.svc.log.Warn("an egress connection without its destination", zap.Error(err))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.SniffTimeout+cfg.DialTimeout)
	defer cancel()
	pol := a.policy(ctx)
	var name string
	var head []byte
	if pol.needsName(a.svc.guard, dst.Addr()) {
		name, head = sniff(conn, time.Now().Add(cfg.SniffTimeout))
	}
	if reason := a.decide(ctx, pol, dst.Addr(), name); reason != "" {
		a.svc.block(a, BlockedAttempt{Protocol: "tcp", Destination: dst.Addr().String(), Port: int(dst.Port()), Name: name, Reason: reason})
		_ = conn.SetLinger(0) // a reset: the app fails at once instead of reading an empty reply
		return
	}
	upstream, err := a.svc.dial(ctx, "tcp4", dst.String())
	if err != nil {
		_ = conn.SetLinger(0)
		return
	}
	defer upstream.Close()
	if len(head) > 0 {
		if _, err := upstream.Write(head); err != nil {
			return
		}
	}
	splice(conn, upstream.(*net.TCPConn), cfg.IdleTimeout)
}

// splice copies both ways until both ends have closed, passing a half-close on; a reset, a
// failed write or idle (silent both ways) ends both.
func splice(a, b *net.TCPConn, idle time.Duration) {
	var last atomicTime
	last.touch()
	var wg sync.WaitGroup
	half := func(dst, src *net.TCPConn) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			_ = src.SetReadDeadline(time.Now().Add(idle))
			n, err := src.Read(buf)
			if n > 0 {
				last.touch()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			var timeout net.Error
			switch {
			case err == nil:
				continue
			case errors.As(err, &timeout) && timeout.Timeout() && time.Since(last.get()) < idle:
				continue // the other direction is busy: not idle
			case errors.Is(err, io.EOF):
				_ = dst.CloseWrite()
				return
			}
			break
		}
		_ = a.Close()
		_ = b.Close()
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
}

// originalDst is where the sandbox dialed before its rules redirected it here.
func originalDst(conn *net.TCPConn) (netip.AddrPort, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var mreq *unix.IPv6Mreq
	var serr error
	if err := raw.Control(func(fd uintptr) {
		// SO_ORIGINAL_DST returns a sockaddr_in; IPv6Mreq is a 20-byte buffer that holds it.
		mreq, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
	}); err != nil {
		return netip.AddrPort{}, err
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: %w", serr)
	}
	sa := mreq.Multiaddr
	addr := netip.AddrFrom4([4]byte{sa[4], sa[5], sa[6], sa[7]})
	return netip.AddrPortFrom(addr, binary.BigEndian.Uint16(sa[2:4])), nil
}

// sniff reads the start of a connection for the name its client asks for: the server name of a
// TLS ClientHello, or the Host of an HTTP request. It returns what it read, to send on. A client
// that waits for the server to speak first yields no name once deadline passes.
func sniff(conn net.Conn, deadline time.Time) (string, []byte) {
	_ = conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 4096)
	for len(buf) < maxSniff {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, len(buf))
		}
		n, err := conn.Read(buf[len(buf):min(cap(buf), maxSniff)])
		buf = buf[:len(buf)+n]
		if name, done := nameIn(buf); done {
			return name, buf
		}
		if err != nil {
			break
		}
	}
	name, _ := nameIn(buf)
	return name, buf
}

// nameIn finds the name in the start of a stream: done once more bytes cannot change the answer.
func nameIn(b []byte) (name string, done bool) {
	if len(b) == 0 {
		return "", false
	}
	if b[0] == 0x16 { // a TLS handshake record
		if len(b) < 5 {
			return "", false
		}
		if end := 5 + int(binary.BigEndian.Uint16(b[3:5])); len(b) < end {
			return "", false
		}
		return clientHelloName(b), true
	}
	if !looksLikeHTTP(b) {
		return "", true
	}
	if !bytes.Contains(b, []byte("\r\n\r\n")) {
		return "", false
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		return "", true
	}
	return hostName(req.Host), true
}

func looksLikeHTTP(b []byte) bool {
	for _, method := range []string{"GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "TRACE "} {
		n := min(len(b), len(method))
		if string(b[:n]) == method[:n] {
			return true
		}
	}
	return false
}

func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// clientHelloName reads the server name of a ClientHello with crypto/tls itself: a handshake over
// the bytes read so far stops at the hello, whose name it hands over.
func clientHelloName(b []byte) string {
	var name string
	errStop := errors.New("stop")
	conn := tls.Server(readOnlyConn{Reader: bytes.NewReader(b)}, &tls.Config{
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			name = hello.ServerName
			return nil, errStop
		},
	})
	_ = conn.Handshake()
	return hostName(name)
}

// readOnlyConn is a net.Conn that reads from a buffer and accepts no writes.
type readOnlyConn struct {
	io.Reader
	net.Conn
}

func (c readOnlyConn) Read(p []byte) (int, error)     { return c.Reader.Read(p) }
func (readOnlyConn) Write([]byte) (int, error)        { return 0, io.ErrClosedPipe }
func (readOnlyConn) Close() error                     { return nil }
func (readOnlyConn) SetDeadline(time.Time) error      { return nil }
func (readOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (readOnlyConn) SetWriteDeadline(time.Time) error { return nil }
func (readOnlyConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (readOnlyConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
