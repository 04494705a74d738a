package kubernetes

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/insien/orchestrator/internal/runtimes"
)

// apiTimeout bounds one read of the API server made on the way out of an operation.
const apiTimeout = 10 * time.Second

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
	info := podInfo(p)
	if info.State == runtimes.StateRunning || info.State == runtimes.StateUnknown {
		return nil
	}
	return &runtimes.NotRunningError{State: info.State, ExitCode: info.ExitCode, OOMKilled: info.OOMKilled}
}

// streamErr explains why an exec stream failed before its command ran: the Pod is missing or not
// running (from the Pod itself: the API server's and the kubelet's refusals are plain texts), the
// API server cannot be reached, or the request's own error.
func (r *Runtime) streamErr(ctx context.Context, op, pod string, err error) error {
	if why := r.whyNotRunning(ctx, pod); why != nil {
		return fmt.Errorf("kubernetes: %s in %s: %w (%w)", op, pod, why, err)
	}
	if unreachable(err) {
		return fmt.Errorf("kubernetes: %s in %s: %w: %w", op, pod, runtimes.ErrUnavailable, err)
	}
	return fmt.Errorf("kubernetes: %s in %s: %w", op, pod, err)
}
