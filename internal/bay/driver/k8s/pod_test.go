package k8s

import (
	"errors"
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

func testDriver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	c, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	// The pure parts only: nothing is sent to this address.
	d, err := NewForConfig(c, &rest.Config{Host: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLabelCodec(t *testing.T) {
	long := strings.Repeat("x", 64)
	cases := []struct {
		name   string
		prefix string
		in     map[string]string
		key    string // a Kubernetes key expected in the encoding
		digest bool   // some value was digested
	}{
		{"plain", "bay", map[string]string{driver.LabelManaged: "true", driver.LabelSessionID: "sess-abc"}, "bay.session_id", false},
		{"prefix", "bay2", map[string]string{driver.LabelOwner: "default"}, "bay2.owner", false},
		{"owner with @", "bay", map[string]string{driver.LabelOwner: "alice@example.com"}, "bay.owner", true},
		{"too long", "bay", map[string]string{driver.LabelOwner: long}, "bay.owner", true},
		{"empty value", "bay", map[string]string{driver.LabelCargoID: ""}, "bay.cargo_id", false},
		{"foreign key", "bay", map[string]string{"team": "a b"}, "team", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := labelCodec{prefix: tc.prefix}
			enc, orig := c.encode(tc.in)
			if _, ok := enc[tc.key]; !ok {
				t.Fatalf("encode(%v) = %v, want key %s", tc.in, enc, tc.key)
			}
			for k, v := range enc {
				if errs := validation.IsQualifiedName(k); len(errs) > 0 {
					t.Errorf("key %q invalid: %v", k, errs)
				}
				if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
					t.Errorf("value %q invalid: %v", v, errs)
				}
			}
			if (orig != "") != tc.digest {
				t.Errorf("originals annotation %q, want digest=%v", orig, tc.digest)
			}
			ann := map[string]string{}
			if orig != "" {
				ann[c.originalsAnnotation()] = orig
			}
			if got := c.decode(enc, ann); !maps.Equal(got, tc.in) {
				t.Errorf("decode(encode(%v)) = %v", tc.in, got)
			}
			sel, err := c.selector(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range enc {
				if !strings.Contains(sel, k+"="+v) {
					t.Errorf("selector %q lacks %s=%s", sel, k, v)
				}
			}
		})
	}
}

func TestPodFor(t *testing.T) {
	d := testDriver(t, Config{ImagePullSecrets: []string{"regcred"}, PullPolicy: PullNever})
	spec := driver.SessionSpec{
		ID: "x", Volume: "bay-cargo-x", Runtime: "gvisor", Labels: map[string]string{driver.LabelOwner: "o"},
		Containers: []driver.ContainerSpec{{Name: "ship", Image: "ship:latest", Port: 8123,
			Env:       map[string]string{"B": "2", "A": "1"},
			Resources: driver.Resources{NanoCPUs: 1_500_000_000, MemoryBytes: 1 << 30}}},
	}
	pod := d.podFor(spec)
	if pod.Name != "bay-session-x" || pod.Labels["bay.session_id"] != "x" || len(pod.Spec.HostAliases) != 0 {
		t.Errorf("pod %s labels %v host aliases %v", pod.Name, pod.Labels, pod.Spec.HostAliases)
	}
	if !d.gated(pod) || d.state(pod) != driver.StateCreated {
		t.Errorf("a created pod must be gated (state %s)", d.state(pod))
	}
	c := pod.Spec.Containers[0]
	if c.Env[0].Name != "A" || c.Env[1].Name != "B" {
		t.Errorf("env not sorted: %v", c.Env)
	}
	if got := c.Resources.Limits.Cpu().MilliValue(); got != 1500 {
		t.Errorf("cpu limit %dm", got)
	}
	if got := c.Resources.Requests.Cpu().MilliValue(); got != 750 {
		t.Errorf("cpu request %dm, want half the limit", got)
	}
	if c.ImagePullPolicy != corev1.PullNever || pod.Spec.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("pull policy %s, secrets %v", c.ImagePullPolicy, pod.Spec.ImagePullSecrets)
	}
	if pod.Spec.RuntimeClassName == nil || *pod.Spec.RuntimeClassName != "gvisor" {
		t.Errorf("runtime class %v", pod.Spec.RuntimeClassName)
	}
	if pod.Labels["bay.runtime_port"] != "8123" {
		t.Errorf("labels %v lack the runtime port", pod.Labels)
	}
	// The init container is the only root one, with CHOWN and nothing else.
	if len(pod.Spec.InitContainers) != 1 {
		t.Fatalf("init containers %v", pod.Spec.InitContainers)
	}
	ic := pod.Spec.InitContainers[0].SecurityContext
	if *ic.RunAsUser != 0 || len(ic.Capabilities.Add) != 1 || ic.Capabilities.Add[0] != "CHOWN" || *ic.AllowPrivilegeEscalation {
		t.Errorf("init container security context %+v", ic)
	}

	noChown := testDriver(t, Config{ChownWorkspace: Bool(false)})
	if p := noChown.podFor(spec); len(p.Spec.InitContainers) != 0 {
		t.Errorf("chown_workspace false still adds %v", p.Spec.InitContainers)
	}
	spec.Volume = ""
	if p := d.podFor(spec); len(p.Spec.InitContainers) != 0 || p.Spec.Volumes[0].EmptyDir == nil {
		t.Errorf("no volume: want an emptyDir and no init container, got %+v", p.Spec)
	}

	// Stop's copy: gated again, marked stopped, with nothing the server filled in.
	ran := pod.DeepCopy()
	ran.UID, ran.ResourceVersion, ran.Spec.NodeName, ran.Spec.SchedulingGates = "u1", "42", "node-1", nil
	ran.Status.Phase = corev1.PodRunning
	re := d.recreated(ran)
	if re.UID != "" || re.ResourceVersion != "" || re.Spec.NodeName != "" || d.state(re) != driver.StateExited {
		t.Errorf("recreated pod: uid %q rv %q node %q state %s", re.UID, re.ResourceVersion, re.Spec.NodeName, d.state(re))
	}
}

// A session of two containers is one pod: a container each, with its own
// port, the one workspace claim and /tmp of its own, every name resolving to
// the pod's loopback address.
func TestPodForTwoContainers(t *testing.T) {
	d := testDriver(t, Config{})
	pod := d.podFor(driver.SessionSpec{ID: "y", Volume: "bay-cargo-y", Containers: []driver.ContainerSpec{
		{Name: "ship", Image: "ship:latest", Port: 8123, Env: map[string]string{"SHIP_PORT": "8123"}},
		{Name: "browser", Image: "gull:latest", Port: 8115, Labels: map[string]string{driver.LabelRuntimeType: "gull"}},
	}})
	if len(pod.Spec.Containers) != 2 || pod.Spec.Containers[0].Name != "ship" || pod.Spec.Containers[1].Name != "browser" {
		t.Fatalf("containers %+v", pod.Spec.Containers)
	}
	if ha := pod.Spec.HostAliases; len(ha) != 1 || ha[0].IP != "127.0.0.1" || strings.Join(ha[0].Hostnames, ",") != "ship,browser" {
		t.Errorf("host aliases %+v", ha)
	}
	tmps := map[string]bool{}
	for _, c := range pod.Spec.Containers {
		if c.SecurityContext == nil || !*c.SecurityContext.ReadOnlyRootFilesystem || *c.SecurityContext.AllowPrivilegeEscalation {
			t.Errorf("container %s security context %+v", c.Name, c.SecurityContext)
		}
		if len(c.VolumeMounts) != 2 || c.VolumeMounts[0].Name != workspaceVolume || c.VolumeMounts[1].MountPath != "/tmp" {
			t.Errorf("container %s mounts %+v", c.Name, c.VolumeMounts)
		}
		tmps[c.VolumeMounts[1].Name] = true
	}
	if len(tmps) != 2 {
		t.Errorf("the containers share /tmp: %v", tmps)
	}
	if _, ok := pod.Labels["bay.runtime_type"]; ok {
		t.Errorf("a container's own label on the pod: %v", pod.Labels)
	}
	pod.Spec.SchedulingGates = nil
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.9", ContainerStatuses: []corev1.ContainerStatus{
		{Name: "ship", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	if running(pod) || d.state(pod) == driver.StateRunning {
		t.Errorf("one of two containers running: running %v, state %s", running(pod), d.state(pod))
	}
	pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses,
		corev1.ContainerStatus{Name: "browser", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	if !running(pod) || d.state(pod) != driver.StateRunning {
		t.Errorf("both running: running %v, state %s", running(pod), d.state(pod))
	}
	if got := d.endpoint(pod, pod.Spec.Containers[1]); got != "http://10.244.0.9:8115" {
		t.Errorf("browser endpoint %s", got)
	}
	s := d.session(pod)
	if s.ID != "y" || s.Containers[1].ID != "bay-session-y/browser" || s.State != driver.StateRunning {
		t.Errorf("session %+v", s)
	}
}

func TestValidateSpec(t *testing.T) {
	ok := func() driver.SessionSpec {
		return driver.SessionSpec{ID: "a", Containers: []driver.ContainerSpec{{Name: "ship", Image: "ship", Port: 8123}}}
	}
	cases := []struct {
		name   string
		mutate func(*driver.SessionSpec)
	}{
		{"no container", func(s *driver.SessionSpec) { s.Containers = nil }},
		{"no image", func(s *driver.SessionSpec) { s.Containers[0].Image = "" }},
		{"bad id", func(s *driver.SessionSpec) { s.ID = "Bay_Session" }},
		{"no id", func(s *driver.SessionSpec) { s.ID = "" }},
		{"bad port", func(s *driver.SessionSpec) { s.Containers[0].Port = 70000 }},
		{"bad volume", func(s *driver.SessionSpec) { s.Volume = "a/b" }},
		{"bad env name", func(s *driver.SessionSpec) { s.Containers[0].Env = map[string]string{"A=B": "x"} }},
		{"NUL in env", func(s *driver.SessionSpec) { s.Containers[0].Env = map[string]string{"A": "x\x00y"} }},
		{"negative memory", func(s *driver.SessionSpec) { s.Containers[0].Resources.MemoryBytes = -1 }},
		{"bad container name", func(s *driver.SessionSpec) { s.Containers[0].Name = "a.b" }},
		{"init container's name", func(s *driver.SessionSpec) { s.Containers[0].Name = InitContainerName }},
		{"same name twice", func(s *driver.SessionSpec) {
			s.Containers = append(s.Containers, driver.ContainerSpec{Name: "ship", Image: "i", Port: 1})
		}},
		{"same port twice", func(s *driver.SessionSpec) {
			s.Containers = append(s.Containers, driver.ContainerSpec{Name: "b", Image: "i", Port: 8123})
		}},
	}
	if err := validateSpec(ok()); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	for _, tc := range cases {
		s := ok()
		tc.mutate(&s)
		if err := validateSpec(s); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestFailure(t *testing.T) {
	waiting := func(name, reason string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "msg"}}}
	}
	terminated := func(name string, code int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: "Error", Message: "boom"}}}
	}
	cases := []struct {
		name    string
		status  corev1.PodStatus
		wantErr bool
		wantIs  error
	}{
		{"pending", corev1.PodStatus{Phase: corev1.PodPending}, false, nil},
		{"creating", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting(ContainerName, "ContainerCreating")}}, false, nil},
		{"never pull", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting(ContainerName, "ErrImageNeverPull")}}, true, driver.ErrImageNotFound},
		{"backoff", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting(ContainerName, "ImagePullBackOff")}}, true, driver.ErrImageNotFound},
		{"init image", corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{waiting(InitContainerName, "ErrImagePull")}}, true, driver.ErrImageNotFound},
		{"config error", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting(ContainerName, "CreateContainerConfigError")}}, true, nil},
		{"init done", corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{terminated(InitContainerName, 0)}}, false, nil},
		{"init failed", corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{terminated(InitContainerName, 1)}}, true, nil},
		{"runtime exited", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{terminated(ContainerName, 2)}}, true, nil},
		{"runtime exited 0", corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{terminated(ContainerName, 0)}}, true, nil},
		{"evicted", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"}, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := failure(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: tc.status})
			if (err != nil) != tc.wantErr {
				t.Fatalf("failure = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("%v does not wrap %v", err, tc.wantIs)
			}
			if err != nil && errors.Is(err, driver.ErrImageNotFound) && tc.wantIs == nil {
				t.Errorf("%v wrongly wraps ErrImageNotFound", err)
			}
		})
	}
}

func TestEndpointAndState(t *testing.T) {
	d := testDriver(t, Config{})
	pod := d.podFor(driver.SessionSpec{ID: "p", Containers: []driver.ContainerSpec{{Name: ContainerName, Image: "i", Port: 8123}}})
	pod.Spec.SchedulingGates = nil
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.7",
		ContainerStatuses: []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	c := pod.Spec.Containers[0]
	if !running(pod) || d.endpoint(pod, c) != "http://10.244.0.7:8123" || d.state(pod) != driver.StateRunning {
		t.Errorf("running %v endpoint %s state %s", running(pod), d.endpoint(pod, c), d.state(pod))
	}
	pod.Status.PodIP = "fd00::7"
	if d.endpoint(pod, c) != "http://[fd00::7]:8123" {
		t.Errorf("IPv6 endpoint %s", d.endpoint(pod, c))
	}
	pod.Status.Phase = corev1.PodFailed
	if d.state(pod) != driver.StateExited {
		t.Errorf("failed pod state %s", d.state(pod))
	}
}

func TestConfigDefaults(t *testing.T) {
	for _, bad := range []Config{
		{Namespace: "Bad_NS"}, {DefaultStorageSize: "lots"}, {PullPolicy: "sometimes"},
		{LabelPrefix: "a/b"}, {ImagePullSecrets: []string{"Not A Name"}},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	c, err := Config{}.withDefaults()
	if err != nil || c.Namespace != "bay" || c.DefaultStorageSize != "1Gi" || !*c.ChownWorkspace || c.PullPolicy != PullIfNotPresent {
		t.Errorf("defaults %+v, %v", c, err)
	}
}
