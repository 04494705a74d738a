package kubernetes

import (
	corev1 "k8s.io/api/core/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/insien/orchestrator/internal/runtimes"
)

// What the external tests of the lifecycle half (package kubernetes_test, which may import
// testenv) need from inside.

// PodFor is the Pod Create would make for spec.
func (r *Runtime) PodFor(spec runtimes.Spec) (*corev1.Pod, error) { return r.podFor(spec) }

// Clientset is the driver's client, for tests that look at the cluster directly.
func (r *Runtime) Clientset() k8s.Interface { return r.cs }
