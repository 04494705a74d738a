package lifecycle

import (
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/identity/users"
)

// Module provides the sandbox service, also as what the user service needs to end a deleted
// user's sandboxes, and runs its loops with the app.
var Module = fx.Module("lifecycle",
	fx.Provide(fx.Annotate(NewService, fx.As(fx.Self()), fx.As(new(users.SandboxDestroyer)))),
	fx.Invoke(runLoops),
)

// runLoops runs the reaper, the reconciler and the event watcher from start to stop.
func runLoops(lc fx.Lifecycle, s *Service) { lc.Append(fx.StartStopHook(s.Start, s.Stop)) }
