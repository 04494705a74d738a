package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Claim checks that a pool member's Pod still runs and relabels it for its sandbox (the owner's
// label, so that Pods can be found by user). A Pod's limits are left as they are: in-place resize
// needs the container runtime's cooperation that this driver does not count on
// (Capabilities.LiveResize is false), so a claim of another size is ErrNotSupported.
func (r *Runtime) Claim(ctx context.Context, id string, c runtimes.Claim) error {
	if id == "" {
		return emptyID("claim")
	}
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	p, err := r.pods().Get(rctx, id, metav1.GetOptions{})
	if err != nil {
		return r.apiErr(ctx, "claim", id, err)
	}
	if info := podInfo(p); info.State != runtimes.StateRunning || p.DeletionTimestamp != nil {
		return &runtimes.NotRunningError{State: info.State, ExitCode: info.ExitCode, OOMKilled: info.OOMKilled}
	}
	if err := sameSize(p, c); err != nil {
		return fmt.Errorf("kubernetes: claim %s: %w", id, err)
	}
	labels, err := r.podLabels(c.Labels)
	if err != nil {
		return fmt.Errorf("kubernetes: claim %s: %w", id, err)
	}
	changed := map[string]string{}
	for k, v := range labels {
		if p.Labels[k] != v {
			changed[k] = v
		}
	}
	if len(changed) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": changed}})
	if err != nil {
		return fmt.Errorf("kubernetes: claim %s: encoding the label patch: %w", id, err)
	}
	rctx, cancel = r.requestContext(ctx)
	defer cancel()
	_, err = r.pods().Patch(rctx, id, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	return r.apiErr(ctx, "claim: relabel", id, err)
}

// sameSize refuses a claim whose limits differ from the Pod's.
func sameSize(p *corev1.Pod, c runtimes.Claim) error {
	want := resources(runtimes.Spec{CPU: c.CPU, MemoryMB: c.MemoryMB}).Limits
	for _, ctr := range p.Spec.Containers {
		if ctr.Name != sandboxContainer {
			continue
		}
		have := ctr.Resources.Limits
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if (name != corev1.ResourceCPU || c.CPU > 0) && (name != corev1.ResourceMemory || c.MemoryMB > 0) &&
				have.Name(name, "").Cmp(want[name]) != 0 {
				return fmt.Errorf("%s limit %s cannot change to %s on a running pod: %w",
					name, have.Name(name, ""), want.Name(name, ""), runtimes.ErrNotSupported)
			}
		}
		return nil
	}
	return fmt.Errorf("pod has no %s container", sandboxContainer)
}
