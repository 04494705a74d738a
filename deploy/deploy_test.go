package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/testenv"
)

// The deploy test: the dev overlay of the manifests, applied to the test cluster, run the image
// that scripts/image-orchestrator.sh builds; the kubelet's probes make the Deployment Ready; a
// sandbox created through it is a Pod; deleting the orchestrator's Pod drains it (readiness false
// while it still serves) and its replacement serves the same sandbox.
func TestDeployedOrchestratorDrainsAndKeepsItsSandboxes(t *testing.T) {
	cs, restCfg := testenv.KubeClient(t)
	image := buildImage(t)
	d := deploy(t, cs, restCfg, render(t, "dev"), image)

	applied := time.Now()
	first := d.waitReady(t, "", 3*time.Minute)
	t.Logf("Deployment Ready %s after the manifests were applied (Pod %s)", time.Since(applied).Round(10*time.Millisecond), first.Name)

	api := d.client(t, d.createKey(t, first.Name))
	sb := api.createSandbox(t)
	sandboxPod := d.sandboxPod(t)
	if out := api.exec(t, sb, "echo hello from $(hostname)"); out != "hello from "+sandboxPod.Name+"\n" {
		t.Fatalf("exec in the sandbox printed %q, want the greeting from Pod %s", out, sandboxPod.Name)
	}
	// The rest of what the Role must allow the driver: pods/log, and exec for files and stats.
	for _, path := range []string{"/logs", "/metrics", "/files/list?path=/tmp"} {
		api.do(t, http.MethodGet, "/api/sandboxes/"+sb+path, nil, http.StatusOK, nil)
	}

	d.wantNoRefusals(t, first.Name)
	drain := d.deleteAndWatch(t, first.Name, api, sb)
	t.Logf("drain of %s: %s", first.Name, drain)
	if drain.notReady.IsZero() || drain.stopped.IsZero() || !drain.notReady.Before(drain.stopped) {
		t.Errorf("readiness must fail while the old Pod still serves: %s", drain)
	}
	if drain.podNotReady.IsZero() || drain.endpointNotServing.IsZero() {
		t.Errorf("the kubelet must mark the draining Pod not Ready, and its Service endpoint not serving: %s", drain)
	}
	if drain.servedWhileDraining == 0 {
		t.Errorf("no API request was served during the drain: %s", drain)
	}
	if drain.failedWhileDraining > 0 {
		t.Errorf("%d API requests failed during the drain: %s", drain.failedWhileDraining, drain)
	}

	second := d.waitReady(t, first.Name, 3*time.Minute)
	t.Logf("replacement %s Ready %s after the delete", second.Name, time.Since(drain.deleted).Round(10*time.Millisecond))

	if status := api.sandboxStatus(t, sb); status != "running" {
		t.Fatalf("after the orchestrator's Pod was replaced the sandbox is %s, want running", status)
	}
	if out := api.exec(t, sb, "echo still here"); out != "still here\n" {
		t.Fatalf("exec after the replacement printed %q", out)
	}
	if again := d.sandboxPod(t); again.UID != sandboxPod.UID {
		t.Fatalf("the sandbox's Pod was replaced (%s → %s): its state is lost", sandboxPod.UID, again.UID)
	}
	api.deleteSandbox(t, sb)
	d.wantNoRefusals(t, second.Name)
	testenv.Eventually(t, "the sandbox's Pod to be deleted", time.Minute, func() bool {
		pods, err := cs.CoreV1().Pods(d.sandboxNS).List(t.Context(), metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0
	})
}

// buildImage runs scripts/image-orchestrator.sh (the task image:orchestrator) against the test
// stack's Docker engine and imports the saved image into the test cluster's containerd.
func buildImage(t *testing.T) string {
	t.Helper()
	containerd := testenv.Require(t, testenv.EnvK8sContainerd)
	archive := filepath.Join(t.TempDir(), "image.tar")
	start := time.Now()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("../scripts/image-orchestrator.sh", "--output", archive)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+testenv.Require(t, testenv.EnvDockerHost))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/image-orchestrator.sh: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	image := lines[len(lines)-1]
	built := time.Since(start)
	if out, err := exec.Command("ctr", "--address", containerd, "--namespace", "k8s.io", "images", "import", archive).CombinedOutput(); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	t.Logf("built %s in %s, imported in %s", image, built.Round(10*time.Millisecond), (time.Since(start) - built).Round(10*time.Millisecond))
	return image
}

// deployment is the orchestrator deployed for one test, in namespaces of its own.
type deployment struct {
	cs         kubernetes.Interface
	m          *manifests
	ns         string // the orchestrator's namespace
	sandboxNS  string
	port       int
	kubeconfig string
}

// deploy applies the dev overlay (host network, one replica, images never pulled: what a
// one-machine cluster needs) with what makes this run independent of others: namespaces, a port,
// a database and a Redis index of its own, the test cluster's API server port, the image just
// built, and a token CPU request (the node's two cores are shared with every other test's
// sandboxes). Everything is removed when the test ends.
func deploy(t *testing.T, cs kubernetes.Interface, restCfg *rest.Config, m *manifests, image string) *deployment {
	t.Helper()
	ctx := t.Context()
	d := &deployment{cs: cs, m: m, port: testenv.FreePort(t), kubeconfig: testenv.Kubeconfig(t)}
	// Before the namespaces, so that cleanup deletes the Pods before it drops their database.
	secrets := map[string][]byte{
		"DATABASE_URL": []byte(testenv.DatabaseURL(t)),
		"REDIS_URL":    []byte(testenv.RedisURL(t)),
		"JWT_SECRET":   []byte("deploy-test-jwt-secret-0123456789abcdef"),
	}

	// Namespaces first: their generated names go into every other object.
	renamed := map[string]string{}
	for _, ns := range m.namespaces {
		original := ns.Name
		ns.GenerateName, ns.Name = "orch-deploy-", ""
		ns.Labels[testenv.LabelTestNamespace] = "true"
		created, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating namespace %s: %v", original, err)
		}
		t.Cleanup(func() { deleteNamespace(t, cs, created.Name) })
		renamed[original] = created.Name
	}
	d.ns, d.sandboxNS = renamed[m.deployment.Namespace], renamed[m.role.Namespace]
	if d.ns == "" || d.sandboxNS == "" {
		t.Fatalf("namespaces %v do not cover the Deployment's (%s) and the Role's (%s)", renamed, m.deployment.Namespace, m.role.Namespace)
	}

	m.serviceAccount.Namespace = d.ns
	m.role.Namespace, m.roleBinding.Namespace = d.sandboxNS, d.sandboxNS
	m.roleBinding.Subjects[0].Namespace = d.ns
	m.configMap.Namespace, m.secret.Namespace, m.service.Namespace, m.pdb.Namespace = d.ns, d.ns, d.ns, d.ns
	m.secret.Data = secrets

	dep := m.deployment
	dep.Namespace = d.ns
	spec := &dep.Spec.Template.Spec
	if !spec.HostNetwork || *dep.Spec.Replicas != 1 {
		t.Fatal("the dev overlay must give the Deployment host network and one replica")
	}
	api, err := url.Parse(restCfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range containers(spec) {
		c.Image = image
		c.Resources.Requests[corev1.ResourceCPU] = resource.MustParse("10m")
	}
	c := &spec.Containers[0]
	c.Ports[0].ContainerPort = int32(d.port)
	for name, value := range map[string]string{
		"KUBERNETES_SERVICE_HOST":           api.Hostname(),
		"KUBERNETES_SERVICE_PORT":           api.Port(),
		"ORCH_HTTP_PORT":                    strconv.Itoa(d.port),
		"ORCH_RUNTIME_KUBERNETES_NAMESPACE": d.sandboxNS,
		"ORCH_RUNTIME_CLUSTER":              d.sandboxNS,
		"ORCH_SANDBOX_DEFAULT_IMAGE":        testenv.Image(t),
		// The test counts the sandbox namespace's Pods, and the node has 2 cores to share.
		"ORCH_SANDBOX_WARM_POOL_ENABLED": "false",
	} {
		setEnv(c, name, value)
	}

	steps := []struct {
		what   string
		create func() error
	}{
		{"service account", func() error {
			_, err := cs.CoreV1().ServiceAccounts(d.ns).Create(ctx, m.serviceAccount, metav1.CreateOptions{})
			return err
		}},
		{"role", func() error {
			_, err := cs.RbacV1().Roles(d.sandboxNS).Create(ctx, m.role, metav1.CreateOptions{})
			return err
		}},
		{"role binding", func() error {
			_, err := cs.RbacV1().RoleBindings(d.sandboxNS).Create(ctx, m.roleBinding, metav1.CreateOptions{})
			return err
		}},
		{"config map", func() error {
			_, err := cs.CoreV1().ConfigMaps(d.ns).Create(ctx, m.configMap, metav1.CreateOptions{})
			return err
		}},
		{"secret", func() error {
			_, err := cs.CoreV1().Secrets(d.ns).Create(ctx, m.secret, metav1.CreateOptions{})
			return err
		}},
		{"service", func() error {
			_, err := cs.CoreV1().Services(d.ns).Create(ctx, m.service, metav1.CreateOptions{})
			return err
		}},
		{"pod disruption budget", func() error {
			_, err := cs.PolicyV1().PodDisruptionBudgets(d.ns).Create(ctx, m.pdb, metav1.CreateOptions{})
			return err
		}},
		{"deployment", func() error {
			_, err := cs.AppsV1().Deployments(d.ns).Create(ctx, dep, metav1.CreateOptions{})
			return err
		}},
	}
	for _, step := range steps {
		if err := step.create(); err != nil {
			t.Fatalf("creating the %s: %v", step.what, err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			d.dumpLogs(t)
		}
	})
	return d
}

// setEnv gives c's environment variable name the value, in place when c has it already.
func setEnv(c *corev1.Container, name, value string) {
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i] = corev1.EnvVar{Name: name, Value: value}
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

// containers are every container of spec, init containers first.
func containers(spec *corev1.PodSpec) []*corev1.Container {
	var all []*corev1.Container
	for i := range spec.InitContainers {
		all = append(all, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		all = append(all, &spec.Containers[i])
	}
	return all
}

// deleteNamespace deletes ns with everything in it, without waiting for the namespace
// controller to finish.
func deleteNamespace(t *testing.T, cs kubernetes.Interface, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zero := int64(0)
	err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting namespace %s: %v", ns, err)
	}
}

// waitReady waits for the Deployment to be available with a Ready Pod other than not (the Pod
// being replaced), and returns that Pod.
func (d *deployment) waitReady(t *testing.T, not string, within time.Duration) corev1.Pod {
	t.Helper()
	var ready corev1.Pod
	testenv.Eventually(t, "a Ready orchestrator Pod", within, func() bool {
		dep, err := d.cs.AppsV1().Deployments(d.ns).Get(t.Context(), d.m.deployment.Name, metav1.GetOptions{})
		if err != nil || dep.Status.AvailableReplicas < 1 {
			return false
		}
		pods, err := d.cs.CoreV1().Pods(d.ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, p := range pods.Items {
			if p.Name != not && p.DeletionTimestamp == nil && podReady(&p) {
				ready = p
				return true
			}
		}
		return false
	})
	return ready
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// createKey creates an API key as an operator would: the binary inside the running Pod, with the
// Pod's own configuration and Secret.
func (d *deployment) createKey(t *testing.T, pod string) string {
	t.Helper()
	out := d.kubectl(t, "exec", "--namespace", d.ns, pod, "--container", "orchestrator", "--",
		"/orchestrator", "--config", "/etc/orchestrator/config.yaml", "keys", "create", "--email", "deploy-test@example.com", "--name", "deploy-test")
	return strings.TrimSpace(out)
}

func (d *deployment) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", d.kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// sandboxPod is the one Pod in the sandbox namespace, Running.
func (d *deployment) sandboxPod(t *testing.T) corev1.Pod {
	t.Helper()
	pods, err := d.cs.CoreV1().Pods(d.sandboxNS).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning {
		t.Fatalf("want one Running sandbox Pod in %s, got %d: %+v", d.sandboxNS, len(pods.Items), pods.Items)
	}
	return pods.Items[0]
}

// wantNoRefusals fails the test when the orchestrator in pod logged an authorization refusal:
// the Role must grant all the driver does, including what fails quietly (a watch, a cleanup).
func (d *deployment) wantNoRefusals(t *testing.T, pod string) {
	t.Helper()
	raw, err := d.cs.CoreV1().Pods(d.ns).GetLogs(pod, &corev1.PodLogOptions{Container: "orchestrator"}).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("reading the logs of %s: %v", pod, err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, "forbidden") {
			t.Errorf("%s was refused something: %s", pod, line)
		}
	}
}

// dumpLogs shows what the orchestrator's Pods said, for a failed test.
func (d *deployment) dumpLogs(t *testing.T) {
	pods, err := d.cs.CoreV1().Pods(d.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		for _, c := range containers(&p.Spec) {
			raw, err := d.cs.CoreV1().Pods(d.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(context.Background())
			t.Logf("logs of %s/%s (err %v):\n%s", p.Name, c.Name, err, raw)
		}
		t.Logf("status of %s: %+v", p.Name, p.Status)
	}
}

// drainTimeline is what was seen after the orchestrator's Pod was deleted.
type drainTimeline struct {
	deleted             time.Time
	notReady            time.Time // /readyz first answered 503 while /livez answered 200
	podNotReady         time.Time // the kubelet set the Pod's Ready condition to False
	endpointNotServing  time.Time // the Service's EndpointSlice marked the Pod not serving
	stopped             time.Time // the server stopped accepting connections
	servedWhileDraining int       // API requests answered between notReady and stopped
	failedWhileDraining int
}

func (dt drainTimeline) String() string {
	since := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return at.Sub(dt.deleted).Round(10 * time.Millisecond).String()
	}
	return fmt.Sprintf("/readyz 503 at +%s, Pod not Ready at +%s, endpoint not serving at +%s, server stopped at +%s, %d requests served and %d failed while draining",
		since(dt.notReady), since(dt.podNotReady), since(dt.endpointNotServing), since(dt.stopped), dt.servedWhileDraining, dt.failedWhileDraining)
}

// notServing says whether the Service's EndpointSlices list pod as not serving: its readiness
// failed (serving, unlike ready, ignores that the Pod is terminating).
func (d *deployment) notServing(ctx context.Context, pod string) bool {
	slices, err := d.cs.DiscoveryV1().EndpointSlices(d.ns).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + d.m.service.Name,
	})
	if err != nil {
		return false
	}
	for _, slice := range slices.Items {
		for _, ep := range slice.Endpoints {
			if ep.TargetRef != nil && ep.TargetRef.Name == pod {
				return ep.Conditions.Serving != nil && !*ep.Conditions.Serving
			}
		}
	}
	return false
}

// deleteAndWatch deletes the Pod as a node drain or a rollout would (SIGTERM, grace period) and
// watches its probes, its Ready condition, its Service endpoint and the API until the server
// stops.
func (d *deployment) deleteAndWatch(t *testing.T, pod string, api *apiClient, sb string) drainTimeline {
	t.Helper()
	var (
		mu sync.Mutex
		dt drainTimeline
	)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the kubelet's view, and the Service's
		defer wg.Done()
		for ctx.Err() == nil {
			p, err := d.cs.CoreV1().Pods(d.ns).Get(ctx, pod, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return
			}
			notReady := err == nil && !podReady(p)
			notServing := d.notServing(ctx, pod)
			mu.Lock()
			if notReady && dt.podNotReady.IsZero() {
				dt.podNotReady = time.Now()
			}
			if notServing && dt.endpointNotServing.IsZero() {
				dt.endpointNotServing = time.Now()
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()

	dt.deleted = time.Now()
	if err := d.cs.CoreV1().Pods(d.ns).Delete(ctx, pod, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the orchestrator's Pod: %v", err)
	}
	// The probes' view and a client's, from the host network the Pod listens on.
	probe := &http.Client{Timeout: 2 * time.Second}
	status := func(path string) int {
		resp, err := probe.Get(fmt.Sprintf("http://127.0.0.1:%d%s", d.port, path))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for ctx.Err() == nil {
		ready, live := status("/readyz"), status("/livez")
		now := time.Now()
		mu.Lock()
		switch {
		case live == 0 && ready == 0:
			dt.stopped = now
		case ready == http.StatusServiceUnavailable && live == http.StatusOK && dt.notReady.IsZero():
			dt.notReady = now
		}
		draining, stopped := !dt.notReady.IsZero(), !dt.stopped.IsZero()
		mu.Unlock()
		if stopped {
			break
		}
		if draining {
			code, err := api.get(fmt.Sprintf("/api/sandboxes/%s", sb))
			mu.Lock()
			if err == nil && code == http.StatusOK {
				dt.servedWhileDraining++
			} else if !errors.Is(err, errConnection) {
				dt.failedWhileDraining++
			}
			mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the old Pod did not stop within 2 minutes: %s", dt)
	}
	return dt
}

// apiClient calls the deployed orchestrator with an API key.
type apiClient struct {
	base string
	key  string
	http *http.Client
}

var errConnection = errors.New("no connection")

func (d *deployment) client(t *testing.T, key string) *apiClient {
	t.Helper()
	if !apikeys.WellFormed(key) {
		t.Fatalf("keys create printed %q, not a key", key)
	}
	return &apiClient{base: fmt.Sprintf("http://127.0.0.1:%d", d.port), key: key, http: &http.Client{Timeout: time.Minute}}
}

func (a *apiClient) do(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, a.base+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, buf.String(), want)
	}
	if out != nil {
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, buf.String())
		}
	}
}

// get reports the status of a GET, errConnection when no connection could be made.
func (a *apiClient) get(path string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, a.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errConnection, err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (a *apiClient) createSandbox(t *testing.T) string {
	t.Helper()
	var sb struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	a.do(t, http.MethodPost, "/api/sandboxes", map[string]any{"cpu": 0.1, "memory_mb": 64}, http.StatusCreated, &sb)
	testenv.Eventually(t, "the sandbox to run", time.Minute, func() bool { return a.sandboxStatus(t, sb.ID) == "running" })
	return sb.ID
}

func (a *apiClient) sandboxStatus(t *testing.T, id string) string {
	t.Helper()
	var sb struct {
		Status string `json:"status"`
	}
	a.do(t, http.MethodGet, "/api/sandboxes/"+id, nil, http.StatusOK, &sb)
	return sb.Status
}

// exec runs script in the sandbox and returns its stdout, failing on a non-zero exit.
func (a *apiClient) exec(t *testing.T, id, script string) string {
	t.Helper()
	var res struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
		Stderr   string `json:"stderr"`
	}
	a.do(t, http.MethodPost, "/api/sandboxes/"+id+"/exec", map[string]any{"cmd": []string{"sh", "-c", script}}, http.StatusOK, &res)
	if res.ExitCode != 0 {
		t.Fatalf("exec %q: exit %d, stderr %q", script, res.ExitCode, res.Stderr)
	}
	return res.Stdout
}

func (a *apiClient) deleteSandbox(t *testing.T, id string) {
	t.Helper()
	a.do(t, http.MethodDelete, "/api/sandboxes/"+id, nil, http.StatusNoContent, nil)
}
