package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/sandbox/volumes"
)

// The test cluster has no dynamic provisioner: LocalStorage stands in for a storage provider with
// static provisioning, as an operator without one would run it. Binding its volumes to claims is
// the cluster's own work (the scheduler picks, the controller-manager's binder binds).

// LocalStorage makes a StorageClass of the test's own (no provisioner, WaitForFirstConsumer: a
// claim binds when the first Pod mounting it is scheduled) with one local PersistentVolume of each
// of sizesMB, on the test cluster's node. Each is a real ext4 filesystem of exactly that size,
// loop mounted on this machine (volumes.Storage, the Docker driver's volumes), so a Pod writing
// past it gets ENOSPC from the kernel. Everything is removed when the test ends. Needs root.
func LocalStorage(t testing.TB, sizesMB ...int) (storageClass string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("local volumes are loop mounts: root only")
	}
	cs, _ := KubeClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := testNode(t, ctx, cs.CoreV1().Nodes())
	name := "orch-test-" + randomHex(4)
	labels := map[string]string{LabelTestNamespace: "true"}
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: name, Labels: labels},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		// Released volumes stay as they are: this fixture removes them, as an operator would.
		ReclaimPolicy: ptr.To(corev1.PersistentVolumeReclaimRetain),
	}
	if _, err := cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating StorageClass %s: %v", name, err)
	}
	storage := volumes.NewStorage(t.TempDir())
	var pvs []string
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A PersistentVolume still bound goes once its claim has (with the test's namespace).
		for _, pv := range pvs {
			if err := cs.CoreV1().PersistentVolumes().Delete(ctx, pv, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("deleting PersistentVolume %s: %v", pv, err)
			}
		}
		if err := cs.StorageV1().StorageClasses().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting StorageClass %s: %v", name, err)
		}
	})
	for i, sizeMB := range sizesMB {
		id := uuid.New()
		if err := storage.Create(ctx, id, sizeMB); err != nil {
			t.Fatalf("making a %d MB filesystem: %v", sizeMB, err)
		}
		// Unmounted on this side; a Pod's bind mount of it lives on until the kubelet ends it.
		t.Cleanup(func() { _ = storage.Remove(context.Background(), id) })
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i), Labels: labels},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(int64(sizeMB)<<20, resource.BinarySI)},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              name,
				VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					Local: &corev1.LocalVolumeSource{Path: storage.MountPath(id)},
				},
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
				}}}},
			},
		}
		if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating PersistentVolume %s: %v", pv.Name, err)
		}
		pvs = append(pvs, pv.Name)
	}
	return name
}

// UseLocalStorage gives cfg's volumes a LocalStorage class with volumes of sizesMB, on the
// Kubernetes driver; on Docker, volumes are the service's own images and nothing is needed.
func UseLocalStorage(t testing.TB, cfg *config.Config, sizesMB ...int) {
	t.Helper()
	if cfg.Runtime.Driver == "kubernetes" {
		cfg.Runtime.Kubernetes.VolumeStorageClass = LocalStorage(t, sizesMB...)
	}
}

// testNode is the value of the test cluster's one node's hostname label, which local volumes'
// node affinity names.
func testNode(t testing.TB, ctx context.Context, nodes interface {
	List(context.Context, metav1.ListOptions) (*corev1.NodeList, error)
}) string {
	t.Helper()
	list, err := nodes.List(ctx, metav1.ListOptions{})
	if err == nil && len(list.Items) != 1 {
		err = errors.New("want exactly one node")
	}
	if err != nil {
		t.Fatalf("the test cluster's node: %v", err)
	}
	n := list.Items[0]
	if h := n.Labels[corev1.LabelHostname]; h != "" {
		return h
	}
	return n.Name
}
