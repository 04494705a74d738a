package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/insien/orchestrator/internal/runtimes"
)

// apiTimeout bounds one read of the API server made on the way out of an operation.
const apiTimeout = 10 * time.Second

// podState is what a Pod says about its sandbox container, in the driver-neutral terms: its
// state and, once it has ended, its exit status and whether the OOM killer ended it. A Pod being
// deleted has ended for good even while its container still runs out its grace period.
func podState(pod *corev1.Pod) (state runtimes.State, exitCode int, oomKilled bool) {
	var cs *corev1.ContainerStatus
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == sandboxContainer {
			cs = &pod.Status.ContainerStatuses[i]
		}
	}
	if cs != nil && cs.State.Terminated != nil {
		t := cs.State.Terminated
		return runtimes.StateExited, int(t.ExitCode), t.Reason == "OOMKilled"
	}
	switch {
	case pod.DeletionTimestamp != nil:
		return runtimes.StateExited, -1, false
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		// Ended without a container status (evicted or refused before it started).
		return runtimes.StateExited, -1, false
	case pod.Status.Phase == corev1.PodPending:
		return runtimes.StateCreated, 0, false
	case pod.Status.Phase == corev1.PodRunning && cs != nil && cs.State.Running != nil:
		return runtimes.StateRunning, 0, false
	case pod.Status.Phase == corev1.PodRunning:
		return runtimes.StateCreated, 0, false // the container is waiting to (re)start
	}
	return runtimes.StateUnknown, 0, false
}

// whyNotRunning reads the Pod to tell why nothing could run in it: ErrNotFound when it is gone, a
// *runtimes.NotRunningError when it is not running, nil when it runs after all (or cannot be
// read: the caller keeps its own error then).
func (r *Runtime) whyNotRunning(ctx context.Context, pod string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), apiTimeout)
	defer cancel()
	p, err := r.cs.CoreV1().Pods(r.opts.Namespace).Get(ctx, pod, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return runtimes.ErrNotFound
	case err != nil:
		return nil
	}
	state, code, oom := podState(p)
	if state == runtimes.StateRunning || state == runtimes.StateUnknown {
		return nil
	}
	return &runtimes.NotRunningError{State: state, ExitCode: code, OOMKilled: oom}
}

// streamErr explains why an exec stream failed before its command ran: the Pod is missing or not
// running (from the Pod itself: the API server's and the kubelet's refusals are plain texts), the
// API server cannot be reached, or the request's own error.
func (r *Runtime) streamErr(ctx context.Context, op, pod string, err error) error {
	if why := r.whyNotRunning(ctx, pod); why != nil {
		return fmt.Errorf("kubernetes: %s in %s: %w (%w)", op, pod, why, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fmt.Errorf("kubernetes: %s in %s: %w: %w", op, pod, runtimes.ErrUnavailable, err)
	}
	return fmt.Errorf("kubernetes: %s in %s: %w", op, pod, err)
}
