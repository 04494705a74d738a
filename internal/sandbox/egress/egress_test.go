package egress_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/netns"
	"github.com/insien/orchestrator/internal/sandbox/egress"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/providers"
	"github.com/insien/orchestrator/repositories"
)

// namespaces opens the namespaces of stand-in sandboxes: network namespaces the test made, which
// is all of a sandbox the egress service touches (the Docker driver's NetNS is tested through
// the API).
type namespaces struct{}

func (namespaces) NetNS(_ context.Context, id string) (*os.File, error) { return os.Open(id) }

// harness is an egress service over real Postgres and Redis, leaving through the test internet.
type harness struct {
	internet *testenv.Internet
	svc      *egress.Service
	rows     *repositories.Sandboxes
	user     uuid.UUID
	new      func() *egress.Service // another replica
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	internet := testenv.StartInternet(t)
	cfg := testenv.Config(t)
	testenv.Migrate(t, cfg)
	db, err := providers.NewDB(cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	rdb := testenv.OpenRedis(t, cfg.Redis.URL.Reveal())
	h := &harness{internet: internet, rows: repositories.NewSandboxes(db)}
	if err := db.NewRaw("INSERT INTO users DEFAULT VALUES RETURNING id").Scan(context.Background(), &h.user); err != nil {
		t.Fatal(err)
	}
	netCfg := cfg.Network
	netCfg.Namespace, netCfg.DNSServers = internet.Uplink, []string{internet.DNS}
	netCfg.SniffTimeout = 300 * time.Millisecond
	h.new = func() *egress.Service {
		svc, err := egress.New(netCfg, namespaces{}, nil, h.rows, rdb, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		return svc
	}
	h.svc = h.new()
	return h
}

// sandbox is a stand-in sandbox: a running row whose runtime id is the path of a fresh namespace.
func (h *harness) sandbox(t testing.TB, network model.Network) *model.Sandbox {
	t.Helper()
	name := "insien-sbx-" + uuid.NewString()[:8]
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	path := "/run/netns/" + name
	now := time.Now()
	sb := &model.Sandbox{ID: uuid.New(), UserID: h.user, Image: "none", Command: []string{}, Status: model.StatusRunning,
		RuntimeID: &path, Instance: "test", CPU: 1, MemoryMB: 64, Metadata: map[string]string{}, EnvNames: []string{},
		PublicPorts: []int{}, TimeoutSeconds: 60, StartedAt: &now, ExpiresAt: now.Add(time.Minute), Start: model.StartCold, Network: network}
	if err := h.rows.Insert(context.Background(), sb); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Apply(context.Background(), sb); err != nil {
		t.Fatalf("apply %+v: %v", network, err)
	}
	return sb
}

// client is a program inside a stand-in sandbox.
type client struct{ ns string }

func inside(sb *model.Sandbox) client { return client{ns: *sb.RuntimeID} }

func (c client) dial(addr string) (conn net.Conn, err error) {
	err = netns.DoPath(c.ns, func() error {
		conn, err = net.DialTimeout("tcp4", addr, 3*time.Second)
		return err
	})
	return conn, err
}

// get sends an HTTP request for host to ip:port (over TLS with SNI host when tls is set) and
// returns the body: "<server address> <Host it got>".
func (c client) get(ip, host string, useTLS bool) (string, error) {
	port := "80"
	if useTLS {
		port = "443"
	}
	conn, err := c.dial(net.JoinHostPort(ip, port))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if useTLS {
		tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true}) //nolint:gosec // the test internet's own certificate
		if err := tc.Handshake(); err != nil {
			return "", err
		}
		conn = tc
	}
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// lookup asks for name's A records from inside, of whatever server: every query is the
// orchestrator's to answer.
func (c client) lookup(name, server string) (*dns.Msg, error) {
	var conn net.Conn
	err := netns.DoPath(c.ns, func() (err error) {
		conn, err = net.Dial("udp4", server)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	resp, _, err := (&dns.Client{Timeout: 3 * time.Second}).ExchangeWithConn(q, &dns.Conn{Conn: conn})
	return resp, err
}

func answers(resp *dns.Msg) []string {
	var out []string
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func TestEgressPolicyDecidesEachConnection(t *testing.T) {
	h := newHarness(t)
	type attempt struct {
		ip, host string
		tls      bool
		ok       bool
	}
	tests := []struct {
		name     string
		network  model.Network
		attempts []attempt
	}{
		{"an allowed CIDR is reachable, another is not", model.Network{Egress: "allow", Allow: []string{"198.51.100.0/24"}}, []attempt{
			{testenv.WebA, testenv.WebA, false, true},
			{testenv.WebC, testenv.WebC, false, false},
		}},
		{"an allowed name is reachable by HTTP Host and TLS SNI; the same address under another name, or bare, is not",
			model.Network{Egress: "allow", Allow: []string{"a.test"}}, []attempt{
				{testenv.WebA, "a.test", false, true},
				{testenv.WebA, "a.test", true, true},
				{testenv.WebA, "b.test", false, false},
				{testenv.WebA, "b.test", true, false},
				{testenv.WebA, testenv.WebA, false, false},
			}},
		{"an allowed name pointed elsewhere (/etc/hosts) does not pass", model.Network{Egress: "allow", Allow: []string{"a.test"}}, []attempt{
			{testenv.WebC, "a.test", false, false},
			{testenv.WebC, "a.test", true, false},
		}},
		{"a wildcard allows the names under it", model.Network{Egress: "allow", Allow: []string{"*.wild.test"}}, []attempt{
			{testenv.WebC, "x.wild.test", false, true},
			{testenv.WebC, "c.test", false, false},
		}},
		{"an outside name pointing inside (rebinding) is refused", model.Network{Egress: "allow", Allow: []string{"rebind.test"}}, []attempt{
			{testenv.Private, "rebind.test", false, false},
		}},
		{"all reaches anything but the deny list, never the metadata or private addresses",
			model.Network{Egress: "all", Deny: []string{"c.test"}}, []attempt{
				{testenv.WebA, "b.test", false, true},
				{testenv.WebC, "c.test", false, false},
				{testenv.Metadata, "meta.test", false, false},
				{testenv.Metadata, testenv.Metadata, false, false},
				{testenv.Private, testenv.Private, false, false},
			}},
		{"a denied CIDR beats egress all", model.Network{Egress: "all", Deny: []string{"203.0.113.0/24"}}, []attempt{
			{testenv.WebA, "a.test", false, true},
			{testenv.WebC, "c.test", false, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := inside(h.sandbox(t, tt.network))
			for _, at := range tt.attempts {
				body, err := c.get(at.ip, at.host, at.tls)
				if at.ok && (err != nil || body != testenv.WebServerReply(at.ip, at.host)) {
					t.Errorf("%s as %s (tls %v): %q, %v; want it through", at.ip, at.host, at.tls, body, err)
				}
				if !at.ok && err == nil {
					t.Errorf("%s as %s (tls %v): %q; want it refused", at.ip, at.host, at.tls, body)
				}
			}
		})
	}
}

func TestEgressResolverAnswersOnlyWhatThePolicyAllows(t *testing.T) {
	h := newHarness(t)
	c := inside(h.sandbox(t, model.Network{Egress: "allow", Allow: []string{"a.test", "*.wild.test", "rebind.test"}}))
	tests := []struct {
		name, server string
		rcode        int
		want         []string
	}{
		{"a.test", "127.0.0.53:53", dns.RcodeSuccess, []string{testenv.WebA}},
		{"x.wild.test", "127.0.0.53:53", dns.RcodeSuccess, []string{testenv.WebC}},
		{"c.test", "127.0.0.53:53", dns.RcodeNameError, nil},
		{"wild.test", "127.0.0.53:53", dns.RcodeNameError, nil},
		// The zone's real server would answer c.test: a query sent to it straight is ours too.
		{"c.test", testenv.DNSServer + ":53", dns.RcodeNameError, nil},
		// An outside name pointing inside resolves to nothing.
		{"rebind.test", "127.0.0.53:53", dns.RcodeSuccess, nil},
	}
	for _, tt := range tests {
		resp, err := c.lookup(tt.name, tt.server)
		if err != nil {
			t.Fatalf("lookup %s at %s: %v", tt.name, tt.server, err)
		}
		if resp.Rcode != tt.rcode || strings.Join(answers(resp), ",") != strings.Join(tt.want, ",") {
			t.Errorf("lookup %s at %s: rcode %d answers %v; want %d %v", tt.name, tt.server, resp.Rcode, answers(resp), tt.rcode, tt.want)
		}
	}
}

func TestEgressPolicyChangesApplyToNewConnections(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sb := h.sandbox(t, model.Network{Egress: "allow", Allow: []string{testenv.WebA}})
	c := inside(sb)
	if _, err := c.get(testenv.WebC, "c.test", false); err == nil {
		t.Fatal("c.test reachable before it was allowed")
	}

	// Through this replica: at once.
	sb.Network = model.Network{Egress: "allow", Allow: []string{testenv.WebC}}
	if err := h.svc.Apply(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := c.get(testenv.WebC, "c.test", false); err != nil {
		t.Fatalf("c.test after it was allowed: %v", err)
	}

	// Through another replica (only the row changes here): within a second.
	if _, err := h.rows.SetNetwork(ctx, h.user, sb.ID, model.Network{Egress: "allow", Allow: []string{testenv.WebA}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := c.get(testenv.WebC, "c.test", false); err == nil {
		t.Error("c.test still reachable a second after another replica closed it")
	}
	if _, err := c.get(testenv.WebA, "a.test", false); err != nil {
		t.Errorf("a.test after another replica opened it: %v", err)
	}

	// To none: no route out at all.
	sb.Network = model.Network{Egress: "none"}
	if _, err := h.rows.SetNetwork(ctx, h.user, sb.ID, sb.Network); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Apply(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := c.dial(testenv.WebA + ":80"); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("dial with egress none: %v, want network unreachable", err)
	}
}

func TestEgressSurvivesAReplicaRestart(t *testing.T) {
	h := newHarness(t)
	sb := h.sandbox(t, model.Network{Egress: "allow", Allow: []string{"a.test"}})
	c := inside(sb)
	h.svc.Close()
	if _, err := c.get(testenv.WebA, "a.test", false); err == nil {
		t.Fatal("a connection went out with no replica serving the sandbox")
	}
	next := h.new()
	next.Sync(context.Background(), []model.Sandbox{*sb})
	if _, err := c.get(testenv.WebA, "a.test", false); err != nil {
		t.Fatalf("after the restarted replica synced: %v", err)
	}
	if _, err := c.get(testenv.WebA, "b.test", false); err == nil {
		t.Fatal("the policy did not survive the restart")
	}
}

func TestEgressBlockedAttemptsAreKept(t *testing.T) {
	h := newHarness(t)
	sb := h.sandbox(t, model.Network{Egress: "allow", Allow: []string{"a.test"}})
	c := inside(sb)
	_, _ = c.get(testenv.WebC, "c.test", false)
	_, _ = c.lookup("c.test", "127.0.0.53:53")
	got, err := h.svc.Blocked(context.Background(), sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Total != 2 || len(got.Recent) != 2 {
		t.Fatalf("blocked = %+v, want 2 attempts", got)
	}
	if r := got.Recent[0]; r.Protocol != "dns" || r.Name != "c.test" || r.Reason == "" {
		t.Errorf("latest blocked = %+v, want the lookup of c.test", r)
	}
	if r := got.Recent[1]; r.Protocol != "tcp" || r.Destination != testenv.WebC || r.Port != 80 || r.Name != "c.test" {
		t.Errorf("first blocked = %+v, want the connection to %s:80 as c.test", r, testenv.WebC)
	}
}

// TestEgressCarriesOnlyTCPAndDNS: other UDP leaves no sandbox, whatever its policy.
func TestEgressCarriesOnlyTCPAndDNS(t *testing.T) {
	h := newHarness(t)
	send := func(ns string) {
		t.Helper()
		err := netns.DoPath(ns, func() error {
			conn, err := net.Dial("udp4", h.internet.UDPSink)
			if err != nil {
				return err
			}
			defer conn.Close()
			for range 5 {
				_, _ = conn.Write([]byte("out"))
			}
			return nil
		})
		if err != nil && !errors.Is(err, syscall.ENETUNREACH) {
			t.Fatal(err)
		}
	}
	// From the uplink the datagrams arrive: the sink counts what reaches it.
	send(h.internet.Uplink)
	testenv.Eventually(t, "the uplink's datagrams to arrive", 2*time.Second, func() bool { return h.internet.UDPReceived() == 5 })

	for _, egressMode := range []string{"none", "all"} {
		sb := h.sandbox(t, model.Network{Egress: egressMode})
		send(*sb.RuntimeID)
	}
	time.Sleep(300 * time.Millisecond)
	if got := h.internet.UDPReceived(); got != 5 {
		t.Errorf("%d datagrams from sandboxes reached the sink", got-5)
	}
}
