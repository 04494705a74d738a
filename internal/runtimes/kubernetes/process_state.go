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

// statusLag bounds how long a refused exec waits for the Pod's status to say why: the kubelet
// refuses an exec in a container that has just exited ("container not found") a moment before it
// reports the exit in the Pod's status.
const statusLag = 3 * time.Second

// whyNotRunning reads the Pod to tell why nothing could run in it: ErrNotFound when it is gone, a
// *runtimes.NotRunningError when it is not running, nil when it runs after all (or cannot be
// read: the caller keeps its own error then). While the Pod still reads as running it is read
// again, for up to lag.
func (r *Runtime) whyNotRunning(ctx context.Context, pod string, lag time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), apiTimeout+lag)
	defer cancel()
	deadline := time.Now().Add(lag)
	for {
		p, err := r.cs.CoreV1().Pods(r.opts.Namespace).Get(ctx, pod, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return runtimes.ErrNotFound
		case err != nil:
			return nil
		}
		info := podInfo(p)
		if info.State != runtimes.StateRunning && info.State != runtimes.StateUnknown {
			return &runtimes.NotRunningError{State: info.State, ExitCode: info.ExitCode, OOMKilled: info.OOMKilled}
		}
		if time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// streamErr explains why an exec stream failed before its command ran: the API server cannot be
// reached, the Pod is missing or not running (from the Pod itself: the API server's and the
// kubelet's refusals are plain texts), or the request's own error.
func (r *Runtime) streamErr(ctx context.Context, op, pod string, err error) error {
	if unreachable(err) {
		return fmt.Errorf("kubernetes: %s in %s: %w: %w", op, pod, runtimes.ErrUnavailable, err)
	}
	if why := r.whyNotRunning(ctx, pod, statusLag); why != nil {
		return fmt.Errorf("kubernetes: %s in %s: %w (%w)", op, pod, why, err)
	}
	return fmt.Errorf("kubernetes: %s in %s: %w", op, pod, err)
}
