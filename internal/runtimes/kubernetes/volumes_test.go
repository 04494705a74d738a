package kubernetes_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
