package providers

import (
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/health"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
)

// RuntimeParams is what the runtime driver is built from.
type RuntimeParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	Runtime   config.Runtime
	Log       *zap.Logger
}

// NewRuntime builds the configured sandbox runtime driver (Docker today) and closes it on stop.
func NewRuntime(p RuntimeParams) (*docker.Runtime, error) {
	cfg := p.Runtime
	rt, err := docker.New(docker.Options{
		Host:         cfg.DockerHost,
		AllowNetwork: cfg.AllowNetwork,
		ReadOnlyRoot: cfg.ReadOnlyRoot,
		TmpfsSizeMB:  cfg.TmpfsSizeMB,
		OCIRuntime:   cfg.OCIRuntime,
		StopGrace:    cfg.StopGrace,
		PullImages:   cfg.PullImages,
	}, p.Log.Named("runtime"))
	if err != nil {
		return nil, &config.Error{Key: "runtime.docker_host", Reason: err.Error()}
	}
	p.Lifecycle.Append(fx.StopHook(rt.Close))
	return rt, nil
}

func runtimeCheck(rt runtimes.Runtime) health.Check {
	return health.Check{Name: "runtime", Probe: rt.Ping}
}
