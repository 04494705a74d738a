package kubernetes_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
	"github.com/insien/orchestrator/internal/runtimes/runtimetest"
)

// probe prints, as key=value lines, what the sandbox's kernel and filesystem enforce, then
// sleeps: the hardening seen from inside.
var probe = `for f in NoNewPrivs Seccomp CapEff CapBnd CapAmb; do echo "$f=$(grep "^$f:" /proc/self/status | cut -f2)"; done
echo "hostname=$(hostname)"
echo "pwd=$(pwd)"
echo "pid1=$([ $$ = 1 ] && echo main || echo other)"
echo "nameservers=$(grep '^nameserver' /etc/resolv.conf | cut -d' ' -f2 | tr '\n' ' ')"
touch /probe 2>/dev/null && echo root=writable || echo root=read-only
echo "tmp=$(df -k /tmp | tail -1 | awk '{print $2}')"
echo "workdir=$(df -k . | tail -1 | awk '{print $2}')"
` + runtimetest.CgroupLimitsScript + `
echo "token=$(ls /var/run/secrets/kubernetes.io/serviceaccount 2>/dev/null | wc -l)"
echo "service_links=$(env | grep '_SERVICE_HOST=' | grep -vc '^KUBERNETES_SERVICE_HOST=')"
echo "greeting=$GREETING"
echo done
exec sleep 3600`

// TestPodIsHardened reads the Pod back from the API server, once created and once running, and
// checks every field the driver sets (nothing dropped or changed by defaulting and admission);
// then checks from inside what the kernel enforces.
func TestPodIsHardened(t *testing.T) {
	c := newClusterTest(t)
	class := c.runtimeClass()
	toleration := corev1.Toleration{Key: "dev.insien/untrusted", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	r := c.runtime(kubernetes.Options{ReadOnlyRoot: true, TmpfsSizeMB: 16, WorkDir: "/work", RuntimeClass: class,
		NodeSelector: map[string]string{"kubernetes.io/os": "linux"}, Tolerations: []corev1.Toleration{toleration},
		MaxLifetime: time.Hour, StopGrace: 3 * time.Second})
	spec := c.spec()
	spec.DiskMB = 200 // the disk limit is the ephemeral-storage limit
	spec.Env = map[string]string{"GREETING": "hello"}
	spec.Command = []string{"sh", "-c", probe}

	id, err := r.Create(c.ctx(), spec)
	if err != nil {
		t.Fatal(err)
	}
	want := hardened{name: spec.Name, image: spec.Image, cpu: "250m", memory: "64Mi", storage: "200Mi",
		args: spec.Command, env: []corev1.EnvVar{{Name: "GREETING", Value: "hello"}}, workDir: "/work",
		readOnlyRoot: true, tmpfsSize: "16Mi", grace: 3, deadline: ptr.To[int64](3600), runtimeClass: &class,
		nodeSelector: map[string]string{"kubernetes.io/os": "linux"}, tolerations: []corev1.Toleration{toleration},
		pullPolicy: corev1.PullNever, labels: spec.Labels, cluster: "test", gated: true}
	t.Run("created", func(t *testing.T) { checkPod(t, c.get(id), want) })
	if err := r.Start(c.ctx(), id); err != nil {
		t.Fatal(err)
	}
	running := c.get(id)
	want.gated = false
	t.Run("running", func(t *testing.T) {
		checkPod(t, running, want)
		if running.Status.QOSClass != corev1.PodQOSGuaranteed {
			t.Errorf("QoS class %s, want Guaranteed (requests = limits)", running.Status.QOSClass)
		}
	})

	t.Run("inside", func(t *testing.T) {
		facts := map[string]string{}
		for _, line := range strings.Split(c.logs(id, "done"), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				facts[k] = strings.TrimSpace(v)
			}
		}
		for k, v := range map[string]string{
			"NoNewPrivs": "1", "Seccomp": "2", // a seccomp filter (RuntimeDefault) is in force
			"CapEff": "00000000000000fb", "CapBnd": "00000000000000fb", "CapAmb": "0000000000000000",
			"hostname": spec.Name, "pwd": "/work",
			"pid1":        "other", // the pause process is PID 1 and reaps orphans
			"nameservers": "127.0.0.1",
			"root":        "read-only", "tmp": "16384", "workdir": "16384",
			"memory": "67108864", "cpu": "25000 100000",
			// No service links, but the kubelet always sets KUBERNETES_SERVICE_HOST/PORT.
			"token": "0", "service_links": "0", "greeting": "hello",
		} {
			if facts[k] != v {
				t.Errorf("inside the sandbox %s = %q, want %q", k, facts[k], v)
			}
		}
	})
}

// runtimeClass makes a RuntimeClass for the cluster's default handler (runc), removed when the
// test ends, so that a Pod naming it is admitted and runs.
func (c *clusterTest) runtimeClass() string {
	c.t.Helper()
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: c.ns}, Handler: "runc"}
	if _, err := c.cs.NodeV1().RuntimeClasses().Create(c.ctx(), rc, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = c.cs.NodeV1().RuntimeClasses().Delete(c.ctx(), rc.Name, metav1.DeleteOptions{}) })
	return rc.Name
}

// TestStartFailures: a sandbox that cannot start fails Start with the sentinel that says why,
// in the Kubernetes scheduler's or kubelet's words, and leaves no Pod behind.
func TestStartFailures(t *testing.T) {
	c := newClusterTest(t)
	r := c.runtime(kubernetes.Options{StartTimeout: 5 * time.Second})
	tests := []struct {
		name   string
		change func(*runtimes.Spec)
		want   error
		says   string
		within time.Duration
	}{
		// The kubelet refuses at once an image it may not pull; Start does not wait for its timeout.
		{"image not on the node", func(s *runtimes.Spec) { s.Image = "insien/no-such-image:1" }, runtimes.ErrImageNotFound, "insien/no-such-image:1", 4 * time.Second},
		{"no node has the CPUs", func(s *runtimes.Spec) { s.CPU = 64 }, runtimes.ErrSpecRefused, "Insufficient cpu", 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := c.spec()
			tt.change(&spec)
			id, err := r.Create(c.ctx(), spec)
			if err != nil {
				t.Fatalf("Create: %v (the Pod is refused only once it tries to run)", err)
			}
			began := time.Now()
			err = r.Start(c.ctx(), id)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Start: %v, want %v saying %q", err, tt.want, tt.says)
			}
			if took := time.Since(began); took > tt.within {
				t.Errorf("Start took %s to fail", took)
			}
			if p := c.get(id); p != nil {
				t.Errorf("the Pod is left behind: %s", p.Status.Phase)
			}
		})
	}
}

// TestQuotaRefusesThePod: the namespace's ResourceQuota or LimitRange that a sandbox would exceed
// refuses it at Create with a QuotaError that gives Kubernetes' reason, and nothing is left; a
// sandbox within them runs.
func TestQuotaRefusesThePod(t *testing.T) {
	tests := []struct {
		name   string
		limit  func(c *clusterTest)
		exceed func(*runtimes.Spec)
		says   []string
	}{{
		name: "ResourceQuota",
		limit: func(c *clusterTest) {
			q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "sandboxes"},
				Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceLimitsMemory: resource.MustParse("100Mi")}}}
			if _, err := c.cs.CoreV1().ResourceQuotas(c.ns).Create(c.ctx(), q, metav1.CreateOptions{}); err != nil {
				c.t.Fatal(err)
			}
			c.waitQuota(q.Name)
		},
		exceed: func(s *runtimes.Spec) { s.MemoryMB = 200 },
		says:   []string{"exceeded quota: sandboxes", "requested: limits.memory=200Mi", "limited: limits.memory=100Mi"},
	}, {
		name: "LimitRange",
		limit: func(c *clusterTest) {
			lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "sandboxes"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
				Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}}}}
			if _, err := c.cs.CoreV1().LimitRanges(c.ns).Create(c.ctx(), lr, metav1.CreateOptions{}); err != nil {
				c.t.Fatal(err)
			}
		},
		exceed: func(s *runtimes.Spec) { s.CPU = 2 },
		says:   []string{"maximum cpu usage per Container is 500m, but limit is 2"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClusterTest(t)
			r := c.runtime(kubernetes.Options{})
			tt.limit(c)
			spec := c.spec()
			tt.exceed(&spec)
			_, err := r.Create(c.ctx(), spec)
			var quota *runtimes.QuotaError
			if !errors.As(err, &quota) {
				t.Fatalf("Create: %v, want a QuotaError", err)
			}
			for _, s := range tt.says {
				if !strings.Contains(quota.Reason, s) {
					t.Errorf("the reason %q does not say %q", quota.Reason, s)
				}
			}
			if got, err := r.List(c.ctx(), map[string]string{runtimes.LabelSandboxID: spec.Labels[runtimes.LabelSandboxID]}); err != nil || len(got) != 0 {
				t.Errorf("List after a refused create = %v, %v; want nothing", got, err)
			}
			c.start(r, c.spec()) // within the limits
		})
	}
}

// waitQuota waits until the quota controller has computed the quota's use: until then the
// admission plugin refuses every Pod.
func (c *clusterTest) waitQuota(name string) {
	c.t.Helper()
	ctx := c.ctx()
	for {
		q, err := c.cs.CoreV1().ResourceQuotas(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && len(q.Status.Hard) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("quota %s never computed: %v", name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
