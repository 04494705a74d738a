// Package actor carries who acts in a request down its context, to the repositories that record
// it beside the change it makes (and so in the event log).
package actor

import "context"

// Actor is a request's principal and id. The zero Actor is the system: work no request asked
// for (the reaper, the event watcher, the reconciler).
type Actor struct {
	Principal string // "key:<id>" or "user:<id>", as logs name it; never a secret
	RequestID string
}

// System is the name of the zero Actor.
const System = "system"

// Name is the principal, or System.
func (a Actor) Name() string {
	if a.Principal == "" {
		return System
	}
	return a.Principal
}

type key struct{}

// With returns ctx carrying a.
func With(ctx context.Context, a Actor) context.Context { return context.WithValue(ctx, key{}, a) }

// From returns the Actor ctx carries, the system's when none.
func From(ctx context.Context) Actor {
	a, _ := ctx.Value(key{}).(Actor)
	return a
}
