package kubernetes_test

import (
	"cmp"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
)

// hardened is what a sandbox Pod must look like, spelled out independently of the builder so that
// a change to it shows here. checkPod compares it with a Pod built here or read back from the
// API server.
type hardened struct {
	name, image          string
	cpu, memory, storage string // quantities, requests and limits alike
	args                 []string
	env                  []corev1.EnvVar
	workDir              string
	readOnlyRoot         bool
	tmpfsSize            string // the memory emptyDirs' size limit (read-only root only)
	network              bool
	grace                int64
	deadline             *int64
	runtimeClass         *string
	nodeSelector         map[string]string
	tolerations          []corev1.Toleration // the API server may add its own (DefaultTolerationSeconds)
	pullPolicy           corev1.PullPolicy
	labels               map[string]string // besides LabelManagedBy and LabelCluster
	cluster              string
	gated                bool // not started yet
}

// checkPod reports every way p differs from w.
func checkPod(t *testing.T, p *corev1.Pod, w hardened) {
	t.Helper()
	s := p.Spec
	check := func(what string, got, want any) {
		t.Helper()
		if !equal(got, want) {
			t.Errorf("%s = %v, want %v", what, shown(got), shown(want))
		}
	}
	check("name", p.Name, w.name)
	check("hostname", s.Hostname, w.name)
	check("restartPolicy", s.RestartPolicy, corev1.RestartPolicyNever)
	check("automountServiceAccountToken", s.AutomountServiceAccountToken, ptr.To(false))
	check("enableServiceLinks", s.EnableServiceLinks, ptr.To(false))
	check("shareProcessNamespace", s.ShareProcessNamespace, ptr.To(true))
	if w.gated {
		check("schedulingGates", s.SchedulingGates, []corev1.PodSchedulingGate{{Name: "dev.insien.orchestrator/start"}})
	}
	check("host namespaces", []bool{s.HostNetwork, s.HostPID, s.HostIPC}, []bool{false, false, false})
	check("pod seccomp", s.SecurityContext.SeccompProfile.Type, corev1.SeccompProfileTypeRuntimeDefault)
	check("terminationGracePeriodSeconds", s.TerminationGracePeriodSeconds, &w.grace)
	check("activeDeadlineSeconds", s.ActiveDeadlineSeconds, w.deadline)
	check("runtimeClassName", s.RuntimeClassName, w.runtimeClass)
	check("nodeSelector", len(s.NodeSelector), len(w.nodeSelector))
	for k, v := range w.nodeSelector {
		check("nodeSelector "+k, s.NodeSelector[k], v)
	}
	for _, tol := range w.tolerations {
		if !slices.ContainsFunc(s.Tolerations, func(got corev1.Toleration) bool { return got.MatchToleration(&tol) }) {
			t.Errorf("toleration %v missing from %v", tol, s.Tolerations)
		}
	}
	if w.network {
		if s.DNSPolicy != "" && s.DNSPolicy != corev1.DNSClusterFirst {
			t.Errorf("dnsPolicy = %s with network, want the cluster default", s.DNSPolicy)
		}
	} else {
		check("dnsPolicy", s.DNSPolicy, corev1.DNSNone)
		check("dns nameservers", s.DNSConfig.Nameservers, []string{"127.0.0.1"})
	}
	for k, v := range w.labels {
		check("label "+k, p.Labels[k], v)
	}
	check("label managed-by", p.Labels[runtimes.LabelManagedBy], "true")
	check("label cluster", p.Labels[runtimes.LabelCluster], w.cluster)

	if len(s.Containers) != 1 || len(s.InitContainers) != 0 || len(s.EphemeralContainers) != 0 {
		t.Fatalf("containers: %d, init %d, ephemeral %d; want exactly one", len(s.Containers), len(s.InitContainers), len(s.EphemeralContainers))
	}
	c := s.Containers[0]
	check("container name", c.Name, "sandbox")
	check("image", c.Image, w.image)
	check("command (the image's entrypoint stays)", c.Command, []string(nil))
	check("args", c.Args, w.args)
	check("env", c.Env, w.env)
	check("workingDir", c.WorkingDir, w.workDir)
	check("imagePullPolicy", c.ImagePullPolicy, w.pullPolicy)
	sc := c.SecurityContext
	check("privileged", sc.Privileged, ptr.To(false))
	check("allowPrivilegeEscalation", sc.AllowPrivilegeEscalation, ptr.To(false))
	check("capabilities drop", sc.Capabilities.Drop, []corev1.Capability{"ALL"})
	check("capabilities add", sc.Capabilities.Add, []corev1.Capability{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"})
	check("container seccomp", sc.SeccompProfile.Type, corev1.SeccompProfileTypeRuntimeDefault)
	check("readOnlyRootFilesystem", sc.ReadOnlyRootFilesystem, ptr.To(w.readOnlyRoot))
	check("runAsUser (the image's user)", sc.RunAsUser, (*int64)(nil))
	check("runAsNonRoot (the image's user)", sc.RunAsNonRoot, (*bool)(nil))
	for _, r := range []struct {
		name corev1.ResourceName
		want string
	}{{corev1.ResourceCPU, w.cpu}, {corev1.ResourceMemory, w.memory}, {corev1.ResourceEphemeralStorage, w.storage}} {
		want := resource.MustParse(r.want)
		for kind, list := range map[string]corev1.ResourceList{"limits": c.Resources.Limits, "requests": c.Resources.Requests} {
			if got := list[r.name]; got.Cmp(want) != 0 {
				t.Errorf("%s.%s = %s, want %s", kind, r.name, got.String(), r.want)
			}
		}
	}
	check("resources", len(c.Resources.Limits)+len(c.Resources.Requests), 6)

	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if !w.readOnlyRoot {
		check("volumes", len(s.Volumes)+len(c.VolumeMounts), 0)
		return
	}
	for _, at := range []string{"/tmp", w.workDir} {
		i := slices.IndexFunc(s.Volumes, func(v corev1.Volume) bool { return v.Name == mounts[at] })
		if i < 0 || s.Volumes[i].EmptyDir == nil {
			t.Errorf("%s is not an emptyDir (mounts %v, volumes %v)", at, mounts, s.Volumes)
			continue
		}
		check(at+" medium", s.Volumes[i].EmptyDir.Medium, corev1.StorageMediumMemory)
		if size := s.Volumes[i].EmptyDir.SizeLimit; size == nil || size.Cmp(resource.MustParse(w.tmpfsSize)) != 0 {
			t.Errorf("%s sizeLimit = %v, want %s", at, size, w.tmpfsSize)
		}
	}
	check("volumes", len(s.Volumes), len(mounts))
}

// equal is reflect.DeepEqual (pointers compare by their targets) for which an empty slice or
// map is nil: the API server returns nil for an empty list.
func equal(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Kind() == vb.Kind() && (va.Kind() == reflect.Slice || va.Kind() == reflect.Map) && va.Len() == 0 && vb.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// shown is v, or what it points to.
func shown(v any) any {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return rv.Elem().Interface()
	}
	return v
}

// TestPodForHardensEveryPod builds Pods from Options and Specs and checks every field: defaults
// are the configuration's, limits are exact, and the operator's placement settings pass through.
func TestPodForHardensEveryPod(t *testing.T) {
	labels := map[string]string{runtimes.LabelSandboxID: "0b9d", runtimes.LabelUserID: "u1", runtimes.LabelInstance: "replica-1"}
	tests := []struct {
		name string
		opts kubernetes.Options
		spec runtimes.Spec
		want hardened
	}{{
		name: "defaults",
		spec: runtimes.Spec{Name: "sbx-1", Image: "busybox", Labels: labels},
		want: hardened{cpu: "1", memory: "512Mi", storage: "2Gi", workDir: "/workspace", grace: 5, pullPolicy: corev1.PullIfNotPresent},
	}, {
		name: "exact limits, command, env and work dir",
		spec: runtimes.Spec{Name: "sbx-1", Image: "busybox", Labels: labels, CPU: 0.255, MemoryMB: 300, PidsLimit: 64,
			Command: []string{"sleep", "infinity"}, Env: map[string]string{"B": "2", "A": "secret value"}, WorkDir: "/home/x/../y"},
		want: hardened{cpu: "255m", memory: "300Mi", storage: "2Gi", workDir: "/home/y", grace: 5, pullPolicy: corev1.PullIfNotPresent,
			args: []string{"sleep", "infinity"}, env: []corev1.EnvVar{{Name: "A", Value: "secret value"}, {Name: "B", Value: "2"}}},
	}, {
		name: "a cluster label of the spec's own",
		spec: runtimes.Spec{Name: "sbx-1", Image: "busybox", Labels: map[string]string{runtimes.LabelCluster: "test-0a1b", runtimes.LabelSandboxID: "2"}},
		want: hardened{cpu: "1", memory: "512Mi", storage: "2Gi", workDir: "/workspace", grace: 5, pullPolicy: corev1.PullIfNotPresent},
	}, {
		name: "the smallest enforceable limits",
		spec: runtimes.Spec{Name: "sbx-1", Image: "busybox", Labels: labels, CPU: runtimes.MinCPU, MemoryMB: runtimes.MinMemoryMB},
		want: hardened{cpu: "10m", memory: "6Mi", storage: "2Gi", workDir: "/workspace", grace: 5, pullPolicy: corev1.PullIfNotPresent},
	}, {
		name: "read-only root with memory emptyDirs",
		opts: kubernetes.Options{ReadOnlyRoot: true, TmpfsSizeMB: 64, WorkDir: "/work"},
		spec: runtimes.Spec{Name: "sbx-1", Image: "busybox", Labels: labels},
		want: hardened{cpu: "1", memory: "512Mi", storage: "2Gi", workDir: "/work", grace: 5, pullPolicy: corev1.PullIfNotPresent,
			readOnlyRoot: true, tmpfsSize: "64Mi"},
	}, {
		name: "read-only root working in /tmp has one emptyDir",
		opts: kubernetes.Options{ReadOnlyRoot: true},
		spec: runtimes.Spec{Name: "sbx-1", Image: "busybox", Labels: labels, WorkDir: "/tmp"},
		want: hardened{cpu: "1", memory: "512Mi", storage: "2Gi", workDir: "/tmp", grace: 5, pullPolicy: corev1.PullIfNotPresent,
			readOnlyRoot: true, tmpfsSize: "256Mi"},
	}, {
		name: "network, placement, lifetime and grace from the operator",
		opts: kubernetes.Options{AllowNetwork: true, RuntimeClass: "gvisor", NodeSelector: map[string]string{"pool": "sandboxes"},
			Tolerations:     []corev1.Toleration{{Key: "untrusted", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			ImagePullPolicy: corev1.PullNever, StopGrace: 1500 * time.Millisecond, MaxLifetime: 24 * time.Hour},
		spec: runtimes.Spec{Name: "sbx-1", Image: "busybox", Labels: labels, DiskMB: 100},
		want: hardened{cpu: "1", memory: "512Mi", storage: "100Mi", workDir: "/workspace", grace: 2, pullPolicy: corev1.PullNever,
			network: true, deadline: ptr.To[int64](86400), runtimeClass: ptr.To("gvisor"), nodeSelector: map[string]string{"pool": "sandboxes"},
			tolerations: []corev1.Toleration{{Key: "untrusted", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := unitRuntime(t, tt.opts)
			p, err := r.PodFor(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.name, tt.want.image, tt.want.labels, tt.want.gated = tt.spec.Name, tt.spec.Image, tt.spec.Labels, true
			tt.want.cluster = cmp.Or(tt.spec.Labels[runtimes.LabelCluster], "test")
			checkPod(t, p, tt.want)
			if p.Namespace != "ns" {
				t.Errorf("namespace %q, want the driver's", p.Namespace)
			}
		})
	}
}

// TestPodForRefusesWhatCannotRun: specs the API server would refuse less clearly, or limits
// Kubernetes would not enforce, are refused before any request.
func TestPodForRefusesWhatCannotRun(t *testing.T) {
	ok := runtimes.Spec{Name: "sbx-1", Image: "busybox"}
	tests := []struct {
		name   string
		change func(*runtimes.Spec)
		want   string
	}{
		{"no image", func(s *runtimes.Spec) { s.Image = "" }, "image is required"},
		{"name not a DNS label", func(s *runtimes.Spec) { s.Name = "Sbx_1" }, "not a DNS label"},
		{"name too long for a hostname", func(s *runtimes.Spec) { s.Name = strings.Repeat("a", 64) }, "not a DNS label"},
		{"cpu under the minimum", func(s *runtimes.Spec) { s.CPU = 0.0099 }, "enforceable minimum"},
		{"cpu not a number", func(s *runtimes.Spec) { s.CPU = math.NaN() }, "invalid resource limits"},
		{"negative memory", func(s *runtimes.Spec) { s.MemoryMB = -1 }, "invalid resource limits"},
		{"memory under the minimum", func(s *runtimes.Spec) { s.MemoryMB = 5 }, "outside"},
		{"env name with =", func(s *runtimes.Spec) { s.Env = map[string]string{"A=B": "x"} }, "invalid environment variable"},
		{"env value with NUL", func(s *runtimes.Spec) { s.Env = map[string]string{"A": "x\x00"} }, "invalid environment variable"},
		{"relative work dir", func(s *runtimes.Spec) { s.WorkDir = "work" }, "must be absolute"},
		{"label value Kubernetes cannot hold", func(s *runtimes.Spec) {
			s.Labels = map[string]string{runtimes.LabelInstance: "host name with spaces"}
		}, "cannot be a Kubernetes label"},
	}
	r := unitRuntime(t, kubernetes.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := ok
			tt.change(&spec)
			_, err := r.PodFor(spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("podFor: %v, want an error saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "x\x00") {
				t.Errorf("the error shows an env value: %q", err)
			}
		})
	}
}

// TestOptionsRefused: a driver is not built from Options it could not honour.
func TestOptionsRefused(t *testing.T) {
	tests := []struct {
		name string
		opts kubernetes.Options
		want string
	}{
		{"no namespace", kubernetes.Options{Cluster: "c"}, "Namespace is required"},
		{"cluster not a DNS label", kubernetes.Options{Namespace: "ns", Cluster: "Prod_EU"}, "must be a DNS label"},
		{"negative size", kubernetes.Options{Namespace: "ns", Cluster: "c", TmpfsSizeMB: -1}, "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := kubernetes.New(tt.opts, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

// unitRuntime is a driver with opts (namespace "ns", cluster "test") for an API server that is
// never contacted: it builds Pods.
func unitRuntime(t *testing.T, opts kubernetes.Options) *kubernetes.Runtime {
	t.Helper()
	opts.Namespace, opts.Cluster, opts.Kubeconfig = "ns", "test", kubeconfigFor(t, closedAddress(t))
	r, err := kubernetes.New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
