package kubernetes

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Persistent volumes are PersistentVolumeClaims in the sandbox namespace, of Options.VolumeStorageClass
// (empty: the cluster's default class). The cluster's storage provides them and enforces their
// size; the Pod of a sandbox that mounts a volume names its claim.

var _ runtimes.VolumeStore = (*Runtime)(nil)

func (r *Runtime) claims() typedcorev1.PersistentVolumeClaimInterface {
	return r.cs.CoreV1().PersistentVolumeClaims(r.opts.Namespace)
}

// CreateVolume makes a claim of spec.SizeMB (ReadWriteOnce: one node mounts it at a time; the
// service lets one live sandbox mount it) and returns without waiting for it to be bound: with a
// WaitForFirstConsumer class the cluster binds it only once a Pod mounting it is scheduled.
func (r *Runtime) CreateVolume(ctx context.Context, spec runtimes.VolumeSpec) error {
	claim, err := r.claimFor(spec)
	if err != nil {
		return err
	}
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	_, err = r.claims().Create(rctx, claim, metav1.CreateOptions{FieldManager: fieldManager})
	switch {
	case apierrors.IsAlreadyExists(err):
		return r.adoptClaim(ctx, spec)
	case admissionRefusal(err) && quotaWords.MatchString(err.Error()):
		// A ResourceQuota on requests.storage or persistentvolumeclaims.
		return fmt.Errorf("kubernetes: create volume %s: %w", spec.Name, &runtimes.QuotaError{Reason: err.Error()})
	case admissionRefusal(err) || apierrors.IsInvalid(err):
		return fmt.Errorf("kubernetes: create volume %s: %w: %w", spec.Name, runtimes.ErrSpecRefused, err)
	case err != nil:
		return r.apiErr(ctx, "create volume", spec.Name, err)
	}
	r.log.Debug("created volume claim", zap.String("name", spec.Name), zap.Int64("size_mb", spec.SizeMB))
	return nil
}

// claimFor is the claim CreateVolume makes, labelled as the driver's Pods are.
func (r *Runtime) claimFor(spec runtimes.VolumeSpec) (*corev1.PersistentVolumeClaim, error) {
	if errs := content.IsDNS1123Label(spec.Name); len(errs) > 0 {
		return nil, fmt.Errorf("kubernetes: volume %q: not a DNS label: %s", spec.Name, strings.Join(errs, "; "))
	}
	if spec.SizeMB <= 0 || spec.SizeMB > maxMemoryMB {
		return nil, fmt.Errorf("kubernetes: volume %q: size %d MiB is out of range", spec.Name, spec.SizeMB)
	}
	labels, err := r.podLabels(spec.Labels)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: volume %q: %w", spec.Name, err)
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Namespace: r.opts.Namespace, Labels: labels},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: optional(r.opts.VolumeStorageClass),
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: *resource.NewQuantity(spec.SizeMB<<20, resource.BinarySI),
			}},
		},
	}, nil
}

// adoptClaim accepts the claim already holding spec.Name when it keeps the same volume, so that a
// retried create is idempotent.
func (r *Runtime) adoptClaim(ctx context.Context, spec runtimes.VolumeSpec) error {
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	c, err := r.claims().Get(rctx, spec.Name, metav1.GetOptions{})
	if err != nil {
		return r.apiErr(ctx, "create volume: get existing", spec.Name, err)
	}
	want, got := spec.Labels[runtimes.LabelVolumeID], c.Labels[runtimes.LabelVolumeID]
	switch {
	case want == "" || got != want:
		return fmt.Errorf("kubernetes: create volume %q: name is taken by a claim of another volume (%q)", spec.Name, got)
	case c.DeletionTimestamp != nil:
		return fmt.Errorf("kubernetes: create volume %q: the claim made before is being deleted", spec.Name)
	}
	return nil
}

// RemoveVolume deletes a volume's claim; what the cluster does with the storage behind it is the
// class's reclaim policy (Delete, for dynamically provisioned volumes: the data goes). A claim
// still mounted by a Pod that is ending goes when that Pod has gone (the cluster's protection).
func (r *Runtime) RemoveVolume(ctx context.Context, name string) error {
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	err := r.claims().Delete(rctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return r.apiErr(ctx, "remove volume", name, err)
}

// addVolumes mounts spec's volumes, each its claim, into the Pod. A host directory cannot be one:
// it is on one node only.
func addVolumes(p *corev1.Pod, mounts []runtimes.Mount) error {
	for _, m := range mounts {
		switch {
		case m.Source != "" || m.Volume == "":
			return fmt.Errorf("host mounts (%q): %w", m.Source, runtimes.ErrNotSupported)
		case !strings.HasPrefix(m.Target, "/"):
			return fmt.Errorf("volume %s: target %q must be absolute", m.Volume, m.Target)
		}
		// The claim's name (vol-<id>) is a DNS label, unique in the Pod and unlike its emptyDirs'.
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: m.Volume, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: m.Volume, ReadOnly: m.ReadOnly},
		}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: m.Volume, MountPath: m.Target, ReadOnly: m.ReadOnly})
	}
	return nil
}

// Scheduler reasons (its volume plugins') that say a claim the Pod mounts cannot be had: no
// PersistentVolume fits it, none where the Pod could run, its storage is gone or its claim is.
// Waiting does not help (a provisioner that could make one would have been asked already), so
// Start fails at once instead of at its timeout.
var volumeUnschedulable = regexp.MustCompile(`persistent volumes to bind|PersistentVolume's node affinity|` +
	`did not have enough free storage|bound to non-existent pv|no available volume zone|` +
	`persistentvolumeclaim "[^"]*" (not found|is being deleted)`)

// volumeUnbound is the reason of a claim of an Immediate class that is not bound yet: its
// provisioner may still be at work, so Start waits, and reports it when the wait ends.
const volumeUnbound = "unbound immediate PersistentVolumeClaims"

// unschedulable is the scheduler's message when it cannot place the Pod, else "".
func unschedulable(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Message
		}
	}
	return ""
}

// volumeFailure is a *VolumeError when the scheduler cannot place p for want of one of its
// volumes (an unbound claim of an Immediate class only when final), nil otherwise.
func volumeFailure(p *corev1.Pod, final bool) error {
	msg := unschedulable(p)
	if msg == "" || !volumeUnschedulable.MatchString(msg) && !(final && strings.Contains(msg, volumeUnbound)) {
		return nil
	}
	// "0/1 nodes are available: 1 node(s) didn't find ... . preemption: 0/1 nodes ...": the
	// part about preemption says nothing more.
	msg, _, _ = strings.Cut(msg, " preemption:")
	return &runtimes.VolumeError{Reason: strings.TrimSpace(msg)}
}
