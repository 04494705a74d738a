package egress_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/internal/testenv"
)

// BenchmarkEgressRequest: an HTTP request on a new connection from inside a sandbox whose policy
// allows the host by name (the proxy reads the Host, checks it against the sandbox's lookup and
// connects from the uplink), against the same request made straight from the uplink namespace,
// alternating, in the same run. Reported: p50 of each (200 samples) and their ratio.
func BenchmarkEgressRequest(b *testing.B) {
	h := newHarness(b)
	c := inside(h.sandbox(b, model.Network{Egress: "allow", Allow: []string{"a.test"}}))
	if _, err := c.lookup("a.test", "127.0.0.53:53"); err != nil {
		b.Fatal(err)
	}
	uplink := client{ns: h.internet.Uplink}
	request := func(from client) time.Duration {
		start := time.Now()
		conn, err := from.dial(testenv.WebA + ":80")
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return time.Since(start)
	}
	for b.Loop() {
		var direct, proxied []time.Duration
		for range 200 {
			direct = append(direct, request(uplink))
			proxied = append(proxied, request(c))
		}
		slices.Sort(direct)
		slices.Sort(proxied)
		d, p := direct[len(direct)/2], proxied[len(proxied)/2]
		b.ReportMetric(float64(d.Microseconds())/1000, "direct-p50-ms")
		b.ReportMetric(float64(p.Microseconds())/1000, "egress-p50-ms")
		b.ReportMetric(float64(p)/float64(d), "egress/direct")
	}
}
