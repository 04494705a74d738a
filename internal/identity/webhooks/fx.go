package webhooks

import (
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/identity/users"
)

// Module provides the Clerk webhook receiver, applying events with the user service.
var Module = fx.Module("webhooks",
	fx.Provide(NewClerk),
	fx.Provide(fx.Private, usersApply),
)

// usersApply makes the user service the receiver's Applier.
func usersApply(s *users.Service) Applier { return s }
