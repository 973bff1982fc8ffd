package k8s_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/driver/drivertest"
	"github.com/shipyard/shipyard/internal/bay/driver/k8s"
	"github.com/shipyard/shipyard/internal/bay/driver/k8s/k8stest"
)

// shipImage is the real runtime image, imported into the test cluster by
// scripts/kube.sh up.
func shipImage() string {
	if img := os.Getenv("BAY_TEST_SHIP_IMAGE"); img != "" {
		return img
	}
	return "ship:latest"
}

func newDriver(t *testing.T, c *k8stest.Cluster, cfg k8s.Config) *k8s.Driver {
	t.Helper()
	if cfg.Namespace == "" {
		cfg.Namespace = c.Namespace(t, "bay-drivertest")
	}
	cfg.Kubeconfig = c.Kubeconfig
	if cfg.PullPolicy == "" {
		cfg.PullPolicy = k8s.PullNever
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 90 * time.Second
	}
	if cfg.Endpoint == "" {
		// These tests dial the runtime with a plain client (the conformance
		// suite checks http://host:port); this machine is on the pod network.
		// test/k8s covers the API server's pod proxy, auto's choice outside a cluster.
		cfg.Endpoint = k8s.EndpointPodIP
	}
	d, err := k8s.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestConformance runs the driver suite against the real cluster with the
// real Ship image; files are written and read through the API server's exec
// (kubelet → containerd), as the instance's user.
func TestConformance(t *testing.T) {
	c := k8stest.New(t)
	d := newDriver(t, c, k8s.Config{})
	ns := d.Config().Namespace
	exec := func(ctx context.Context, ct driver.Container, argv ...string) (string, error) {
		pod, name, _ := strings.Cut(ct.ID, "/")
		return c.Exec(ctx, ns, pod, name, argv...)
	}
	drivertest.Run(t, d, drivertest.Options{
		Image:        shipImage(),
		PortEnv:      "SHIP_PORT",
		HealthPath:   "/health",
		ReadyTimeout: 90 * time.Second,
		WriteFile: func(ctx context.Context, ct driver.Container, path, data string) error {
			_, err := exec(ctx, ct, "sh", "-c", `printf %s "$1" > "$2"`, "sh", data, path)
			return err
		},
		ReadFile: func(ctx context.Context, ct driver.Container, path string) (string, error) {
			return exec(ctx, ct, "cat", path)
		},
		Dial: func(ctx context.Context, ct driver.Container, addr string) error {
			host, port, _ := net.SplitHostPort(addr)
			_, err := exec(ctx, ct, "bash", "-c", `exec 3<>"/dev/tcp/$1/$2"`, "bash", host, port)
			return err
		},
	})
}

// spec is a session of one Ship container.
func spec(id, volume string, labels map[string]string) driver.SessionSpec {
	return driver.SessionSpec{
		ID: id, Labels: labels, Volume: volume,
		Containers: []driver.ContainerSpec{{Name: k8s.ContainerName, Image: shipImage(), Port: 8123,
			Env:       map[string]string{"BAY_TEST": "yes"},
			Resources: driver.Resources{NanoCPUs: 500_000_000, MemoryBytes: 256 << 20}}},
	}
}

// TestPodReadBack: what the API server stored for a started pod is as strict
// as the Docker driver's container: read back, not assumed.
func TestPodReadBack(t *testing.T) {
	c := k8stest.New(t)
	d := newDriver(t, c, k8s.Config{})
	ctx := t.Context()
	ns := d.Config().Namespace
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ship"}, Spec: corev1.ServiceSpec{
		Ports: []corev1.ServicePort{{Port: 8123}}, Selector: map[string]string{"none": "none"}}}
	if _, err := c.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{driver.LabelManaged: "true", driver.LabelOwner: "alice@example.com"}
	if err := d.CreateVolume(ctx, "bay-cargo-readback", labels, 64); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateSession(ctx, spec("readback", "bay-cargo-readback", labels)); err != nil {
		t.Fatal(err)
	}
	started, err := d.StartSession(ctx, "readback")
	if err != nil {
		t.Fatal(err)
	}
	if ep := started.Containers[0].Endpoint; !strings.HasPrefix(ep, "http://") || !strings.HasSuffix(ep, ":8123") {
		t.Errorf("endpoint %q, want http://<pod IP>:8123", ep)
	}
	const id = "bay-session-readback"

	pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, id, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps := pod.Spec
	checks := []struct {
		name string
		ok   bool
	}{
		{"restartPolicy Never", ps.RestartPolicy == corev1.RestartPolicyNever},
		{"enableServiceLinks false", ps.EnableServiceLinks != nil && !*ps.EnableServiceLinks},
		{"no service account token", ps.AutomountServiceAccountToken != nil && !*ps.AutomountServiceAccountToken},
		{"pod runAsNonRoot", ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot},
		{"pod uid 1000", ps.SecurityContext.RunAsUser != nil && *ps.SecurityContext.RunAsUser == 1000},
		{"pod gid 1000", ps.SecurityContext.RunAsGroup != nil && *ps.SecurityContext.RunAsGroup == 1000},
		{"fsGroup 1000", ps.SecurityContext.FSGroup != nil && *ps.SecurityContext.FSGroup == 1000},
		{"pod seccomp RuntimeDefault", ps.SecurityContext.SeccompProfile != nil && ps.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"one runtime container", len(ps.Containers) == 1 && ps.Containers[0].Name == k8s.ContainerName},
		{"PVC mounted at /workspace", len(ps.Volumes) == 2 && ps.Volumes[0].PersistentVolumeClaim != nil &&
			ps.Volumes[0].PersistentVolumeClaim.ClaimName == "bay-cargo-readback"},
		{"no scheduling gate left", len(ps.SchedulingGates) == 0},
		{"owner label digested", pod.Labels["bay.owner"] != "alice@example.com" && strings.HasPrefix(pod.Labels["bay.owner"], "h-")},
	}
	ctr := ps.Containers[0]
	sc := ctr.SecurityContext
	checks = append(checks, []struct {
		name string
		ok   bool
	}{
		{"container uid 1000", sc.RunAsUser != nil && *sc.RunAsUser == 1000},
		{"container runAsNonRoot", sc.RunAsNonRoot != nil && *sc.RunAsNonRoot},
		{"no privilege escalation", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
		{"not privileged", sc.Privileged != nil && !*sc.Privileged},
		{"drop ALL", sc.Capabilities != nil && len(sc.Capabilities.Drop) == 1 && sc.Capabilities.Drop[0] == "ALL" && len(sc.Capabilities.Add) == 0},
		{"container seccomp RuntimeDefault", sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"read-only root filesystem", sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
		{"cpu limit 500m", ctr.Resources.Limits.Cpu().MilliValue() == 500},
		{"memory limit 256Mi", ctr.Resources.Limits.Memory().Value() == 256<<20},
		{"memory request = limit", ctr.Resources.Requests.Memory().Value() == 256<<20},
		{"pull policy Never", ctr.ImagePullPolicy == corev1.PullNever},
	}...)
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("%s: not so in the stored pod", ck.name)
		}
	}

	// What the kernel says about the running process: uid/gid 1000, no capabilities, no_new_privs.
	status, err := c.Exec(ctx, ns, id, k8s.ContainerName, "sh", "-c", "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/1/status; env")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1000\n1000\n", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2", "BAY_TEST=yes"} {
		if !strings.Contains(status, want) {
			t.Errorf("in the container: %q missing from\n%s", want, status)
		}
	}
	// A Service called "ship" exists: with service links its SHIP_PORT=tcp://...
	// would override the runtime's port. Only Kubernetes' own service is announced.
	if !strings.Contains(status, "SHIP_PORT=8123\n") || strings.Contains(status, "SHIP_SERVICE_HOST") {
		t.Errorf("service links reached the container:\n%s", status)
	}
	// The image is read-only, /tmp is not.
	if out, err := c.Exec(ctx, ns, id, k8s.ContainerName, "sh", "-c",
		"touch /etc/probe 2>/dev/null && echo root-writable; touch /tmp/probe && echo tmp-ok"); err != nil || out != "tmp-ok\n" {
		t.Errorf("root filesystem / tmp: %q, %v", out, err)
	}
	// The workspace is writable by uid 1000 (hostPath volumes ignore fsGroup: the init container's work).
	if _, err := c.Exec(ctx, ns, id, k8s.ContainerName, "sh", "-c", "echo ok > /workspace/probe && test -O /workspace"); err != nil {
		t.Errorf("/workspace not writable/owned by uid 1000: %v", err)
	}

	// The PVC has the requested size and the labels as given.
	pvc, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "bay-cargo-readback", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("64Mi")) != 0 {
		t.Errorf("PVC size %s, want 64Mi", got.String())
	}
	list, err := d.ListSessions(ctx, map[string]string{driver.LabelOwner: "alice@example.com"})
	if err != nil || len(list) != 1 || list[0].Labels[driver.LabelOwner] != "alice@example.com" {
		t.Errorf("List by an owner that is no valid label value = %+v, %v; want the pod with the exact owner", list, err)
	}
	if err := d.DeleteVolume(ctx, "bay-cargo-readback"); !errors.Is(err, driver.ErrInUse) {
		t.Errorf("DeleteVolume of a mounted PVC = %v, want driver.ErrInUse", err)
	}
	if err := d.DestroySession(ctx, "readback"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteVolume(ctx, "bay-cargo-readback"); err != nil {
		t.Errorf("DeleteVolume after DestroySession: %v", err)
	}
}

// TestStartFailures: a start that cannot succeed fails clearly and within
// the start timeout; Destroy then leaves nothing.
func TestStartFailures(t *testing.T) {
	c := k8stest.New(t)
	d := newDriver(t, c, k8s.Config{StartTimeout: 8 * time.Second})
	ns := d.Config().Namespace
	cases := []struct {
		name    string
		mutate  func(*driver.SessionSpec)
		wantIs  error
		wantMsg string
		within  time.Duration
	}{
		{"image missing", func(s *driver.SessionSpec) { s.Containers[0].Image = "shipyard-no-such-image:v0" }, driver.ErrImageNotFound, "ErrImageNeverPull", 10 * time.Second},
		{"unschedulable", func(s *driver.SessionSpec) { s.Containers[0].Resources.MemoryBytes = 1 << 50 }, driver.ErrUnschedulable, "Insufficient memory", 20 * time.Second},
		{"volume claim missing", func(s *driver.SessionSpec) { s.Volume = "bay-cargo-missing" }, driver.ErrUnschedulable, "bay-cargo-missing", 20 * time.Second},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := spec("fail-"+string(rune('a'+i)), "", map[string]string{"bay.test": "fail"})
			tc.mutate(&s)
			if _, err := d.CreateSession(ctx, s); err != nil {
				t.Fatal(err)
			}
			id := "bay-session-" + s.ID
			begin := time.Now()
			_, err := d.StartSession(ctx, s.ID)
			took := time.Since(begin)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error does not wrap %v", tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error does not say %q", tc.wantMsg)
			}
			if took > tc.within {
				t.Errorf("took %s, want under %s", took, tc.within)
			}
			if err := d.DestroySession(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Client.CoreV1().Pods(ns).Get(ctx, id, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("pod still there after DestroySession: %v", err)
			}
		})
	}
}

// TestStartOfDeletedPod: a pod deleted behind the driver's back is
// ErrNotFound for StartSession and InspectSession.
func TestStartOfDeletedPod(t *testing.T) {
	c := k8stest.New(t)
	d := newDriver(t, c, k8s.Config{})
	ctx := t.Context()
	if _, err := d.CreateSession(ctx, spec("gone", "", nil)); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.CoreV1().Pods(d.Config().Namespace).Delete(ctx, "bay-session-gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.StartSession(ctx, "gone"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("StartSession of a deleted pod = %v, want driver.ErrNotFound", err)
	}
	if s, err := d.InspectSession(ctx, "gone"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("InspectSession = %+v, %v; want driver.ErrNotFound", s, err)
	}
}

// TestNoNetwork: a no_network session's pod carries the label that the
// namespace's egress-denying NetworkPolicy selects, and Bay still reaches it
// (ingress is open). Enforcement is the CNI plugin's (the test cluster's
// bridge plugin does not enforce policies).
func TestNoNetwork(t *testing.T) {
	c := k8stest.New(t)
	d := newDriver(t, c, k8s.Config{})
	ctx := t.Context()
	ns := d.Config().Namespace
	s := spec("nonet", "", map[string]string{"bay.test": "nonet"})
	s.NoNetwork = true
	if _, err := d.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := d.StartSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	const id = "bay-session-nonet"
	pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, id, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Labels["bay.no_network"] != "true" {
		t.Errorf("pod labels %v", pod.Labels)
	}
	np, err := c.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, "bay-no-network", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if np.Spec.PodSelector.MatchLabels["bay.no_network"] != "true" || len(np.Spec.PolicyTypes) != 1 ||
		np.Spec.PolicyTypes[0] != "Egress" || len(np.Spec.Egress) != 0 {
		t.Errorf("network policy %+v: want all egress denied to no_network pods", np.Spec)
	}
	// A second one reuses the policy.
	s.ID = "nonet-2"
	if _, err := d.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// TestCreateCutOffInFlight: a CreateSession whose context ends while the API
// server is storing the pod leaves no pod behind, now or later (the docker
// driver's test of the same name: a create finished after its client went).
func TestCreateCutOffInFlight(t *testing.T) {
	c := k8stest.New(t)
	d := newDriver(t, c, k8s.Config{})
	ctx := t.Context()
	// A pod's create takes a few milliseconds here: cut at each of them.
	var afters []time.Duration
	for ms := 1; ms <= 16; ms++ {
		afters = append(afters, time.Duration(ms)*time.Millisecond)
	}
	var made []string
	for i, after := range afters {
		cctx, cancel := context.WithTimeout(ctx, after)
		s, err := d.CreateSession(cctx, spec(fmt.Sprintf("cut-%d", i), "", map[string]string{"bay.test": "cut"}))
		cancel()
		switch {
		case err == nil:
			made = append(made, "bay-session-"+s.ID)
		case !errors.Is(err, context.DeadlineExceeded):
			t.Fatalf("CreateSession cut off after %v: %v, want a deadline error", after, err)
		}
	}
	if len(made) == len(afters) {
		t.Fatal("no create was cut off: the test exercised nothing")
	}
	t.Logf("%d of %d creates answered", len(made), len(afters))
	time.Sleep(2 * time.Second) // what the API server was still storing has been stored
	pods, err := c.Client.CoreV1().Pods(d.Config().Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, p := range pods.Items {
		if !slices.Contains(made, p.Name) && p.DeletionTimestamp == nil {
			left = append(left, p.Name)
		}
	}
	if len(left) > 0 {
		t.Fatalf("cut-off creates left %v behind (%d creates answered)", left, len(made))
	}
}
