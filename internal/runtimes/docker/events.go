package docker

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/runtimes"
)

const (
	// streamSettle is how long a new event stream must stay open before it counts as connected:
	// the client returns before a refused request has reported its error, so a stream that has
	// neither failed nor delivered by then is live. EventResync is sent then (or on the first
	// event, whichever comes first).
	streamSettle = 200 * time.Millisecond
	// sigkillExit is the status of a process killed by SIGKILL (128+9): what the OOM killer sends.
	sigkillExit = 137
)

// Watch implements runtimes.Runtime with the engine's event stream: container die and oom events
// of the orchestrator's containers that carry labels.
func (r *Runtime) Watch(ctx context.Context, labels map[string]string) <-chan runtimes.Event {
	out := make(chan runtimes.Event)
	go r.watch(ctx, labels, out)
	return out
}

func (r *Runtime) watch(ctx context.Context, labels map[string]string, out chan<- runtimes.Event) {
	defer close(out)
	f := client.Filters{}
	f.Add("type", string(events.ContainerEventType))
	f.Add("event", string(events.ActionDie), string(events.ActionOOM))
	f.Add("label", runtimes.LabelManagedBy+"=true")
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	// oomed holds the containers the OOM killer struck since their last die: the engine reports
	// the kill before the exit, in order, for each container. It outlives reconnections, and
	// an entry is dropped at the container's die event.
	oomed := map[string]bool{}
	runtimes.KeepWatching(ctx, func(ctx context.Context) (bool, error) { return r.stream(ctx, f, oomed, out) },
		func(err error, after time.Duration) {
			r.log.Warn("engine event stream broke; reconnecting", zap.Error(err), zap.Duration("after", after))
		})
}

// stream reads one event subscription until it breaks, and reports whether it had connected.
func (r *Runtime) stream(ctx context.Context, f client.Filters, oomed map[string]bool, out chan<- runtimes.Event) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the client's reading goroutine whatever happened
	s := &subscription{ctx: ctx, out: out, settle: time.NewTimer(streamSettle)}
	defer s.settle.Stop()
	err := s.read(r.cli.Events(ctx, client.EventsListOptions{Filters: f}), oomed)
	return s.connected, err
}

// subscription is one event stream being read into out. It counts as connected at its first
// message or once it has stayed open for streamSettle, and then sends EventResync, once.
type subscription struct {
	ctx       context.Context
	out       chan<- runtimes.Event
	settle    *time.Timer
	connected bool
}

// read passes the exit events on until the stream breaks or ctx ends, and returns why it stopped.
func (s *subscription) read(sub client.EventsResult, oomed map[string]bool) error {
	for {
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case err := <-sub.Err:
			return err
		case <-s.settle.C:
			if !s.resync() {
				return s.ctx.Err()
			}
		case m := <-sub.Messages:
			if !s.resync() {
				return s.ctx.Err()
			}
			ev, ok := exitEvent(m, oomed)
			if ok && !s.send(ev) {
				return s.ctx.Err()
			}
		}
	}
}

// resync marks the stream connected, sending EventResync the first time; false when ctx ended.
func (s *subscription) resync() bool {
	if s.connected {
		return true
	}
	s.connected = true
	s.settle.Stop()
	return s.send(runtimes.Event{Kind: runtimes.EventResync})
}

// send delivers ev unless ctx ends first.
func (s *subscription) send(ev runtimes.Event) bool {
	select {
	case s.out <- ev:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// exitEvent turns a die into an EventExited and remembers an oom for the die that follows it.
func exitEvent(m events.Message, oomed map[string]bool) (runtimes.Event, bool) {
	id := m.Actor.ID
	switch m.Action {
	case events.ActionOOM:
		oomed[id] = true
		return runtimes.Event{}, false
	case events.ActionDie:
	default:
		return runtimes.Event{}, false
	}
	oom := oomed[id]
	delete(oomed, id)
	code, err := strconv.Atoi(m.Actor.Attributes["exitCode"])
	if err != nil {
		code = -1
	}
	labels := map[string]string{}
	for k, v := range m.Actor.Attributes {
		if strings.HasPrefix(k, runtimes.LabelManagedBy) {
			labels[k] = v
		}
	}
	return runtimes.Event{
		Kind: runtimes.EventExited, ID: id, Name: m.Actor.Attributes["name"], Labels: labels,
		ExitCode: code, OOMKilled: killedByOOM(oom, code),
	}, true
}

// killedByOOM tells an OOM-killed main process from one that outlived an OOM kill of a child
// (a shell whose child was killed goes on, or exits with a status of its own choosing): the
// engine flags the container for any kill in it, but only the main process's SIGKILL ends it.
func killedByOOM(oomInContainer bool, exitCode int) bool {
	return oomInContainer && exitCode == sigkillExit
}
