package lifecycle

import (
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/identity/users"
)

// Module provides the sandbox service, runs its loops with the app, and lets the user service
// end a deleted user's sandboxes.
var Module = fx.Module("lifecycle",
	fx.Provide(NewService),
	fx.Provide(func(s *Service) users.SandboxDestroyer { return s }),
	fx.Invoke(func(lc fx.Lifecycle, s *Service) { lc.Append(fx.StartStopHook(s.Start, s.Stop)) }),
)
