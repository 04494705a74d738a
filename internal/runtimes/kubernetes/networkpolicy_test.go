package kubernetes_test

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
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
