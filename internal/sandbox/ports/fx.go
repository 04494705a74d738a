package ports

import (
	"github.com/gin-gonic/gin"
	"go.uber.org/fx"
)

// Module provides the service, puts its preview-host gateway in front of the API's routes, and
// drops the connections it keeps to apps at stop.
var Module = fx.Module("ports",
	fx.Provide(NewService),
	fx.Provide(fx.Annotate(func(s *Service) gin.HandlerFunc { return s.Gateway() }, fx.ResultTags(`group:"gateways"`))),
	fx.Invoke(func(lc fx.Lifecycle, s *Service) { lc.Append(fx.StopHook(s.Close)) }),
)
