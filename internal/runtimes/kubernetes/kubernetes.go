// Package kubernetes runs sandboxes as hardened Pods through a Kubernetes API server,
// implementing runtimes.Runtime and runtimes.Interactive with client-go so that the orchestration
// code never sees a Kubernetes type.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Options configures the driver. Zero values get the defaults documented on each field.
type Options struct {
	Kubeconfig string // path; empty: the in-cluster service account
	Namespace  string // where sandbox Pods (and their NetworkPolicy) live; required
	// Cluster is runtime.cluster: a Pod whose Spec has no LabelCluster gets this one, and with
	// AllowNetwork the egress NetworkPolicy selects it, so orchestrators sharing a namespace keep
	// their own network setting. A DNS label, since it names that policy; default runtime.cluster's.
	Cluster         string
	RuntimeClass    string // Pod runtimeClassName (gvisor, kata); empty: the cluster default
	ImagePullPolicy corev1.PullPolicy
	NodeSelector    map[string]string
	Tolerations     []corev1.Toleration
	AllowNetwork    bool          // false: a NetworkPolicy denies sandbox Pods all ingress and egress
	ReadOnlyRoot    bool          // read-only image filesystem; /tmp and WorkDir become sized emptyDirs
	TmpfsSizeMB     int64         // size of each of those emptyDirs (memory-backed)
	WorkDir         string        // default /workspace (Spec.WorkDir wins when set)
	StopGrace       time.Duration // terminationGracePeriodSeconds when Stop is given none
	// MaxLifetime becomes the Pod's activeDeadlineSeconds: a backstop that ends a sandbox the
	// orchestrator forgot (its database lost, every replica down), 0: none.
	MaxLifetime time.Duration
	// StartTimeout bounds Start's wait for the Pod to run (scheduling, image pull, container
	// start); default 90 s.
	StartTimeout time.Duration
	// RequestTimeout bounds each call to the API server (watches excepted), so that a server
	// that stopped answering is ErrUnavailable rather than a hang; default 30 s.
	RequestTimeout time.Duration
	// VolumeStorageClass is the StorageClass of volumes' claims (VolumeStore); empty: the
	// cluster's default class.
	VolumeStorageClass string
}

// Defaults of the Options that have no configuration key.
const (
	defaultStartTimeout   = 90 * time.Second
	defaultRequestTimeout = 30 * time.Second
	// dialTimeout bounds a TCP connection to the API server: one that does not answer is down.
	dialTimeout = 5 * time.Second
	// Client-side rate limit: client-go's default (5 requests/s, bursts of 10) would queue a
	// few concurrent creates behind each other; the API server has its own fairness.
	clientQPS   = 50
	clientBurst = 100
)

// Runtime is the Kubernetes implementation of runtimes.Runtime and runtimes.Interactive. It is
// safe for concurrent use.
type Runtime struct {
	cs   k8s.Interface
	rest *rest.Config
	opts Options
	log  *zap.Logger
	in   *interactive // working inside sandboxes: see process.go

	isolation isolation // the NetworkPolicy, ensured before the first Pod
	removals  removals  // the Pods deleted through Stop and Remove, for Watch
}

var _ runtimes.Runtime = (*Runtime)(nil)

// New builds a driver for the cluster that opts.Kubeconfig (or the in-cluster environment) names.
// It does not contact the API server: call Ping to check it is reachable.
func New(opts Options, log *zap.Logger) (*Runtime, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	cfg, err := restConfig(opts.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	cfg.UserAgent = "insien-orchestrator"
	cfg.Dial = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	r := &Runtime{cs: cs, rest: cfg, opts: opts, log: log.Named("kubernetes")}
	r.in = newInteractive(r)
	return r, nil
}

// withDefaults fills the zero Options and refuses the invalid ones.
func withDefaults(opts Options) (Options, error) {
	if opts.Cluster == "" {
		opts.Cluster = defaults.Runtime.Cluster
	}
	if opts.WorkDir == "" {
		opts.WorkDir = runtimes.DefaultWorkDir
	}
	if opts.ImagePullPolicy == "" {
		opts.ImagePullPolicy = corev1.PullPolicy(defaults.Runtime.Kubernetes.ImagePullPolicy)
	}
	if opts.TmpfsSizeMB == 0 {
		opts.TmpfsSizeMB = defaults.Runtime.TmpfsSizeMB
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = defaults.Runtime.StopGrace
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = defaultStartTimeout
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = defaultRequestTimeout
	}
	switch {
	case opts.Namespace == "":
		return opts, errors.New("kubernetes: Namespace is required")
	case len(content.IsDNS1123Label(egressPolicyPrefix+opts.Cluster)) > 0:
		return opts, fmt.Errorf("kubernetes: Cluster %q must be a DNS label (lower case letters, digits and '-') of at most %d characters",
			opts.Cluster, 63-len(egressPolicyPrefix))
	case opts.TmpfsSizeMB < 0, opts.StopGrace < 0, opts.MaxLifetime < 0,
		opts.StartTimeout < 0, opts.RequestTimeout < 0:
		return opts, errors.New("kubernetes: sizes and durations must be positive")
	}
	return opts, nil
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

// Capabilities: a running Pod cannot be frozen through the Kubernetes API, pods/exec has no user
// (everything runs as the container's), pods/log serves stdout and stderr as one stream, and a
// Pod's limits stay those it was created with (see Claim). The disk limit is the Pod's
// ephemeral-storage limit, which the kubelet enforces by evicting the Pod (not with ENOSPC).
// Volumes are claims (VolumeStore).
func (r *Runtime) Capabilities() runtimes.Capabilities {
	return runtimes.Capabilities{Pause: false, ExecUser: false, LogStreams: false, LiveResize: false, DiskLimit: true, Volumes: true}
}

// Pause is not possible: Kubernetes has no call that freezes a Pod's processes.
func (r *Runtime) Pause(context.Context, string) error {
	return fmt.Errorf("kubernetes: pause: %w", runtimes.ErrNotSupported)
}

// Resume is not possible either (nothing is ever paused).
func (r *Runtime) Resume(context.Context, string) error {
	return fmt.Errorf("kubernetes: resume: %w", runtimes.ErrNotSupported)
}
