package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/ptr"

	"github.com/insien/orchestrator/internal/runtimes"
)

const (
	// fieldManager names the orchestrator in the objects' managedFields.
	fieldManager = "insien-orchestrator"
	// stopMargin is how long Stop waits, beyond the grace period, for the kubelet to report the
	// container ended (it reacts to the deletion within a sync, ~1 s).
	stopMargin = 15 * time.Second
	// removeTimeout bounds the removal Start makes of a Pod that could not start, which must
	// happen even when the caller's context has ended.
	removeTimeout = 10 * time.Second
)

// Container waiting reasons (the kubelet's) that mean the image cannot be had. The kubelet
// retries a failed pull with backoff, but like the Docker driver (which pulls once) Start treats
// the first failure as final.
var imageFailures = map[string]bool{
	"ErrImageNeverPull": true, // not on the node, and the pull policy is Never
	"ErrImagePull":      true,
	"ImagePullBackOff":  true,
	"InvalidImageName":  true,
}

func (r *Runtime) pods() typedcorev1.PodInterface { return r.cs.CoreV1().Pods(r.opts.Namespace) }

// requestContext bounds one API request by Options.RequestTimeout.
func (r *Runtime) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.opts.RequestTimeout)
}

// Ping checks that the API server answers and lets the driver list Pods in its namespace (a
// cheap read that also proves the credentials and the Role); any failure is ErrUnavailable.
func (r *Runtime) Ping(ctx context.Context) error {
	ctx, cancel := r.requestContext(ctx)
	defer cancel()
	_, err := r.pods().List(ctx, metav1.ListOptions{Limit: 1, LabelSelector: selector(nil)})
	if err != nil {
		return fmt.Errorf("kubernetes: ping %s (namespace %s): %w: %w", r.rest.Host, r.opts.Namespace, runtimes.ErrUnavailable, err)
	}
	return nil
}

// Create makes a hardened Pod for spec; the Pod starts as soon as the kubelet gets it, and Start
// waits for that. A create retried after a crash finds the Pod it made before, recognised by name
// and sandbox label, and returns its id, which is the Pod's name.
func (r *Runtime) Create(ctx context.Context, spec runtimes.Spec) (string, error) {
	pod, err := r.podFor(spec)
	if err != nil {
		return "", err
	}
	if err := r.ensureIsolation(ctx); err != nil {
		return "", err
	}
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	created, err := r.pods().Create(rctx, pod, metav1.CreateOptions{FieldManager: fieldManager})
	switch {
	case apierrors.IsAlreadyExists(err):
		return r.adoptExisting(ctx, spec)
	case apierrors.IsNotFound(err):
		// The only thing a create can miss is its namespace: a configuration error.
		return "", fmt.Errorf("kubernetes: create %s: namespace %q: %w", spec.Name, r.opts.Namespace, err)
	case admissionRefusal(err) && quotaWords.MatchString(err.Error()):
		// The reason is Kubernetes' own (which quota, requested, used and limited; the
		// LimitRange's bound): the client is told it. It names resources, never the env's values.
		return "", fmt.Errorf("kubernetes: create %s: %w", spec.Name, &runtimes.QuotaError{Reason: err.Error()})
	case admissionRefusal(err) || apierrors.IsInvalid(err):
		// Another admission rule (Pod Security, a webhook) or validation refused the Pod.
		return "", fmt.Errorf("kubernetes: create %s: %w: %w", spec.Name, runtimes.ErrSpecRefused, err)
	case err != nil:
		return "", r.apiErr(ctx, "create", spec.Name, err)
	}
	r.log.Debug("created pod", zap.String("name", created.Name), zap.String("image", spec.Image), zap.Int("env_vars", len(spec.Env)))
	return created.Name, nil
}

// admissionRefusal reports an admission plugin's refusal of the Pod (ResourceQuota, LimitRange,
// Pod Security, a webhook). The authorizer's refusal is not one (the driver's Role lacks a
// permission): it comes before the Pod is read, so it names no Pod, while admission's names the
// one refused.
func admissionRefusal(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsForbidden(err) {
		return false
	}
	d := status.Status().Details
	return d != nil && d.Name != ""
}

// quotaWords are in the refusals of the ResourceQuota admission plugin ("exceeded quota: ...",
// "failed quota: ...", "status unknown for quota: ...") and of the LimitRanger ("maximum cpu usage
// per Container is ...", "... limit to request ratio per Pod is ..."), which the API server
// reports as plain Forbidden errors.
var quotaWords = regexp.MustCompile(`quota|usage per |ratio per |limit ranges`)

// adoptExisting returns the name of the Pod already holding spec.Name if it belongs to the same
// sandbox, so that a retried create is idempotent; a name held by anything else is an error.
func (r *Runtime) adoptExisting(ctx context.Context, spec runtimes.Spec) (string, error) {
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	p, err := r.pods().Get(rctx, spec.Name, metav1.GetOptions{})
	if err != nil {
		return "", r.apiErr(ctx, "create: get existing", spec.Name, err)
	}
	want, got := spec.Labels[runtimes.LabelSandboxID], p.Labels[runtimes.LabelSandboxID]
	switch {
	case want == "" || got != want:
		return "", fmt.Errorf("kubernetes: create %q: name is taken by a pod of another sandbox (%q)", spec.Name, got)
	case p.DeletionTimestamp != nil:
		return "", fmt.Errorf("kubernetes: create %q: the pod made before is being deleted", spec.Name)
	}
	r.log.Info("create found existing pod", zap.String("name", spec.Name))
	return p.Name, nil
}

// Start lets the scheduler place the Pod (Create held it back) and waits, up to
// Options.StartTimeout, until its main container runs or has already ended (Inspect then says
// how). Starting a running Pod is a no-op. A Pod that cannot start (its image cannot be had, no
// node can take it, the wait timed out; a volume it mounts cannot be had, a *VolumeError as soon
// as the scheduler says so) is removed before Start returns the error, so that a
// caller that stops there leaves nothing behind.
func (r *Runtime) Start(ctx context.Context, id string) error {
	if id == "" {
		return emptyID("start")
	}
	ungated, err := r.ungate(ctx, id)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, r.opts.StartTimeout)
	defer cancel()
	var last *corev1.Pod
	err = r.waitFor(wctx, id, ungated, func(p *corev1.Pod) (bool, error) {
		last = p
		return started(p)
	})
	if err == nil {
		return nil
	}
	if wctx.Err() != nil && ctx.Err() == nil {
		err = notStarted(last, r.opts.StartTimeout)
	}
	if errors.Is(err, runtimes.ErrNotFound) {
		return fmt.Errorf("kubernetes: start %s: %w", id, err)
	}
	rctx, cancelRemove := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancelRemove()
	if rerr := r.Remove(rctx, id); rerr != nil {
		r.log.Warn("removing a pod that could not start", zap.String("name", id), zap.Error(rerr))
	}
	return fmt.Errorf("kubernetes: start %s: %w", id, err)
}

// ungatePatch removes the Pod's scheduling gates (the API server allows only their removal); it
// changes nothing on a Pod already started.
var ungatePatch = []byte(`{"spec":{"schedulingGates":null}}`)

func (r *Runtime) ungate(ctx context.Context, id string) (*corev1.Pod, error) {
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	p, err := r.pods().Patch(rctx, id, types.MergePatchType, ungatePatch, metav1.PatchOptions{FieldManager: fieldManager})
	return p, r.apiErr(ctx, "start", id, err)
}

// started is Start's condition: the main container runs or ended; an image that cannot be had
// is an error at once.
func started(p *corev1.Pod) (bool, error) {
	if p == nil {
		return false, runtimes.ErrNotFound
	}
	if _, over := outcome(p); over {
		return true, nil
	}
	if p.DeletionTimestamp != nil {
		return false, errors.New("the pod was deleted while starting")
	}
	if err := volumeFailure(p, false); err != nil {
		return false, err
	}
	st := mainStatus(p)
	switch {
	case st == nil:
		return false, nil
	case st.State.Running != nil:
		return true, nil
	case st.State.Waiting != nil && imageFailures[st.State.Waiting.Reason]:
		w := st.State.Waiting
		return false, fmt.Errorf("image %q: %w: %s: %s", st.Image, runtimes.ErrImageNotFound, w.Reason, w.Message)
	}
	return false, nil
}

// notStarted says why a Pod did not start in time: what the scheduler or the kubelet last said.
// No node able to take it (too much CPU or memory asked for) is ErrSpecRefused.
func notStarted(p *corev1.Pod, after time.Duration) error {
	if p == nil {
		return fmt.Errorf("not running after %s", after)
	}
	if err := volumeFailure(p, true); err != nil {
		return fmt.Errorf("not running after %s: %w", after, err)
	}
	if msg := unschedulable(p); msg != "" {
		return fmt.Errorf("no node can run it after %s: %w: %s", after, runtimes.ErrSpecRefused, msg)
	}
	if st := mainStatus(p); st != nil && st.State.Waiting != nil {
		return fmt.Errorf("not running after %s: %s: %s", after, st.State.Waiting.Reason, st.State.Waiting.Message)
	}
	return fmt.Errorf("not running after %s: pod is %s", after, p.Status.Phase)
}

// Stop ends the Pod's main container and keeps the Pod, so that how it ended and its logs stay
// readable until Remove. Kubernetes has no stop call: Stop sets the Pod's activeDeadlineSeconds to
// 1 (its minimum, long past for a running Pod), the kubelet then sends SIGTERM and, after the
// terminationGracePeriodSeconds fixed at create (Options.StopGrace), SIGKILL; the stopAnnotation
// tells this end from Options.MaxLifetime's. grace only bounds the wait: a Pod's grace period
// cannot change once created. Stopping an ended or never started Pod is a no-op; a missing Pod
// is ErrNotFound.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	if id == "" {
		return emptyID("stop")
	}
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	p, err := r.pods().Get(rctx, id, metav1.GetOptions{})
	if err != nil {
		return r.apiErr(ctx, "stop", id, err)
	}
	if _, over := outcome(p); over || p.Spec.NodeName == "" {
		return nil
	}
	stopping, err := r.pods().Patch(rctx, id, types.StrategicMergePatchType, stopPatch, metav1.PatchOptions{FieldManager: fieldManager})
	if err != nil {
		return r.apiErr(ctx, "stop", id, err)
	}
	wait := max(grace, r.opts.StopGrace) + stopMargin
	wctx, cancelWait := context.WithTimeout(ctx, wait)
	defer cancelWait()
	err = r.waitFor(wctx, id, stopping, func(p *corev1.Pod) (bool, error) {
		if p == nil {
			return true, nil // removed meanwhile: stopped all the same
		}
		_, over := outcome(p)
		return over, nil
	})
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("kubernetes: stop %s: its main container still runs %s after the stop", id, wait)
	}
	return err
}

// stopAnnotation marks a Pod that Stop ended (its deadline was Stop's, not Options.MaxLifetime's).
const stopAnnotation = "dev.insien.orchestrator/stopped"

var stopPatch = []byte(`{"metadata":{"annotations":{"` + stopAnnotation + `":"true"}},"spec":{"activeDeadlineSeconds":1}}`)

// Remove deletes the Pod at once (grace period 0: the API object goes now, and the kubelet kills
// what still runs with the shortest grace it has, one second); a missing Pod is success.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	r.removals.add(id)
	if err := r.delete(ctx, "remove", id, 0); err != nil && !errors.Is(err, runtimes.ErrNotFound) {
		return err
	}
	return nil
}

func (r *Runtime) delete(ctx context.Context, op, id string, grace int64) error {
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	err := r.pods().Delete(rctx, id, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(grace)})
	return r.apiErr(ctx, op, id, err)
}

// Inspect reports a Pod's state, how its main container ended, and its labels.
func (r *Runtime) Inspect(ctx context.Context, id string) (runtimes.Info, error) {
	if id == "" {
		return runtimes.Info{}, emptyID("inspect")
	}
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	p, err := r.pods().Get(rctx, id, metav1.GetOptions{})
	if err != nil {
		return runtimes.Info{}, r.apiErr(ctx, "inspect", id, err)
	}
	return podInfo(p), nil
}

// List reports every sandbox Pod that carries all of labels, ended ones included, with all that
// Inspect reports.
func (r *Runtime) List(ctx context.Context, labels map[string]string) ([]runtimes.Info, error) {
	opts := metav1.ListOptions{LabelSelector: selector(labels), Limit: listPage}
	var out []runtimes.Info
	for {
		rctx, cancel := r.requestContext(ctx)
		page, err := r.pods().List(rctx, opts)
		cancel()
		if err != nil {
			return nil, r.apiErr(ctx, "list", "", err)
		}
		for i := range page.Items {
			out = append(out, podInfo(&page.Items[i]))
		}
		if page.Continue == "" {
			return out, nil
		}
		opts.Continue = page.Continue
	}
}

// listPage bounds the Pods one List request returns, so that a large namespace is read in pages.
const listPage = 500

// selector always includes LabelManagedBy, so that an empty filter never reaches other Pods.
func selector(extra map[string]string) string {
	set := labels.Set{runtimes.LabelManagedBy: "true"}
	for k, v := range extra {
		set[k] = v
	}
	return set.String()
}

// Pod status reasons that end a Pod from outside: no exit status of the main process tells
// about them.
const (
	reasonEvicted          = "Evicted"          // the kubelet reclaimed a resource (disk, memory)
	reasonDeadlineExceeded = "DeadlineExceeded" // activeDeadlineSeconds (Options.MaxLifetime) passed
	reasonOOMKilled        = "OOMKilled"        // the container's terminated reason
	sigkillExit            = 137                // what the OOM killer's SIGKILL makes of an exit status
)

// ending is how a Pod's main process ended.
type ending struct {
	exitCode  int  // -1: unknown, or the Pod was ended from outside
	oomKilled bool // the out-of-memory killer ended the main process
	evicted   bool // the kubelet evicted the Pod to reclaim a resource
	deleted   bool // the Pod was deleted (through Stop or Remove, or behind the driver's back)
	why       string
}

// outcome tells whether a Pod's main process has ended, and how. A Pod past its deadline or being
// deleted reports exit code -1: its main process did not end by itself, whatever status the kill
// left it; an evicted one reports the status the kubelet recorded, or -1.
func outcome(p *corev1.Pod) (ending, bool) {
	st := mainStatus(p)
	var term *corev1.ContainerStateTerminated
	if st != nil {
		term = st.State.Terminated
	}
	finished := p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
	// A Pod is marked failed (evicted, past its deadline) before the kubelet has killed its
	// container: it has ended once the container has, or never ran.
	if term == nil && (!finished || st != nil && st.State.Running != nil) {
		return ending{}, false
	}
	e := ending{exitCode: -1}
	if term != nil {
		e.exitCode = int(term.ExitCode)
	}
	switch {
	case p.Status.Reason == reasonEvicted:
		e.evicted, e.why = true, p.Status.Reason+": "+p.Status.Message
	case p.Status.Reason == reasonDeadlineExceeded && p.Annotations[stopAnnotation] == "":
		e.exitCode, e.why = -1, p.Status.Reason+": "+p.Status.Message
	case p.DeletionTimestamp != nil:
		e.exitCode, e.deleted, e.why = -1, true, "deleted"
	case term == nil:
		e.why = strings.TrimSuffix(fmt.Sprintf("pod %s: %s", p.Status.Phase, p.Status.Message), ": ")
	case term.Reason == reasonOOMKilled && term.ExitCode == sigkillExit:
		e.oomKilled, e.why = true, "out of memory (OOM killed)"
	case term.Reason != "" && term.Reason != "Completed" && term.Reason != "Error":
		e.why = strings.TrimSuffix(term.Reason+": "+term.Message, ": ")
	}
	return e, true
}

// mainStatus is the status of the sandbox container, nil before the kubelet reported one.
func mainStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == sandboxContainer {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// podInfo is the driver-neutral view of a Pod.
func podInfo(p *corev1.Pod) runtimes.Info {
	info := runtimes.Info{ID: p.Name, Name: p.Name, Labels: p.Labels, State: runtimes.StateUnknown}
	st := mainStatus(p)
	if st != nil && st.State.Running != nil {
		info.StartedAt = st.State.Running.StartedAt.Time
	}
	if end, over := outcome(p); over {
		info.State, info.ExitCode, info.OOMKilled, info.Evicted, info.Error = runtimes.StateExited, end.exitCode, end.oomKilled, end.evicted, end.why
		if t := st; t != nil && t.State.Terminated != nil {
			info.StartedAt, info.FinishedAt = t.State.Terminated.StartedAt.Time, t.State.Terminated.FinishedAt.Time
		}
		return info
	}
	switch {
	case p.Status.Phase == corev1.PodPending:
		info.State = runtimes.StateCreated
		if st != nil && st.State.Waiting != nil && st.State.Waiting.Reason != "ContainerCreating" {
			info.Error = st.State.Waiting.Reason + ": " + st.State.Waiting.Message
		}
	case p.Status.Phase == corev1.PodRunning && st != nil && st.State.Running != nil:
		info.State = runtimes.StateRunning
	}
	return info
}

// apiErr translates client-go errors into the runtimes sentinels, keeping the server's message.
// ctx is the caller's: when it ended, the error is its end, not the server's fault.
func (r *Runtime) apiErr(ctx context.Context, op, id string, err error) error {
	if err == nil {
		return nil
	}
	what := op
	if id != "" {
		what = op + " " + id
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("kubernetes: %s: %w", what, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("kubernetes: %s: %w: %w", what, runtimes.ErrNotFound, err)
	case unreachable(err):
		return fmt.Errorf("kubernetes: %s: %w: %w", what, runtimes.ErrUnavailable, err)
	}
	return fmt.Errorf("kubernetes: %s: %w", what, err)
}

// unreachable reports an API server that did not answer (no connection, no response in time) or
// answered that it cannot serve now (overloaded, its storage unavailable).
func unreachable(err error) bool {
	var ue *url.Error
	switch {
	case errors.As(err, &ue), utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err)
}

func emptyID(op string) error {
	return fmt.Errorf("kubernetes: %s: empty id: %w", op, runtimes.ErrNotFound)
}
