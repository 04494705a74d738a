// Package deploy_test checks the Kubernetes manifests (base/, and the dev/ overlay): offline, the promises
// they make to the service (config.yaml valid, the grace period longer than the drain, probes on
// the right endpoints, the hardening); on the test cluster, that they really deploy it.
package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joho/godotenv"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/insien/orchestrator/app"
	"github.com/insien/orchestrator/internal/platform/config"
)

// manifests is what `kubectl kustomize deploy/<dir>` renders, one field per object.
type manifests struct {
	namespaces     []*corev1.Namespace
	serviceAccount *corev1.ServiceAccount
	role           *rbacv1.Role
	roleBinding    *rbacv1.RoleBinding
	configMap      *corev1.ConfigMap
	secret         *corev1.Secret
	deployment     *appsv1.Deployment
	service        *corev1.Service
	pdb            *policyv1.PodDisruptionBudget
}

// render runs kustomize over dir (base, dev; kubectl's built-in kustomize: the one an operator
// runs) and decodes every object. An object of a kind it does not know fails the test, so that a
// new manifest is checked here and applied by the deploy test.
func render(t testing.TB, dir string) *manifests {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl not found: install Debian's kubernetes-client (scripts/k8s.sh needs it too)")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize deploy/%s: %v\n%s", dir, err, stderr.String())
	}
	m := &manifests{}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(&stdout))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the rendered manifests: %v", err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decoding a rendered manifest: %v\n%s", err, doc)
		}
		if err := m.add(obj); err != nil {
			t.Fatal(err)
		}
	}
	if m.serviceAccount == nil || m.role == nil || m.roleBinding == nil || m.configMap == nil ||
		m.secret == nil || m.deployment == nil || m.service == nil || m.pdb == nil || len(m.namespaces) != 2 {
		t.Fatalf("the rendered manifests lack an object: %+v", m)
	}
	return m
}

func (m *manifests) add(obj runtime.Object) error {
	once := func(set bool) error {
		if set {
			return fmt.Errorf("two %T in the manifests", obj)
		}
		return nil
	}
	var err error
	switch o := obj.(type) {
	case *corev1.Namespace:
		m.namespaces = append(m.namespaces, o)
	case *corev1.ServiceAccount:
		err, m.serviceAccount = once(m.serviceAccount != nil), o
	case *rbacv1.Role:
		err, m.role = once(m.role != nil), o
	case *rbacv1.RoleBinding:
		err, m.roleBinding = once(m.roleBinding != nil), o
	case *corev1.ConfigMap:
		err, m.configMap = once(m.configMap != nil), o
	case *corev1.Secret:
		err, m.secret = once(m.secret != nil), o
	case *appsv1.Deployment:
		err, m.deployment = once(m.deployment != nil), o
	case *corev1.Service:
		err, m.service = once(m.service != nil), o
	case *policyv1.PodDisruptionBudget:
		err, m.pdb = once(m.pdb != nil), o
	default:
		err = fmt.Errorf("the manifests hold a %T that this test does not know", obj)
	}
	return err
}

// container is the Deployment's orchestrator container.
func (m *manifests) container() *corev1.Container {
	return &m.deployment.Spec.Template.Spec.Containers[0]
}

// loadConfig loads config.yaml from the ConfigMap with env as the whole environment, as the
// container would.
func (m *manifests) loadConfig(t testing.TB, env map[string]string) (*config.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(m.configMap.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Load(config.Options{File: path, DotEnv: os.DevNull, LookupEnv: func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}})
}

// secretEnv is the Secret's data, as the container's environment sees it.
func (m *manifests) secretEnv() map[string]string {
	env := map[string]string{}
	for k, v := range m.secret.Data {
		env[k] = string(v)
	}
	return env
}

// workingEnv is a Secret an operator filled in.
var workingEnv = map[string]string{
	"DATABASE_URL": "postgres://orchestrator:pw@postgres.example:5432/insien_sandbox?sslmode=require",
	"REDIS_URL":    "redis://:pw@redis.example:6379/0",
	"JWT_SECRET":   "0123456789abcdef0123456789abcdef",
}

func TestSecretPlaceholdersStopStartUp(t *testing.T) {
	m := render(t, "base")
	placeholders, err := godotenv.Read("base/secret.env")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.secretEnv(); !maps.Equal(got, placeholders) {
		t.Fatalf("the Secret is not secret.env: %v", got)
	}
	for name, value := range placeholders {
		if value != "" && !strings.HasPrefix(value, "REPLACE-ME") {
			t.Errorf("secret.env %s = %q: a placeholder must say REPLACE-ME or be empty", name, value)
		}
	}
	if placeholders["JWT_SECRET"] != "" {
		t.Error("secret.env JWT_SECRET must be empty: the service refuses to start without one, and a shared value would be a known key")
	}
	_, err = m.loadConfig(t, placeholders)
	var cfgErr *config.Error
	if !errors.As(err, &cfgErr) || cfgErr.Key != "database.url" {
		t.Fatalf("start-up with the placeholder Secret: error %v, want one naming database.url", err)
	}
}

func TestManifestsKeepTheServicesPromises(t *testing.T) {
	m := render(t, "base")
	cfg, err := m.loadConfig(t, workingEnv)
	if err != nil {
		t.Fatalf("config.yaml of the ConfigMap with a filled-in Secret: %v", err)
	}
	pod := m.deployment.Spec.Template
	c := m.container()
	grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	port := c.Ports[0]

	checks := []struct {
		name string
		ok   bool
		got  any
	}{
		{"runtime.driver is kubernetes", cfg.Runtime.Driver == "kubernetes", cfg.Runtime.Driver},
		{"in-cluster credentials (empty kubeconfig)", cfg.Runtime.Kubernetes.Kubeconfig == "", cfg.Runtime.Kubernetes.Kubeconfig},
		{"the Role is in the sandbox namespace", m.role.Namespace == cfg.Runtime.Kubernetes.Namespace, m.role.Namespace},
		{"the sandbox namespace is created", m.hasNamespace(cfg.Runtime.Kubernetes.Namespace), cfg.Runtime.Kubernetes.Namespace},
		{"the RoleBinding grants the Role", m.roleBinding.RoleRef.Name == m.role.Name && m.roleBinding.Namespace == m.role.Namespace, m.roleBinding.RoleRef},
		{"the RoleBinding names the Pods' service account", len(m.roleBinding.Subjects) == 1 &&
			m.roleBinding.Subjects[0].Name == pod.Spec.ServiceAccountName &&
			m.roleBinding.Subjects[0].Namespace == m.deployment.Namespace &&
			m.serviceAccount.Name == pod.Spec.ServiceAccountName, m.roleBinding.Subjects},
		{"the grace period outlasts the service's stop (drain + shutdown + closing)", grace > app.StopTimeout(cfg), grace},
		{"the container listens on http.port", port.Name == "http" && int(port.ContainerPort) == cfg.HTTP.Port, port},
		{"startupProbe on /livez", probes(c.StartupProbe, "/livez"), c.StartupProbe},
		{"livenessProbe on /livez", probes(c.LivenessProbe, "/livez"), c.LivenessProbe},
		{"readinessProbe on /readyz", probes(c.ReadinessProbe, "/readyz"), c.ReadinessProbe},
		{"readiness notices the drain within the drain delay", time.Duration(c.ReadinessProbe.PeriodSeconds*c.ReadinessProbe.FailureThreshold)*time.Second < cfg.HTTP.DrainDelay, c.ReadinessProbe},
		{"the startup probe waits out a slow start", time.Duration(c.StartupProbe.PeriodSeconds*c.StartupProbe.FailureThreshold)*time.Second >
			cfg.Database.ConnectTimeout+cfg.Health.CheckTimeout, c.StartupProbe},
		{"the config.yaml ConfigMap is what --config reads", configMap(volumeAt(pod.Spec, c, "/etc/orchestrator")) == m.configMap.Name &&
			strings.Join(c.Args, " ") == "--config /etc/orchestrator/config.yaml serve", c.Args},
		{"the Secret is the environment", len(c.EnvFrom) == 1 && c.EnvFrom[0].SecretRef != nil && c.EnvFrom[0].SecretRef.Name == m.secret.Name, c.EnvFrom},
		{"/tmp is writable (uploads spool there)", volumeAt(pod.Spec, c, "/tmp") != nil && volumeAt(pod.Spec, c, "/tmp").EmptyDir != nil, c.VolumeMounts},
		{"the Service selects the Pods", selects(m.service.Spec.Selector, pod.Labels), m.service.Spec.Selector},
		{"the PodDisruptionBudget selects the Pods", selects(m.pdb.Spec.Selector.MatchLabels, pod.Labels), m.pdb.Spec.Selector},
		{"a rollout keeps every replica serving", m.deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() == 0, m.deployment.Spec.Strategy},
		{"two replicas", *m.deployment.Spec.Replicas == 2, *m.deployment.Spec.Replicas},
		{"the Pod runs as a non-root user", *pod.Spec.SecurityContext.RunAsNonRoot && *pod.Spec.SecurityContext.RunAsUser != 0, pod.Spec.SecurityContext},
		{"seccomp RuntimeDefault", pod.Spec.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault, pod.Spec.SecurityContext.SeccompProfile},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s: got %+v", ch.name, ch.got)
		}
	}
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		sc := c.SecurityContext
		hardened := sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation &&
			sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem &&
			sc.Capabilities != nil && len(sc.Capabilities.Drop) == 1 && sc.Capabilities.Drop[0] == "ALL" && len(sc.Capabilities.Add) == 0
		if !hardened {
			t.Errorf("container %s: want no privilege escalation, a read-only root and every capability dropped, got %+v", c.Name, sc)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("container %s: want CPU and memory requests and a memory limit, got %+v", c.Name, c.Resources)
		}
	}
}

func (m *manifests) hasNamespace(name string) bool {
	for _, ns := range m.namespaces {
		if ns.Name == name {
			return true
		}
	}
	return false
}

func probes(p *corev1.Probe, path string) bool {
	return p != nil && p.HTTPGet != nil && p.HTTPGet.Path == path && p.HTTPGet.Port.String() == "http"
}

// volumeAt is the volume c mounts at path, or nil.
func volumeAt(spec corev1.PodSpec, c *corev1.Container, path string) *corev1.Volume {
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != path {
			continue
		}
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == vm.Name {
				return &spec.Volumes[i]
			}
		}
	}
	return nil
}

// configMap names the ConfigMap behind v, "" when it is none.
func configMap(v *corev1.Volume) string {
	if v == nil || v.ConfigMap == nil {
		return ""
	}
	return v.ConfigMap.Name
}

func selects(selector, podLabels map[string]string) bool {
	return len(selector) > 0 && labels.SelectorFromSet(selector).Matches(labels.Set(podLabels))
}
