package netguard_test

import (
	"net/netip"
	"testing"

	"github.com/insien/orchestrator/internal/platform/netguard"
)

func TestClassify(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"169.254.169.254": "link-local (cloud metadata)", "100.100.100.200": "shared address space (carrier-grade NAT, cloud metadata)",
		"10.1.2.3": "private", "172.20.0.1": "private", "192.168.1.1": "private", "fd00:ec2::254": "private",
		"0.0.0.0": "unspecified", "224.0.0.1": "multicast", "255.255.255.255": "reserved",
		"93.184.216.34": "", "2606:4700::1111": "",
	} {
		if got := netguard.Classify(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Classify(%s) = %q, want %q", addr, got, want)
		}
	}
}
