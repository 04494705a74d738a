package kubernetes

import (
	"context"
	"errors"
	"sync"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metaapply "k8s.io/client-go/applyconfigurations/meta/v1"
	netapply "k8s.io/client-go/applyconfigurations/networking/v1"

	"github.com/insien/orchestrator/internal/runtimes"
)

// The NetworkPolicies of the sandbox namespace. Policies only ever add allowed traffic, so the
// isolation is one policy that selects every sandbox Pod (whatever its cluster) and allows
// nothing, and an operator's AllowNetwork is a second policy that allows egress to the Pods of
// its own cluster only: an orchestrator that shares the namespace cannot open another's sandboxes.
const (
	isolationPolicy    = "insien-sandboxes-isolation"
	egressPolicyPrefix = "insien-sandboxes-egress-"
)

// isolation remembers that the NetworkPolicies were ensured, so that they are applied once per
// process (and retried by the next create when that failed).
type isolation struct {
	mu   sync.Mutex
	done bool
}

// ensureIsolation makes the namespace's NetworkPolicies match Options.AllowNetwork before the
// first Pod exists. It fails closed: no Pod is created while they cannot be applied. Whether
// traffic is actually blocked depends on the cluster's network plugin enforcing NetworkPolicies
// (Calico, Cilium, ...; the plain bridge plugin does not).
func (r *Runtime) ensureIsolation(ctx context.Context) error {
	r.isolation.mu.Lock()
	defer r.isolation.mu.Unlock()
	if r.isolation.done {
		return nil
	}
	policies := r.cs.NetworkingV1().NetworkPolicies(r.opts.Namespace)
	// Server-side apply is create-or-update in one idempotent call.
	apply := func(p *netapply.NetworkPolicyApplyConfiguration) error {
		rctx, cancel := r.requestContext(ctx)
		defer cancel()
		_, err := policies.Apply(rctx, p, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		return r.apiErr(ctx, "apply network policy", *p.Name, err)
	}
	if err := apply(r.isolationPolicy()); err != nil {
		return err
	}
	egress := egressPolicyPrefix + r.opts.Cluster
	if r.opts.AllowNetwork {
		if err := apply(r.egressPolicy()); err != nil {
			return err
		}
	} else {
		// A previous configuration may have allowed network: that must not outlive it.
		rctx, cancel := r.requestContext(ctx)
		defer cancel()
		err := r.apiErr(ctx, "delete network policy", egress, policies.Delete(rctx, egress, metav1.DeleteOptions{}))
		if err != nil && !errors.Is(err, runtimes.ErrNotFound) {
			return err
		}
	}
	r.isolation.done = true
	return nil
}

// isolationPolicy denies every sandbox Pod in the namespace all ingress and egress.
func (r *Runtime) isolationPolicy() *netapply.NetworkPolicyApplyConfiguration {
	sandboxes := map[string]string{runtimes.LabelManagedBy: "true"}
	return netapply.NetworkPolicy(isolationPolicy, r.opts.Namespace).WithLabels(sandboxes).WithSpec(
		netapply.NetworkPolicySpec().
			WithPodSelector(metaapply.LabelSelector().WithMatchLabels(sandboxes)).
			WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
}

// egressPolicy allows this cluster's sandbox Pods egress to anywhere (Options.AllowNetwork).
// Ingress stays denied: nothing needs to connect to a sandbox, and sandboxes cannot reach each other.
func (r *Runtime) egressPolicy() *netapply.NetworkPolicyApplyConfiguration {
	ours := map[string]string{runtimes.LabelManagedBy: "true", runtimes.LabelCluster: r.opts.Cluster}
	return netapply.NetworkPolicy(egressPolicyPrefix+r.opts.Cluster, r.opts.Namespace).WithLabels(ours).WithSpec(
		netapply.NetworkPolicySpec().
			WithPodSelector(metaapply.LabelSelector().WithMatchLabels(ours)).
			WithPolicyTypes(networkingv1.PolicyTypeEgress).
			WithEgress(netapply.NetworkPolicyEgressRule())) // one empty rule: every destination
}

// sandboxEgressPrefix names a sandbox's own egress policy (with its Pod's name).
const sandboxEgressPrefix = "insien-egress-"

// SetEgress gives one sandbox Pod its own egress policy: an ipBlock per allowed prefix, with the
// prefixes inside it excepted (see runtimes.EgressPolicies). Owned by the Pod, so the policy goes
// with it. Policies only add allowed traffic, so the isolation policy still denies the rest.
func (r *Runtime) SetEgress(ctx context.Context, id string, rules *runtimes.EgressRules) error {
	policies := r.cs.NetworkingV1().NetworkPolicies(r.opts.Namespace)
	name := sandboxEgressPrefix + id
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	if rules == nil {
		err := r.apiErr(ctx, "delete egress policy", name, policies.Delete(rctx, name, metav1.DeleteOptions{}))
		if errors.Is(err, runtimes.ErrNotFound) {
			return nil
		}
		return err
	}
	pod, err := r.cs.CoreV1().Pods(r.opts.Namespace).Get(rctx, id, metav1.GetOptions{})
	if err != nil {
		return r.apiErr(ctx, "set egress policy: get pod", id, err)
	}
	selector := map[string]string{runtimes.LabelManagedBy: "true", runtimes.LabelSandboxID: pod.Labels[runtimes.LabelSandboxID]}
	rule := netapply.NetworkPolicyEgressRule()
	for _, allow := range rules.Allow {
		block := netapply.IPBlock().WithCIDR(allow.String())
		for _, except := range rules.Except {
			if except.Bits() > allow.Bits() && allow.Contains(except.Addr()) {
				block.WithExcept(except.String())
			}
		}
		rule.WithTo(netapply.NetworkPolicyPeer().WithIPBlock(block))
	}
	policy := netapply.NetworkPolicy(name, r.opts.Namespace).WithLabels(selector).
		WithOwnerReferences(metaapply.OwnerReference().WithAPIVersion("v1").WithKind("Pod").
			WithName(pod.Name).WithUID(pod.UID)).
		WithSpec(netapply.NetworkPolicySpec().
			WithPodSelector(metaapply.LabelSelector().WithMatchLabels(selector)).
			WithPolicyTypes(networkingv1.PolicyTypeEgress))
	if len(rules.Allow) > 0 {
		policy.Spec.WithEgress(rule)
	}
	_, err = policies.Apply(rctx, policy, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
	return r.apiErr(ctx, "apply egress policy", name, err)
}
