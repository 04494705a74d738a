package webhooks

import "go.uber.org/fx"

// Module provides the endpoint service and runs the delivery worker with the app.
var Module = fx.Module("webhooks",
	fx.Provide(NewService),
	fx.Provide(NewWorker),
	fx.Invoke(func(lc fx.Lifecycle, w *Worker) { lc.Append(fx.StartStopHook(w.Start, w.Stop)) }),
)
