package providers

import (
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/health"
	"github.com/insien/orchestrator/internal/platform/tracing"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
)

// RuntimeParams is what the runtime driver is built from.
type RuntimeParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	Runtime   config.Runtime
	Sandbox   config.Sandbox
	Log       *zap.Logger
	Metrics   prometheus.Registerer
	Tracing   *tracing.Tracing
}

// Driver is what a sandbox runtime driver implements: the lifecycle and working inside.
type Driver interface {
	runtimes.Runtime
	runtimes.Interactive
	runtimes.Ports
}

// NewRuntime builds the driver that runtime.driver names, its calls metered and traced, and
// releases it on stop.
func NewRuntime(p RuntimeParams) (Driver, error) {
	var (
		rt  Driver
		err error
		key string
	)
	switch cfg := p.Runtime; cfg.Driver {
	case "kubernetes":
		key = "runtime.kubernetes"
		rt, err = kubernetes.New(kubernetesOptions(cfg, p.Sandbox), p.Log.Named("runtime"))
	default:
		key = "runtime.docker_host"
		rt, err = docker.New(docker.Options{
			Host:         cfg.DockerHost,
			AllowNetwork: cfg.AllowNetwork,
			ReadOnlyRoot: cfg.ReadOnlyRoot,
			TmpfsSizeMB:  cfg.TmpfsSizeMB,
			OCIRuntime:   cfg.OCIRuntime,
			StopGrace:    cfg.StopGrace,
			PullImages:   cfg.PullImages,
		}, p.Log.Named("runtime"))
	}
	if err != nil {
		return nil, &config.Error{Key: key, Reason: err.Error()}
	}
	if c, ok := rt.(io.Closer); ok {
		p.Lifecycle.Append(fx.StopHook(c.Close))
	}
	return newInstrumentedDriver(rt, p.Metrics, p.Tracing), nil
}

func kubernetesOptions(cfg config.Runtime, sb config.Sandbox) kubernetes.Options {
	k := cfg.Kubernetes
	tolerations := make([]corev1.Toleration, 0, len(k.Tolerations))
	for _, t := range k.Tolerations {
		tolerations = append(tolerations, corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator),
			Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
	}
	return kubernetes.Options{
		Kubeconfig:         k.Kubeconfig,
		Namespace:          k.Namespace,
		Cluster:            cfg.Cluster,
		RuntimeClass:       k.RuntimeClass,
		ImagePullPolicy:    corev1.PullPolicy(k.ImagePullPolicy),
		NodeSelector:       k.NodeSelector,
		Tolerations:        tolerations,
		AllowNetwork:       cfg.AllowNetwork,
		ReadOnlyRoot:       cfg.ReadOnlyRoot,
		TmpfsSizeMB:        cfg.TmpfsSizeMB,
		StopGrace:          cfg.StopGrace,
		MaxLifetime:        lifetimeBackstop(sb),
		VolumeStorageClass: k.VolumeStorageClass,
	}
}

// lifetimeBackstop is when the cluster itself ends a Pod (activeDeadlineSeconds): after the
// reaper's own expiry at sandbox.max_lifetime had its chance, so that a sandbox ends "expired"
// by the reaper and the deadline only catches one that every replica forgot. The deadline counts
// from the Pod's start, so a sandbox that was a warm pool member first gets the longest a member
// waits (max_idle_age) on top.
func lifetimeBackstop(sb config.Sandbox) time.Duration {
	backstop := sb.MaxLifetime + sb.ReapInterval + time.Minute
	if sb.WarmPool.Enabled {
		backstop += sb.WarmPool.MaxIdleAge
	}
	return backstop
}

func runtimeCheck(rt runtimes.Runtime) health.Check {
	return health.Check{Name: "runtime", Probe: rt.Ping}
}
