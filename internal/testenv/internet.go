package testenv

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"github.com/insien/orchestrator/internal/platform/netns"
)

// The test internet's hosts: documentation addresses (RFC 5737) that exist nowhere else, plus a
// private address and the clouds' metadata address, which no sandbox may ever reach.
const (
	WebA      = "198.51.100.10"   // a.test and b.test (one address, two names); HTTP on 80, TLS on 443
	WebC      = "203.0.113.10"    // c.test and x.wild.test; HTTP on 80
	Private   = "10.0.0.5"        // rebind.test: an outside name pointing inside
	Metadata  = "169.254.169.254" // meta.test
	DNSServer = "198.51.100.53"   // the zone "test"'s server, on 53
)

// Internet is a little internet in network namespaces of the test's own: an uplink namespace
// (where the orchestrator's egress leaves from: network.namespace) joined by a veth pair to a
// namespace holding the hosts above, their HTTP(S) servers and a DNS server for the zone "test".
// No packet of it leaves this machine's namespaces.
type Internet struct {
	Uplink string // path of the uplink namespace
	DNS    string // host:port of its DNS server
	// UDPSink is WebA's UDP port where datagrams are counted (UDPReceived).
	UDPSink  string
	received atomic.Int64
}

// UDPReceived is how many datagrams reached UDPSink.
func (i *Internet) UDPReceived() int64 { return i.received.Load() }

// Zone is the test internet's DNS zone.
var Zone = map[string]string{
	"a.test": WebA, "b.test": WebA, "c.test": WebC, "x.wild.test": WebC,
	"rebind.test": Private, "meta.test": Metadata,
}

// StartInternet builds the test internet; it is torn down when the test ends. Needs root.
func StartInternet(t testing.TB) *Internet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the test internet needs root (network namespaces)")
	}
	suffix := randomHex(3)
	uplink, inet := "insien-up-"+suffix, "insien-net-"+suffix
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", uplink)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", uplink).Run() })
	ip("netns", "add", inet)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", inet).Run() })
	ip("link", "add", "up0", "netns", uplink, "type", "veth", "peer", "name", "in0", "netns", inet)
	ip("-n", uplink, "link", "set", "lo", "up")
	ip("-n", uplink, "link", "set", "up0", "up")
	ip("-n", uplink, "addr", "add", "192.0.2.1/30", "dev", "up0")
	ip("-n", uplink, "route", "add", "default", "via", "192.0.2.2")
	ip("-n", inet, "link", "set", "lo", "up")
	ip("-n", inet, "link", "set", "in0", "up")
	ip("-n", inet, "addr", "add", "192.0.2.2/30", "dev", "in0")
	for _, host := range []string{WebA, WebC, Private, Metadata, DNSServer} {
		ip("-n", inet, "addr", "add", host+"/32", "dev", "lo")
	}

	ns, err := os.Open("/run/netns/" + inet)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	listen := func(network, addr string) (l net.Listener, pc net.PacketConn) {
		t.Helper()
		err := netns.Do(ns, func() (err error) {
			if network == "udp" {
				pc, err = net.ListenPacket(network, addr)
			} else {
				l, err = net.Listen(network, addr)
			}
			return err
		})
		if err != nil {
			t.Fatalf("listen on %s in the test internet: %v", addr, err)
		}
		return l, pc
	}
	for _, host := range []string{WebA, WebC, Private, Metadata} {
		l, _ := listen("tcp", host+":80")
		serve(t, l, host, false)
	}
	l, _ := listen("tcp", WebA+":443")
	serve(t, l, WebA, true)

	internet := &Internet{Uplink: "/run/netns/" + uplink, DNS: DNSServer + ":53", UDPSink: WebA + ":9999"}
	_, sink := listen("udp", internet.UDPSink)
	t.Cleanup(func() { _ = sink.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := sink.ReadFrom(buf); err != nil {
				return
			}
			internet.received.Add(1)
		}
	}()

	_, pc := listen("udp", DNSServer+":53")
	server := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(answerZone)}
	go func() { _ = server.ActivateAndServe() }()
	t.Cleanup(func() { _ = server.Shutdown() })
	return internet
}

// serve answers every request with "<host> <Host header>", over TLS (a self-signed certificate
// for any name) when tls is set.
func serve(t testing.TB, l net.Listener, host string, useTLS bool) {
	s := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, WebServerReply(host, r.Host))
	})}}
	if useTLS {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
}

// WebServerReply is what the test internet's web server at host answers a request for Host.
func WebServerReply(host, hostHeader string) string { return host + " " + hostHeader }

func answerZone(w dns.ResponseWriter, q *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(q)
	resp.Authoritative = true
	name := strings.TrimSuffix(strings.ToLower(q.Question[0].Name), ".")
	addr, ok := Zone[name]
	switch {
	case !ok:
		resp.Rcode = dns.RcodeNameError
	case q.Question[0].Qtype == dns.TypeA:
		resp.Answer = append(resp.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
			A:   net.ParseIP(addr),
		})
	}
	_ = w.WriteMsg(resp)
}

// InNamespace runs fn on a thread inside the network namespace at path: a client there.
func InNamespace(t testing.TB, path string, fn func() error) error {
	t.Helper()
	return netns.DoPath(path, fn)
}

// TLSClientConfig trusts the test internet's self-signed certificates.
var TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test internet's own servers
