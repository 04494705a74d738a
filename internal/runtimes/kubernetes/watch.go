package kubernetes

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Reconnection backoff of Watch: doubled after each failed attempt up to the maximum, reset by
// a connection that listed.
const (
	watchMinBackoff = 100 * time.Millisecond
	watchMaxBackoff = 5 * time.Second
)

// Watch implements runtimes.Runtime with a list and watch of the sandbox Pods that carry labels:
// EventResync after each listing, EventExited when a Pod's main container ends, the Pod is
// evicted or passes its deadline (ExitCode -1), or the Pod is deleted before its main container
// was seen to end (ExitCode -1: deleted behind the orchestrator's back, or by its own Remove).
func (r *Runtime) Watch(ctx context.Context, labels map[string]string) <-chan runtimes.Event {
	out := make(chan runtimes.Event)
	go r.watch(ctx, labels, out)
	return out
}

func (r *Runtime) watch(ctx context.Context, labels map[string]string, out chan<- runtimes.Event) {
	defer close(out)
	send := func(ev runtimes.Event) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// reported holds the Pods whose end was sent (or that had ended when listed), so that a Pod
	// is reported once however many updates follow; it outlives reconnections.
	reported := map[types.UID]bool{}
	listed := func(pods []corev1.Pod) bool {
		present := map[types.UID]bool{}
		for i := range pods {
			present[pods[i].UID] = true
			if _, over := outcome(&pods[i]); over {
				reported[pods[i].UID] = true
			}
		}
		for uid := range reported {
			if !present[uid] {
				delete(reported, uid)
			}
		}
		return !send(runtimes.Event{Kind: runtimes.EventResync})
	}
	changed := func(typ watch.EventType, p *corev1.Pod) bool {
		if reported[p.UID] {
			if typ == watch.Deleted {
				delete(reported, p.UID)
			}
			return false
		}
		end, over := outcome(p)
		switch {
		case typ == watch.Deleted:
			if !over {
				end = ending{exitCode: -1}
			}
		case !over:
			return false
		default:
			reported[p.UID] = true
		}
		return !send(exitEvent(p, end))
	}

	opts := metav1.ListOptions{LabelSelector: selector(labels)}
	backoff := watchMinBackoff
	for {
		connected := false
		err := r.observe(ctx, opts, func(pods []corev1.Pod) bool {
			connected = true
			return listed(pods)
		}, changed)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = watchMinBackoff
		}
		r.log.Warn("pod watch broke; reconnecting", zap.Error(err), zap.Duration("after", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, watchMaxBackoff)
	}
}

// exitEvent is the EventExited of a Pod, with its orchestrator labels.
func exitEvent(p *corev1.Pod, end ending) runtimes.Event {
	return runtimes.Event{Kind: runtimes.EventExited, ID: p.Name, Name: p.Name, Labels: p.Labels,
		ExitCode: end.exitCode, OOMKilled: end.oomKilled}
}

// waitFor follows one Pod until done says so or fails; done gets nil once the Pod is gone.
func (r *Runtime) waitFor(ctx context.Context, name string, done func(*corev1.Pod) (bool, error)) error {
	var doneErr error
	check := func(p *corev1.Pod) bool {
		ok, err := done(p)
		doneErr = err
		return ok || err != nil
	}
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	err := r.observe(ctx, opts, func(pods []corev1.Pod) bool {
		if len(pods) == 0 {
			return check(nil)
		}
		return check(&pods[0])
	}, func(typ watch.EventType, p *corev1.Pod) bool {
		if typ == watch.Deleted {
			return check(nil)
		}
		return check(p)
	})
	if doneErr != nil {
		return doneErr
	}
	return err
}

// observe lists the Pods opts selects, then follows their changes from that listing on, and
// lists again whenever the watch ends, until listed or changed returns true (nil then) or ctx
// ends. It returns why it stopped: ctx's error, or a list or watch that failed.
func (r *Runtime) observe(ctx context.Context, opts metav1.ListOptions,
	listed func([]corev1.Pod) bool, changed func(watch.EventType, *corev1.Pod) bool) error {
	for {
		rctx, cancel := r.requestContext(ctx)
		list, err := r.pods().List(rctx, opts)
		cancel()
		if err != nil {
			return r.apiErr(ctx, "list", "", err)
		}
		if listed(list.Items) {
			return nil
		}
		wopts := opts
		wopts.ResourceVersion = list.ResourceVersion
		w, err := r.pods().Watch(ctx, wopts)
		if err != nil {
			return r.apiErr(ctx, "watch", "", err)
		}
		done, err := follow(ctx, w, changed)
		w.Stop()
		if done || err != nil {
			return err
		}
	}
}

// follow passes a watch's Pod changes to changed until it returns true (done), the watch ends
// (false, nil: list again) or fails.
func follow(ctx context.Context, w watch.Interface, changed func(watch.EventType, *corev1.Pod) bool) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				if p, ok := ev.Object.(*corev1.Pod); ok && changed(ev.Type, p) {
					return true, nil
				}
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					return false, nil // the listing is too old to watch from: list again
				}
				return false, fmt.Errorf("kubernetes: watch: %w", err)
			}
		}
	}
}
