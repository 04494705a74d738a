package kubernetes

import (
	"context"
	"sync"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metaapply "k8s.io/client-go/applyconfigurations/meta/v1"
	netapply "k8s.io/client-go/applyconfigurations/networking/v1"

	"github.com/insien/orchestrator/internal/runtimes"
)

// policyName is the NetworkPolicy of one orchestrator cluster's sandbox Pods.
func policyName(cluster string) string { return "insien-sandboxes-" + cluster }

// isolation remembers that the NetworkPolicy was ensured, so that it is applied once per process
// (and retried by the next create when it failed).
type isolation struct {
	mu   sync.Mutex
	done bool
}

// ensureIsolation creates or updates the NetworkPolicy that selects every sandbox Pod of this
// cluster, before the first Pod exists. It fails closed: no Pod is created while the policy
// cannot be applied. Whether traffic is actually blocked depends on the cluster's network
// plugin enforcing NetworkPolicies (Calico, Cilium, ...; plain bridge CNI does not).
func (r *Runtime) ensureIsolation(ctx context.Context) error {
	r.isolation.mu.Lock()
	defer r.isolation.mu.Unlock()
	if r.isolation.done {
		return nil
	}
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	// Server-side apply is create-or-update in one idempotent call, and it drops the rules a
	// previous configuration (AllowNetwork) set and this one does not.
	_, err := r.cs.NetworkingV1().NetworkPolicies(r.opts.Namespace).Apply(rctx, r.networkPolicy(),
		metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
	if err != nil {
		return r.apiErr(ctx, "apply network policy", policyName(r.opts.Cluster), err)
	}
	r.isolation.done = true
	return nil
}

// networkPolicy denies sandbox Pods all ingress and egress; with Options.AllowNetwork, egress
// to anywhere is allowed (ingress stays denied: nothing needs to connect to a sandbox, and
// sandboxes cannot reach each other).
func (r *Runtime) networkPolicy() *netapply.NetworkPolicyApplyConfiguration {
	sandboxes := map[string]string{runtimes.LabelManagedBy: "true", runtimes.LabelCluster: r.opts.Cluster}
	spec := netapply.NetworkPolicySpec().
		WithPodSelector(metaapply.LabelSelector().WithMatchLabels(sandboxes)).
		WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)
	if r.opts.AllowNetwork {
		spec.WithEgress(netapply.NetworkPolicyEgressRule()) // one empty rule: every destination
	}
	return netapply.NetworkPolicy(policyName(r.opts.Cluster), r.opts.Namespace).WithLabels(sandboxes).WithSpec(spec)
}
