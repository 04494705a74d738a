package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// fetch asks, from inside the sandbox, the test internet's web server at ip for the page of
// host, over busybox's nc (its wget cannot run in the image): the reply is "<server> <host>" when
// it was reached. nc runs the script on the connection, whose stderr carries the reply out.
func fetch(t testing.TB, u sandboxUser, sbID, ip, host string) string {
	t.Helper()
	return strings.TrimSpace(u.sh(t, sbID, fmt.Sprintf(`cat > /tmp/get <<'EOF'
#!/bin/sh
printf 'GET / HTTP/1.0\r\nHost: %%s\r\n\r\n' "$HOST"
cat >&2
EOF
chmod +x /tmp/get
HOST=%s nc -w 3 %s 80 -e /tmp/get 2>&1 | tail -n 1`, host, ip)))
}

type networkView struct {
	Network struct {
		Egress string   `json:"egress"`
		Allow  []string `json:"allow"`
		Deny   []string `json:"deny"`
	} `json:"network"`
}

// TestEgressPolicy: a sandbox reaches what its policy allows and nothing else — by address, and
// by name checked against what the name resolves to — its owner changes the policy while it
// runs, sees what was refused, and the policy outlives the orchestrator's restart.
func TestEgressPolicy(t *testing.T) {
	testenv.DockerOnly(t)
	internet := testenv.StartInternet(t)
	cfg := testenv.Config(t)
	mutate := func(c *config.Config, _ *clerkstub.Server) {
		c.Network.Namespace, c.Network.DNSServers = internet.Uplink, []string{internet.DNS}
		c.Network.SniffTimeout = 500 * time.Millisecond
	}
	id := startIdentity(t, mutate)
	u := newSandboxUser(t, id, "user_egress")
	other := newSandboxUser(t, id, "user_egress_other")
	cfg = id.cfg

	restarted := false // the sandboxes outlive the first replica: the one running at the end deletes them
	offline := u.create(t, `{"command":["sleep","600"]}`)
	t.Cleanup(func() {
		if !restarted {
			u.do(t, "DELETE", "/api/sandboxes/"+offline.ID, "")
		}
	})
	var view networkView
	mustJSON(t, u.do(t, "GET", "/api/sandboxes/"+offline.ID, "").Body, &view)
	if view.Network.Egress != "none" {
		t.Errorf("a sandbox created without a policy has egress %q, want none", view.Network.Egress)
	}
	if got := fetch(t, u, offline.ID, testenv.WebA, "a.test"); got == testenv.WebServerReply(testenv.WebA, "a.test") {
		t.Errorf("a sandbox with egress none reached the outside: %q", got)
	}

	resp := u.do(t, "POST", "/api/sandboxes", `{"command":["sleep","600"],"network":{"egress":"allow","allow":["a.test","203.0.113.0/24"]}}`)
	if resp.Status != http.StatusCreated {
		t.Fatalf("create with a policy: %d %s", resp.Status, resp.Body)
	}
	var sb sandbox
	mustJSON(t, resp.Body, &sb)
	t.Cleanup(func() {
		if !restarted {
			u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, "")
		}
	})
	mustJSON(t, resp.Body, &view)
	if view.Network.Egress != "allow" || fmt.Sprint(view.Network.Allow) != "[a.test 203.0.113.0/24]" {
		t.Errorf("the created sandbox shows network %+v", view.Network)
	}

	reach := []struct {
		what, ip, host string
		ok             bool
	}{
		{"an allowed name", testenv.WebA, "a.test", true},
		{"an allowed CIDR", testenv.WebC, "c.test", true},
		{"the allowed name's address under another name", testenv.WebA, "b.test", false},
		{"the allowed name's address, bare", testenv.WebA, testenv.WebA, false},
		{"a private address", testenv.Private, "rebind.test", false},
		{"the metadata address", testenv.Metadata, "meta.test", false},
	}
	for _, r := range reach {
		if got := fetch(t, u, sb.ID, r.ip, r.host); (got == testenv.WebServerReply(r.ip, r.host)) != r.ok {
			t.Errorf("%s: %q; reachable %v, want %v", r.what, got, !r.ok, r.ok)
		}
	}
	lookup := u.sh(t, sb.ID, "nslookup a.test 127.0.0.53; nslookup c.test 127.0.0.53")
	if !strings.Contains(lookup, testenv.WebA) || strings.Contains(lookup, testenv.WebC) {
		t.Errorf("lookups: a.test must resolve, c.test (not an allowed name) must not:\n%s", lookup)
	}

	// The orchestrator's own ports inside the sandbox are neither listed nor reachable as the app's.
	var listed struct {
		Ports []struct {
			Port int `json:"port"`
		} `json:"ports"`
	}
	mustJSON(t, u.do(t, "GET", "/api/sandboxes/"+sb.ID, "").Body, &listed)
	if len(listed.Ports) != 0 {
		t.Errorf("the sandbox lists ports %v; nothing of its own listens", listed.Ports)
	}
	if resp := u.do(t, "GET", fmt.Sprintf("/api/sandboxes/%s/ports/%d/", sb.ID, cfg.Network.ProxyPort), ""); resp.Status != http.StatusBadRequest {
		t.Errorf("the egress proxy's port through the port proxy: %d %s, want 400", resp.Status, resp.Body)
	}

	// Changed while it is paused: the thawed sandbox follows the new policy.
	if resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/pause", ""); resp.Status != http.StatusOK {
		t.Fatalf("pause: %d %s", resp.Status, resp.Body)
	}
	if resp := u.do(t, "PUT", "/api/sandboxes/"+sb.ID+"/network", `{"egress":"allow","allow":["a.test","b.test"]}`); resp.Status != http.StatusOK {
		t.Fatalf("PUT network while paused: %d %s", resp.Status, resp.Body)
	}
	if resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/resume", ""); resp.Status != http.StatusOK {
		t.Fatalf("resume: %d %s", resp.Status, resp.Body)
	}
	if got := fetch(t, u, sb.ID, testenv.WebA, "b.test"); got != testenv.WebServerReply(testenv.WebA, "b.test") {
		t.Errorf("b.test, allowed while paused: %q", got)
	}

	// Changed while it runs: new connections follow at once.
	resp = u.do(t, "PUT", "/api/sandboxes/"+sb.ID+"/network", `{"egress":"all","deny":["c.test"]}`)
	if resp.Status != http.StatusOK {
		t.Fatalf("PUT network: %d %s", resp.Status, resp.Body)
	}
	if got := fetch(t, u, sb.ID, testenv.WebA, "b.test"); got != testenv.WebServerReply(testenv.WebA, "b.test") {
		t.Errorf("with egress all, b.test: %q", got)
	}
	if got := fetch(t, u, sb.ID, testenv.WebC, "c.test"); got == testenv.WebServerReply(testenv.WebC, "c.test") {
		t.Errorf("a denied name was reached: %q", got)
	}
	if got := fetch(t, u, sb.ID, testenv.Metadata, testenv.Metadata); got == testenv.WebServerReply(testenv.Metadata, testenv.Metadata) {
		t.Errorf("the metadata address was reached with egress all: %q", got)
	}

	var blocked struct {
		Total  int `json:"total"`
		Recent []struct {
			Protocol    string `json:"protocol"`
			Destination string `json:"destination"`
			Port        int    `json:"port"`
			Name        string `json:"name"`
			Reason      string `json:"reason"`
		} `json:"recent"`
	}
	resp = u.do(t, "GET", "/api/sandboxes/"+sb.ID+"/network/blocked", "")
	mustJSON(t, resp.Body, &blocked)
	if resp.Status != http.StatusOK || blocked.Total < 5 || len(blocked.Recent) == 0 {
		t.Fatalf("blocked: %d %s", resp.Status, resp.Body)
	}
	if r := blocked.Recent[0]; r.Protocol != "tcp" || r.Destination != testenv.Metadata || r.Port != 80 || r.Reason == "" {
		t.Errorf("the latest blocked attempt is %+v, want the metadata address", r)
	}

	// Bad input changes nothing.
	bad := []struct {
		body, field, entry string
		status             int
	}{
		{`{"egress":"allow","allow":["10.0.0.0/33"]}`, "network.allow", "10.0.0.0/33", 400},
		{`{"egress":"allow","deny":["exa mple.com"]}`, "network.deny", "exa mple.com", 400},
		{`{"egress":"some"}`, "network.egress", "", 400},
		{`{"egress":"none","allow":["a.test"]}`, "network", "", 400},
		{`{"allow":["a.test"]}`, "egress", "", 400},
	}
	for _, b := range bad {
		resp := u.do(t, "PUT", "/api/sandboxes/"+sb.ID+"/network", b.body)
		var e struct {
			Error struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal([]byte(resp.Body), &e)
		if resp.Status != b.status || e.Error.Field != b.field || !strings.Contains(e.Error.Message, b.entry) {
			t.Errorf("PUT network %s: %d %s, want %d naming %s %q", b.body, resp.Status, resp.Body, b.status, b.field, b.entry)
		}
	}
	if resp := u.do(t, "POST", "/api/sandboxes", `{"network":{"egress":"allow","allow":["*."]}}`); resp.Status != http.StatusBadRequest {
		t.Errorf("create with a bad policy: %d %s", resp.Status, resp.Body)
	}
	for _, path := range []string{"/network", "/network/blocked"} {
		method, body := "GET", ""
		if path == "/network" {
			method, body = "PUT", `{"egress":"none"}`
		}
		if resp := other.do(t, method, "/api/sandboxes/"+sb.ID+path, body); resp.Status != http.StatusNotFound {
			t.Errorf("another user's %s %s: %d, want 404", method, path, resp.Status)
		}
	}
	mustJSON(t, u.do(t, "GET", "/api/sandboxes/"+sb.ID, "").Body, &view)
	if view.Network.Egress != "all" || fmt.Sprint(view.Network.Deny) != "[c.test]" {
		t.Errorf("after refused changes the policy is %+v, want all minus c.test", view.Network)
	}

	// The orchestrator restarts: the sandbox keeps its policy.
	id.App.Stop(t)
	id2 := startIdentityWith(t, cfg, id.clerk, id.secret)
	u2 := sandboxUser{id: id2, key: u.key}
	restarted = true
	t.Cleanup(func() { // before id2 stops
		for _, id := range []string{offline.ID, sb.ID} {
			u2.do(t, "DELETE", "/api/sandboxes/"+id, "")
		}
	})
	if got := fetch(t, u2, sb.ID, testenv.WebA, "b.test"); got != testenv.WebServerReply(testenv.WebA, "b.test") {
		t.Errorf("after a restart, b.test: %q", got)
	}
	if got := fetch(t, u2, sb.ID, testenv.WebC, "c.test"); got == testenv.WebServerReply(testenv.WebC, "c.test") {
		t.Errorf("after a restart, the denied c.test was reached: %q", got)
	}

	// Back to none: nothing leaves.
	if resp := u2.do(t, "PUT", "/api/sandboxes/"+sb.ID+"/network", `{"egress":"none"}`); resp.Status != http.StatusOK {
		t.Fatalf("PUT network none: %d %s", resp.Status, resp.Body)
	}
	if got := fetch(t, u2, sb.ID, testenv.WebA, "a.test"); got == testenv.WebServerReply(testenv.WebA, "a.test") {
		t.Errorf("egress none reached the outside: %q", got)
	}
}

// TestEgressModesAreCappedByTheOperator: a mode the operator does not allow is refused, whatever
// the sandbox; on Kubernetes, where NetworkPolicies enforce addresses only, so is a domain name,
// and an address policy becomes the sandbox Pod's own NetworkPolicy.
func TestEgressModesAreCappedByTheOperator(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Network.AllowedModes = []string{"none", "allow"} })
	u := newSandboxUser(t, id, "user_egress_cap")
	resp := u.do(t, "POST", "/api/sandboxes", `{"network":{"egress":"all"}}`)
	if resp.Status != http.StatusForbidden || errorCode(t, resp) != "network_mode_not_allowed" {
		t.Errorf("egress all where the operator allows none and allow: %d %s", resp.Status, resp.Body)
	}
	if testenv.Driver() != "kubernetes" {
		return
	}
	resp = u.do(t, "POST", "/api/sandboxes", `{"network":{"egress":"allow","allow":["a.test"]}}`)
	if resp.Status != http.StatusBadRequest || !strings.Contains(resp.Body, "a.test") {
		t.Errorf("a domain name on Kubernetes: %d %s", resp.Status, resp.Body)
	}
	sb := u.create(t, `{"command":["sleep","600"],"network":{"egress":"allow","allow":["203.0.113.0/24"]}}`)
	t.Cleanup(func() { u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, "") })
	cs, _ := testenv.KubeClient(t)
	policy, err := cs.NetworkingV1().NetworkPolicies(id.cfg.Runtime.Kubernetes.Namespace).Get(context.Background(), "insien-egress-sbx-"+sb.ID, metav1.GetOptions{})
	if err != nil || len(policy.Spec.Egress) != 1 || policy.Spec.Egress[0].To[0].IPBlock.CIDR != "203.0.113.0/24" {
		t.Fatalf("the sandbox's NetworkPolicy: %+v, %v", policy, err)
	}
}
