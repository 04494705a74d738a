package kubernetes_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
	"github.com/insien/orchestrator/internal/testenv"
)

// TestVolumesAreClaims: a volume is a claim of the configured class that the cluster binds to
// real storage when its first Pod is scheduled; its data outlives the Pod, its size is the
// storage's (ENOSPC), a read-only mount refuses writes, and removing it removes the claim.
func TestVolumesAreClaims(t *testing.T) {
	c := newClusterTest(t)
	class := testenv.LocalStorage(t, 16)
	r := c.runtime(kubernetes.Options{VolumeStorageClass: class})
	vol := runtimes.VolumeSpec{Name: "vol-" + randomHex(6), SizeMB: 16,
		Labels: map[string]string{runtimes.LabelVolumeID: "v1", runtimes.LabelUserID: "user-1"}}
	if err := r.CreateVolume(c.ctx(), vol); err != nil {
		t.Fatal(err)
	}
	if err := r.CreateVolume(c.ctx(), vol); err != nil {
		t.Errorf("a retried create: %v", err)
	}
	other := vol
	other.Labels = map[string]string{runtimes.LabelVolumeID: "v2"}
	if err := r.CreateVolume(c.ctx(), other); err == nil {
		t.Error("a create of another volume under a taken name succeeded")
	}

	claim, err := c.cs.CoreV1().PersistentVolumeClaims(c.ns).Get(c.ctx(), vol.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	switch {
	case claim.Spec.StorageClassName == nil || *claim.Spec.StorageClassName != class:
		t.Errorf("storage class %v, want %s", claim.Spec.StorageClassName, class)
	case size.String() != "16Mi":
		t.Errorf("requests %s, want 16Mi", size.String())
	case len(claim.Spec.AccessModes) != 1 || claim.Spec.AccessModes[0] != corev1.ReadWriteOnce:
		t.Errorf("access modes %v", claim.Spec.AccessModes)
	case claim.Labels[runtimes.LabelManagedBy] != "true" || claim.Labels[runtimes.LabelCluster] == "" ||
		claim.Labels[runtimes.LabelVolumeID] != "v1" || claim.Labels[runtimes.LabelUserID] != "user-1":
		t.Errorf("labels %v", claim.Labels)
	case claim.Status.Phase != corev1.ClaimPending:
		// WaitForFirstConsumer: nothing binds it before a Pod mounts it.
		t.Errorf("before any Pod, the claim is %s, want Pending", claim.Status.Phase)
	}

	writer := c.spec()
	writer.Mounts = []runtimes.Mount{{Volume: vol.Name, Target: "/data"}}
	writer.Command = []string{"sh", "-c", `echo kept > /data/file && sync
dd if=/dev/zero of=/data/big bs=1M count=64; echo "dd=$?"; rm /data/big
echo done; exec sleep 3600`}
	id := c.start(r, writer)
	out := c.logs(id, "done")
	if !strings.Contains(out, "No space left on device") || !strings.Contains(out, "dd=1") {
		t.Errorf("writing 64 MB to a 16 MB volume:\n%s", out)
	}
	claim, _ = c.cs.CoreV1().PersistentVolumeClaims(c.ns).Get(c.ctx(), vol.Name, metav1.GetOptions{})
	if claim.Status.Phase != corev1.ClaimBound {
		t.Errorf("with a Pod on it, the claim is %s, want Bound", claim.Status.Phase)
	}
	if err := r.Remove(c.ctx(), id); err != nil {
		t.Fatal(err)
	}

	reader := c.spec()
	reader.Mounts = []runtimes.Mount{{Volume: vol.Name, Target: "/mnt/in", ReadOnly: true}}
	reader.Command = []string{"sh", "-c", `echo "read=$(cat /mnt/in/file)"
echo x > /mnt/in/other && echo write=done || echo write=refused
echo done; exec sleep 3600`}
	id = c.start(r, reader)
	out = c.logs(id, "done")
	if !strings.Contains(out, "read=kept\n") || !strings.Contains(out, "write=refused") {
		t.Errorf("the next Pod, read-only:\n%s", out)
	}
	p := c.get(id)
	if vols := p.Spec.Volumes; len(vols) != 1 || vols[0].PersistentVolumeClaim == nil ||
		vols[0].PersistentVolumeClaim.ClaimName != vol.Name || !vols[0].PersistentVolumeClaim.ReadOnly {
		t.Errorf("the Pod's volumes: %+v", vols)
	}
	if err := r.Remove(c.ctx(), id); err != nil {
		t.Fatal(err)
	}

	if err := r.RemoveVolume(c.ctx(), vol.Name); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the claim gone", 30*time.Second, func() bool {
		_, err := c.cs.CoreV1().PersistentVolumeClaims(c.ns).Get(c.ctx(), vol.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if err := r.RemoveVolume(c.ctx(), vol.Name); err != nil {
		t.Errorf("removing a removed volume: %v", err)
	}

	host := c.spec()
	host.Mounts = []runtimes.Mount{{Source: "/var/lib", Target: "/data"}}
	if _, err := r.Create(c.ctx(), host); !errors.Is(err, runtimes.ErrNotSupported) {
		t.Errorf("a host directory mount: %v, want ErrNotSupported", err)
	}
}

// TestVolumeWithoutStorage: a Pod whose claim no storage can satisfy (the class has no volume
// that large) fails to start as soon as the scheduler says so, with its reason, not at the start
// timeout, and leaves no Pod behind.
func TestVolumeWithoutStorage(t *testing.T) {
	c := newClusterTest(t)
	class := testenv.LocalStorage(t, 16)
	r := c.runtime(kubernetes.Options{VolumeStorageClass: class, StartTimeout: 90 * time.Second})
	vol := runtimes.VolumeSpec{Name: "vol-" + randomHex(6), SizeMB: 64, Labels: map[string]string{runtimes.LabelVolumeID: "v1"}}
	if err := r.CreateVolume(c.ctx(), vol); err != nil {
		t.Fatal(err)
	}
	spec := c.spec()
	spec.Command = []string{"sleep", "3600"}
	spec.Mounts = []runtimes.Mount{{Volume: vol.Name, Target: "/data"}}
	id, err := r.Create(c.ctx(), spec)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err = r.Start(c.ctx(), id)
	took := time.Since(began)
	var volErr *runtimes.VolumeError
	if !errors.As(err, &volErr) || !strings.Contains(volErr.Reason, "persistent volumes to bind") {
		t.Fatalf("Start: %v, want a VolumeError saying no volume can be bound", err)
	}
	if took > 30*time.Second {
		t.Errorf("Start failed after %s; the scheduler's verdict comes within seconds", took)
	}
	t.Logf("Start failed after %s: %s", took.Round(time.Millisecond), volErr.Reason)
	if p := c.get(id); p != nil {
		t.Errorf("the Pod that could not start is left: %s", p.Status.Phase)
	}
}

// TestVolumesUnderTheDeployedRole: the Role of deploy/base grants all the driver does with
// volumes (a create, a retried create, a Pod mounting the claim, the removal), run with a token
// of a ServiceAccount bound to it and to nothing else.
func TestVolumesUnderTheDeployedRole(t *testing.T) {
	c := newClusterTest(t)
	class := testenv.LocalStorage(t, 16)
	r := c.runtime(kubernetes.Options{VolumeStorageClass: class, Kubeconfig: c.roleKubeconfig("../../../deploy/base/rbac.yaml")})
	vol := runtimes.VolumeSpec{Name: "vol-" + randomHex(6), SizeMB: 16, Labels: map[string]string{runtimes.LabelVolumeID: "v1"}}
	for range 2 { // the second finds the first's claim
		if err := r.CreateVolume(c.ctx(), vol); err != nil {
			t.Fatal(err)
		}
	}
	spec := c.spec()
	spec.Command = []string{"sh", "-c", "echo hi > /data/f && cat /data/f && exec sleep 3600"}
	spec.Mounts = []runtimes.Mount{{Volume: vol.Name, Target: "/data"}}
	id := c.start(r, spec)
	c.logs(id, "hi")
	if err := r.Remove(c.ctx(), id); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveVolume(c.ctx(), vol.Name); err != nil {
		t.Fatal(err)
	}
}

// roleKubeconfig writes a kubeconfig whose credentials are a ServiceAccount's token, the account
// bound in the test's namespace to the Role that the manifest at path defines.
func (c *clusterTest) roleKubeconfig(path string) string {
	c.t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	var role rbacv1.Role
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if err := yaml.Unmarshal([]byte(doc), &role); err == nil && role.Kind == "Role" {
			break
		}
	}
	if role.Kind != "Role" {
		c.t.Fatalf("%s defines no Role", path)
	}
	role.Namespace = c.ns
	ctx := c.ctx()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "orchestrator"}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "orchestrator"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: c.ns}}}
	if _, err := c.cs.RbacV1().Roles(c.ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.cs.CoreV1().ServiceAccounts(c.ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.cs.RbacV1().RoleBindings(c.ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	token, err := c.cs.CoreV1().ServiceAccounts(c.ns).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	_, admin := testenv.KubeClient(c.t)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: admin.CAData, CertificateAuthority: admin.CAFile}
	cfg.AuthInfos["role"] = &clientcmdapi.AuthInfo{Token: token.Status.Token}
	cfg.Contexts["role"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "role", Namespace: c.ns}
	cfg.CurrentContext = "role"
	file := filepath.Join(c.t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, file); err != nil {
		c.t.Fatal(err)
	}
	return file
}

// TestVolumeFailureReasons: which of the scheduler's verdicts end a start at once as a volume
// that cannot be had, which wait (a claim an Immediate class's provisioner may still bind), and
// which are not about volumes at all.
func TestVolumeFailureReasons(t *testing.T) {
	const preemption = " preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
	for _, tt := range []struct {
		message      string
		now, atFinal bool
	}{
		{"0/1 nodes are available: 1 node(s) didn't find available persistent volumes to bind." + preemption, true, true},
		{"0/3 nodes are available: 3 node(s) didn't match PersistentVolume's node affinity." + preemption, true, true},
		{`0/1 nodes are available: persistentvolumeclaim "vol-1" not found.` + preemption, true, true},
		{`0/1 nodes are available: persistentvolumeclaim "vol-1" is being deleted.` + preemption, true, true},
		{"0/1 nodes are available: 1 node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s).", true, true},
		{"0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims." + preemption, false, true},
		{"0/1 nodes are available: 1 Insufficient cpu." + preemption, false, false},
		{"", false, false},
	} {
		p := &corev1.Pod{}
		if tt.message != "" {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				Reason: corev1.PodReasonUnschedulable, Message: tt.message}}
		}
		for _, final := range []bool{false, true} {
			err := kubernetes.VolumeFailure(p, final)
			var volErr *runtimes.VolumeError
			want := tt.now || final && tt.atFinal
			if errors.As(err, &volErr) != want || err != nil && !want {
				t.Errorf("%q (final %v): %v, want a VolumeError: %v", tt.message, final, err, want)
			}
			if volErr != nil && strings.Contains(volErr.Reason, "preemption") {
				t.Errorf("the reason keeps the part about preemption: %q", volErr.Reason)
			}
		}
	}
}
