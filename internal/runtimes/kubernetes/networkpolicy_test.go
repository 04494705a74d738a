package kubernetes_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
	"github.com/insien/orchestrator/internal/testenv"
)

// TestNetworkPolicies: the first create applies the namespace's policies, following the
// operator's AllowNetwork as it changes between runs: every sandbox Pod is selected by a policy
// that allows nothing, and with AllowNetwork its cluster's Pods by one that allows all egress.
// The test cluster's bridge CNI does not enforce NetworkPolicies, so this checks the objects (and
// that they select the Pods), not the traffic.
func TestNetworkPolicies(t *testing.T) {
	c := newClusterTest(t)
	policies := c.cs.NetworkingV1().NetworkPolicies(c.ns)
	for _, allow := range []bool{false, true, false} {
		r := c.runtime(kubernetes.Options{AllowNetwork: allow, Cluster: "test"})
		spec := c.spec()
		if _, err := r.Create(c.ctx(), spec); err != nil {
			t.Fatal(err)
		}
		pod := labels.Set(c.get(spec.Name).Labels)

		iso, err := policies.Get(c.ctx(), "insien-sandboxes-isolation", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("allow %v: isolation policy: %v", allow, err)
		}
		checkPolicy(t, iso, pod, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, 0)

		egress, err := policies.Get(c.ctx(), "insien-sandboxes-egress-test", metav1.GetOptions{})
		switch {
		case allow && err != nil:
			t.Fatalf("allow %v: egress policy: %v", allow, err)
		case allow:
			checkPolicy(t, egress, pod, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, 1)
			if rule := egress.Spec.Egress[0]; len(rule.To)+len(rule.Ports) != 0 {
				t.Errorf("egress rule %+v, want the empty rule (every destination)", rule)
			}
		case !apierrors.IsNotFound(err):
			t.Errorf("allow %v: egress policy %v, %v; want none", allow, egress, err)
		}
	}
}

// checkPolicy fails unless the policy selects the Pod with labels pod, has exactly the policy
// types types, no ingress rule, and egress rules.
func checkPolicy(t *testing.T, p *networkingv1.NetworkPolicy, pod labels.Set, types []networkingv1.PolicyType, egress int) {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
	if err != nil || sel.Empty() || !sel.Matches(pod) {
		t.Errorf("%s: selector %v does not select the sandbox Pod %v (%v)", p.Name, sel, pod, err)
	}
	if !equal(p.Spec.PolicyTypes, types) || len(p.Spec.Ingress) != 0 || len(p.Spec.Egress) != egress {
		t.Errorf("%s: types %v, %d ingress and %d egress rules; want %v, 0 and %d", p.Name, p.Spec.PolicyTypes,
			len(p.Spec.Ingress), len(p.Spec.Egress), types, egress)
	}
}

// TestSandboxEgressPolicy: a sandbox's egress rules become a NetworkPolicy of its own that selects
// its Pod only, allows each range minus the exceptions inside it, goes away when the rules do, and
// is owned by the Pod (deleted with it by the garbage collector). Objects, not traffic: the test
// cluster's CNI does not enforce policies.
func TestSandboxEgressPolicy(t *testing.T) {
	c := newClusterTest(t)
	r := c.runtime(kubernetes.Options{Cluster: "test"})
	spec := c.spec()
	id, err := r.Create(c.ctx(), spec)
	if err != nil {
		t.Fatal(err)
	}
	other := c.spec()
	if _, err := r.Create(c.ctx(), other); err != nil {
		t.Fatal(err)
	}
	policies := c.cs.NetworkingV1().NetworkPolicies(c.ns)
	rules := &runtimes.EgressRules{
		Allow:  []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("203.0.113.0/24")},
		Except: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("203.0.113.128/25")},
	}
	if err := r.SetEgress(c.ctx(), id, rules); err != nil {
		t.Fatal(err)
	}
	p, err := policies.Get(c.ctx(), "insien-egress-"+id, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkPolicy(t, p, labels.Set(c.get(spec.Name).Labels), []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, 1)
	sel, _ := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
	if sel.Matches(labels.Set(c.get(other.Name).Labels)) {
		t.Errorf("the policy of %s selects %s too", spec.Name, other.Name)
	}
	var blocks []string
	for _, peer := range p.Spec.Egress[0].To {
		blocks = append(blocks, fmt.Sprintf("%s-%v", peer.IPBlock.CIDR, peer.IPBlock.Except))
	}
	if want := "[0.0.0.0/0-[10.0.0.0/8 203.0.113.128/25] 203.0.113.0/24-[203.0.113.128/25]]"; fmt.Sprint(blocks) != want {
		t.Errorf("ip blocks %v, want %s", blocks, want)
	}
	if len(p.OwnerReferences) != 1 || p.OwnerReferences[0].Kind != "Pod" || p.OwnerReferences[0].Name != spec.Name {
		t.Errorf("owner references %+v, want the Pod %s", p.OwnerReferences, spec.Name)
	}

	if err := r.SetEgress(c.ctx(), id, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := policies.Get(c.ctx(), "insien-egress-"+id, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after the rules were taken away: %v, want not found", err)
	}
	if err := r.SetEgress(c.ctx(), id, nil); err != nil {
		t.Errorf("taking away rules twice: %v", err)
	}

	if err := r.SetEgress(c.ctx(), id, rules); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(c.ctx(), id); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the garbage collector to delete the removed Pod's policy", time.Minute, func() bool {
		_, err := policies.Get(c.ctx(), "insien-egress-"+id, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}
