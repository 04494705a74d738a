// Package kubernetes runs sandboxes as hardened Pods through a Kubernetes API server,
// implementing runtimes.Runtime and runtimes.Interactive with client-go so that the orchestration
// code never sees a Kubernetes type.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Options configures the driver. Zero values get the defaults documented on each field.
type Options struct {
	Kubeconfig      string // path; empty: the in-cluster service account
	Namespace       string // where sandbox Pods (and their NetworkPolicy) live; required
	RuntimeClass    string // Pod runtimeClassName (gvisor, kata); empty: the cluster default
	ImagePullPolicy corev1.PullPolicy
	NodeSelector    map[string]string
	Tolerations     []corev1.Toleration
	AllowNetwork    bool  // false: a NetworkPolicy denies sandbox Pods all ingress and egress
	ReadOnlyRoot    bool  // read-only image filesystem; /tmp and WorkDir become sized emptyDirs
	TmpfsSizeMB     int64 // size of each of those emptyDirs (memory-backed)
	// EphemeralStorageMB limits the container's writable layer, logs and disk emptyDirs.
	EphemeralStorageMB int64
	WorkDir            string        // default /workspace (Spec.WorkDir wins when set)
	StopGrace          time.Duration // terminationGracePeriodSeconds when Stop is given none
	// MaxLifetime becomes the Pod's activeDeadlineSeconds: a backstop that ends a sandbox the
	// orchestrator forgot (its database lost, every replica down), 0: none.
	MaxLifetime time.Duration
}

// Runtime is the Kubernetes implementation of runtimes.Runtime and runtimes.Interactive. It is
// safe for concurrent use.
type Runtime struct {
	cs   k8s.Interface
	rest *rest.Config
	opts Options
	log  *zap.Logger
	in   *interactive // working inside sandboxes: see process.go
}

// New builds a driver for the cluster that opts.Kubeconfig (or the in-cluster environment) names.
// It does not contact the API server: call Ping to check it is reachable.
func New(opts Options, log *zap.Logger) (*Runtime, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if opts.Namespace == "" {
		return nil, errors.New("kubernetes: Namespace is required")
	}
	cfg, err := restConfig(opts.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	r := &Runtime{cs: cs, rest: cfg, opts: opts, log: log.Named("kubernetes")}
	r.in = newInteractive(r)
	return r, nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: no kubeconfig given and not in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// Name identifies the driver in logs and health checks.
func (r *Runtime) Name() string { return "kubernetes" }

// Capabilities: a running Pod cannot be frozen through the Kubernetes API.
func (r *Runtime) Capabilities() runtimes.Capabilities { return runtimes.Capabilities{Pause: false} }

// Pause is not possible: Kubernetes has no call that freezes a Pod's processes.
func (r *Runtime) Pause(context.Context, string) error {
	return fmt.Errorf("kubernetes: pause: %w", runtimes.ErrNotSupported)
}

// Resume is not possible either (nothing is ever paused).
func (r *Runtime) Resume(context.Context, string) error {
	return fmt.Errorf("kubernetes: resume: %w", runtimes.ErrNotSupported)
}
