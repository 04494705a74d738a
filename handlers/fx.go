package handlers

import "go.uber.org/fx"

// Module contributes every endpoint family and mounts them on the engine.
var Module = fx.Module("handlers",
	fx.Provide(AsRoutes(NewHealth)),
	fx.Provide(AsRoutes(NewOpenAPI)),
	fx.Provide(AsRoutes(NewUsers)),
	fx.Provide(AsRoutes(NewKeys)),
	fx.Provide(AsRoutes(NewWebhooks)),
	fx.Provide(AsRoutes(NewSandboxes)),
	fx.Provide(AsRoutes(NewSandboxOps)),
	fx.Provide(AsRoutes(NewPorts)),
	fx.Provide(AsRoutes(NewVolumes)),
	fx.Provide(AsRoutes(NewTemplates)),
	fx.Provide(AsRoutes(NewEvents)),
	fx.Provide(AsRoutes(NewWebhookEndpoints)),
	fx.Provide(fx.Annotate(UploadBodyLimit, fx.ResultTags(`group:"body_limits"`))),
	fx.Provide(fx.Annotate(TemplateBodyLimit, fx.ResultTags(`group:"body_limits"`))),
	fx.Provide(fx.Annotate(PortBodyLimits, fx.ResultTags(`group:"body_limits,flatten"`))),
	fx.Invoke(mount),
)
