package egress

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/insien/orchestrator/internal/sandbox/model"
)

// TestAddressRules: for a driver that enforces addresses only, a policy becomes ranges to allow
// with the guard's ranges and the user's denials excepted; an allowed range the guard covers is
// dropped unless the operator opened it.
func TestAddressRules(t *testing.T) {
	own := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/30")}
	tests := []struct {
		name         string
		allowPrivate []string
		network      model.Network
		allow        string
		except       string // beyond the built-in list and the private ranges
	}{
		{"none", nil, model.Network{Egress: "none"}, "", ""},
		{"allow keeps public ranges", nil, model.Network{Egress: "allow", Allow: []string{"203.0.113.0/24", "198.51.100.7"}},
			"[203.0.113.0/24 198.51.100.7/32]", ""},
		{"allow drops what the guard covers", nil, model.Network{Egress: "allow", Allow: []string{"169.254.169.254", "10.1.0.0/16", "192.0.2.1", "203.0.113.0/24"}},
			"[203.0.113.0/24]", ""},
		{"allow keeps a private range the operator opened", []string{"10.1.0.0/16"}, model.Network{Egress: "allow", Allow: []string{"10.1.2.0/24", "10.2.0.0/16"}},
			"[10.1.2.0/24]", ""},
		{"all is everywhere but the guard and the denials", nil, model.Network{Egress: "all", Deny: []string{"203.0.113.0/24"}},
			"[0.0.0.0/0]", "203.0.113.0/24"},
		{"all reaches the private ranges opened", []string{"10.1.0.0/16"}, model.Network{Egress: "all"},
			"[0.0.0.0/0 10.1.0.0/16]", ""},
		{"IPv6 is not carried", nil, model.Network{Egress: "allow", Allow: []string{"2001:db8::/32"}}, "[]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := newGuard(nil, tt.allowPrivate, own)
			if err != nil {
				t.Fatal(err)
			}
			s := &Service{guard: g}
			pol, err := parsePolicy(tt.network, model.EgressModes)
			if err != nil {
				t.Fatal(err)
			}
			rules := s.addressRules(pol)
			if tt.allow == "" {
				if rules != nil {
					t.Fatalf("rules %+v, want none", rules)
				}
				return
			}
			if got := fmt.Sprint(rules.Allow); got != tt.allow {
				t.Errorf("allow %s, want %s", got, tt.allow)
			}
			except := map[string]bool{}
			for _, p := range rules.Except {
				except[p.String()] = true
			}
			for _, want := range []string{"127.0.0.0/8", "169.254.0.0/16", "192.0.2.0/30", "172.16.0.0/12", tt.except} {
				if want != "" && !except[want] {
					t.Errorf("except %v lacks %s", rules.Except, want)
				}
			}
			for p := range except {
				if netip.MustParsePrefix(p).Addr().Is6() {
					t.Errorf("except %s: IPv6 in IPv4 rules", p)
				}
			}
		})
	}
}
