package kubernetes

import (
	"context"
	"fmt"
	"strings"
	"sync"
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

// Watch implements runtimes.Runtime with a list and watch of the sandbox Pods that carry labels:
// EventResync after each listing; EventExited when a Pod's main container ends, the kubelet
// evicts the Pod (Evicted) or its deadline passes (ExitCode -1), or Stop or Remove deleted it;
// EventGone when anyone else deletes a Pod whose end was not reported yet (an operator, the node
// controller). A Pod is reported once, when it is first seen ended.
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
	listed := func(list *corev1.PodList) (string, bool) {
		pods := list.Items
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
		return list.ResourceVersion, !send(runtimes.Event{Kind: runtimes.EventResync})
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
				end = ending{exitCode: -1, deleted: true}
			}
		case !over:
			return false
		default:
			reported[p.UID] = true
		}
		return !send(r.endEvent(p, end))
	}

	// Listed from the API server's watch cache ("0"), like an informer: the watch then starts at
	// the cache's own resourceVersion, and nothing between the two is missed.
	opts := metav1.ListOptions{LabelSelector: selector(labels), ResourceVersion: "0"}
	// A connection counts as connected once it listed.
	runtimes.KeepWatching(ctx, func(ctx context.Context) (bool, error) {
		connected := false
		err := r.observe(ctx, opts, nil, func(list *corev1.PodList) (string, bool) {
			connected = true
			return listed(list)
		}, changed)
		return connected, err
	}, func(err error, after time.Duration) {
		r.log.Warn("pod watch broke; reconnecting", zap.Error(err), zap.Duration("after", after))
	})
}

// endEvent reports a Pod's end: EventGone when it was deleted, and not through this driver.
func (r *Runtime) endEvent(p *corev1.Pod, end ending) runtimes.Event {
	kind := runtimes.EventExited
	if end.deleted && !r.removals.has(p.Name) {
		kind = runtimes.EventGone
	}
	labels := map[string]string{}
	for k, v := range p.Labels {
		if strings.HasPrefix(k, runtimes.LabelManagedBy) {
			labels[k] = v
		}
	}
	return runtimes.Event{Kind: kind, ID: p.Name, Name: p.Name, Labels: labels,
		ExitCode: end.exitCode, OOMKilled: end.oomKilled, Evicted: end.evicted}
}

// removals remembers, for removalMemory, the Pods this driver deleted (Stop, Remove), so that
// Watch tells their end from a deletion behind its back. Another replica's deletions are not
// known here: they are reported as EventGone, for Pods the orchestrator already ended.
type removals struct {
	mu sync.Mutex
	at map[string]time.Time
}

// removalMemory outlasts any Pod's termination after its deletion (grace period and kubelet sync).
const removalMemory = 10 * time.Minute

func (m *removals) add(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if m.at == nil {
		m.at = map[string]time.Time{}
	}
	for n, at := range m.at {
		if now.Sub(at) > removalMemory {
			delete(m.at, n)
		}
	}
	m.at[name] = now
}

func (m *removals) has(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.at[name]
	return ok
}

// waitFor follows one Pod, from seen (the answer to a change just made) or else from a read,
// until done says so or fails; done gets nil once the Pod is gone. The Pod is read from etcd (a
// create just made is there) and followed from its own resourceVersion, which the API server's
// watch cache reaches as soon as it has the Pod's last change (a listing's resourceVersion may be
// one the cache of Pods never reaches while no Pod changes: etcd 3.4 does not report watch
// progress).
func (r *Runtime) waitFor(ctx context.Context, name string, seen *corev1.Pod, done func(*corev1.Pod) (bool, error)) error {
	var doneErr error
	check := func(p *corev1.Pod) bool {
		ok, err := done(p)
		doneErr = err
		return ok || err != nil
	}
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	var seed *corev1.PodList
	if seen != nil {
		seed = &corev1.PodList{Items: []corev1.Pod{*seen}}
	}
	err := r.observe(ctx, opts, seed, func(list *corev1.PodList) (string, bool) {
		if len(list.Items) == 0 {
			return "", check(nil)
		}
		return list.Items[0].ResourceVersion, check(&list.Items[0])
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

// observe lists the Pods opts selects (opts.ResourceVersion says how fresh; seed, when not nil,
// stands for the first listing), then watches their changes from the resourceVersion listed
// returns, and lists again whenever the watch ends, until listed or changed returns true (nil
// then) or ctx ends. It returns why it stopped: ctx's error, or a list or watch that failed.
func (r *Runtime) observe(ctx context.Context, opts metav1.ListOptions, seed *corev1.PodList,
	listed func(*corev1.PodList) (from string, done bool), changed func(watch.EventType, *corev1.Pod) bool) error {
	for {
		list, err := seed, error(nil)
		if seed == nil {
			rctx, cancel := r.requestContext(ctx)
			list, err = r.pods().List(rctx, opts)
			cancel()
		}
		seed = nil
		if err != nil {
			return r.apiErr(ctx, "list", "", err)
		}
		from, done := listed(list)
		if done {
			return nil
		}
		wopts := opts
		wopts.ResourceVersion, wopts.ResourceVersionMatch = from, ""
		w, err := r.pods().Watch(ctx, wopts)
		if err != nil && cannotStartThere(err) {
			continue
		}
		if err != nil {
			return r.apiErr(ctx, "watch", "", err)
		}
		done, err = follow(ctx, w, changed)
		w.Stop()
		if done || err != nil {
			return err
		}
	}
}

// cannotStartThere: the watch cache no longer has (expired) or does not have yet (too large) the
// resourceVersion a watch was to start from.
func cannotStartThere(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) ||
		apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge)
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
				if cannotStartThere(err) {
					return false, nil // list again
				}
				return false, fmt.Errorf("kubernetes: watch: %w", err)
			}
		}
	}
}
