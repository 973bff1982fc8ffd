package k8s

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// Fixed facts of every sandbox pod (DESIGN.md rule 11; as on Docker).
const (
	WorkspacePath = "/workspace"
	// ContainerName is upstream's name of a pod's runtime container, and the
	// name of Ship's container in Bay's default profiles (each container of a
	// session is named as in its profile).
	ContainerName = "ship"
	// InitContainerName makes the workspace volume's root writable for uid 1000.
	InitContainerName = "workspace-init"
	workspaceVolume   = "workspace"
	tmpVolume         = "tmp"
	userID            = int64(DefaultWorkspaceUser)
)

// chownScript gives the volume root (the mount point only: never recursive,
// never following a link) to uid/gid 1000 when it is not theirs already.
const chownScript = `d=` + WorkspacePath + `; [ "$(stat -c %u:%g "$d")" = "1000:1000" ] || chown 1000:1000 "$d"`

// gate keeps a created pod from being scheduled until Start removes it: Create
// does not run anything, as on Docker (create, then start).
func (d *Driver) gate() string { return d.cfg.LabelPrefix + "/not-started" }

// stoppedAnnotation marks a gated pod that Stop re-created: its state is exited.
func (d *Driver) stoppedAnnotation() string { return d.cfg.LabelPrefix + "/stopped" }

// noNetworkLabel marks the pods of no_network profiles; the namespace's
// NetworkPolicy noNetworkPolicy denies them all egress.
func (d *Driver) noNetworkLabel() string { return d.cfg.LabelPrefix + ".no_network" }

// noNetworkPolicy is the name of that NetworkPolicy.
func (d *Driver) noNetworkPolicy() string { return d.cfg.LabelPrefix + "-no-network" }

// runtimePortAnnotation records the runtime port (Start's endpoint).
func (d *Driver) runtimePortAnnotation() string { return d.cfg.LabelPrefix + "/runtime-port" }

// podName is the pod of a session (COMPAT §6).
func podName(id string) string { return "bay-session-" + id }

func validateSpec(spec driver.SessionSpec) error {
	if errs := validation.IsDNS1123Subdomain(podName(spec.ID)); spec.ID == "" || len(errs) > 0 {
		return fmt.Errorf("k8s: session id %q does not make a valid pod name: %s", spec.ID, strings.Join(errs, "; "))
	}
	if len(spec.Containers) == 0 {
		return fmt.Errorf("k8s: session %s has no container", spec.ID)
	}
	if spec.Volume != "" {
		if errs := validation.IsDNS1123Subdomain(spec.Volume); len(errs) > 0 {
			return fmt.Errorf("k8s: volume name %q is not a valid claim name: %s", spec.Volume, strings.Join(errs, "; "))
		}
	}
	names, ports := map[string]bool{}, map[int]bool{}
	for _, c := range spec.Containers {
		if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 || c.Name == InitContainerName {
			return fmt.Errorf("k8s: container name %q: %s", c.Name, strings.Join(errs, "; "))
		}
		if names[c.Name] {
			return fmt.Errorf("k8s: two containers called %q", c.Name)
		}
		names[c.Name] = true
		if c.Image == "" {
			return fmt.Errorf("k8s: container %s has no image", c.Name)
		}
		if c.Port < 1 || c.Port > 65535 {
			return fmt.Errorf("k8s: container %s: port %d out of range", c.Name, c.Port)
		}
		if ports[c.Port] { // one network namespace
			return fmt.Errorf("k8s: container %s: port %d is another container's of the pod", c.Name, c.Port)
		}
		ports[c.Port] = true
		for k, v := range c.Env {
			if errs := validation.IsEnvVarName(k); len(errs) > 0 {
				return fmt.Errorf("k8s: invalid environment variable name %q", k)
			}
			if strings.ContainsRune(v, 0) {
				return fmt.Errorf("k8s: environment variable %s contains NUL", k)
			}
		}
		r := c.Resources
		if r.NanoCPUs < 0 || r.MemoryBytes < 0 || r.PidsLimit < 0 {
			return fmt.Errorf("k8s: negative resource limit in %+v", r)
		}
	}
	return nil
}

func (d *Driver) pullPolicy() corev1.PullPolicy {
	switch d.cfg.PullPolicy {
	case PullAlways:
		return corev1.PullAlways
	case PullNever:
		return corev1.PullNever
	}
	return corev1.PullIfNotPresent
}

// resources: limits from the profile; requests cpu = half the limit, memory =
// the limit (contract §4.2), so the scheduler never overcommits memory.
func resources(r driver.Resources) corev1.ResourceRequirements {
	var rr corev1.ResourceRequirements
	if r.NanoCPUs == 0 && r.MemoryBytes == 0 {
		return rr
	}
	rr.Limits = corev1.ResourceList{}
	rr.Requests = corev1.ResourceList{}
	if r.NanoCPUs > 0 {
		milli := max(r.NanoCPUs/1_000_000, 1)
		rr.Limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(milli, resource.DecimalSI)
		rr.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(max(milli/2, 1), resource.DecimalSI)
	}
	if r.MemoryBytes > 0 {
		rr.Limits[corev1.ResourceMemory] = *resource.NewQuantity(r.MemoryBytes, resource.BinarySI)
		rr.Requests[corev1.ResourceMemory] = *resource.NewQuantity(r.MemoryBytes, resource.BinarySI)
	}
	return rr
}

func envVars(env map[string]string) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, corev1.EnvVar{Name: k, Value: env[k]})
	}
	return out
}

// restrictedContext is the container security context of the runtime: as
// strict as the Docker driver's (uid 1000, no capability, no privilege
// escalation, the runtime's default seccomp profile).
func restrictedContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsUser:                ptr(userID),
		RunAsGroup:               ptr(userID),
		RunAsNonRoot:             ptr(true),
		AllowPrivilegeEscalation: ptr(false),
		Privileged:               ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		ReadOnlyRootFilesystem:   ptr(true),
	}
}

// podFor builds the pod of a session, gated (not schedulable until Start):
// one container per session container, sharing the pod's network namespace
// (each reaches the others by name: hostAliases map every name to the
// loopback address) and the workspace claim.
func (d *Driver) podFor(spec driver.SessionSpec) *corev1.Pod {
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if len(spec.Containers) == 1 {
		maps.Copy(labels, spec.Containers[0].Labels)
	}
	labels[driver.LabelSessionID] = spec.ID
	labels[driver.LabelRuntimePort] = strconv.Itoa(spec.Containers[0].Port)
	kl, orig := d.labels.encode(labels)
	if spec.NoNetwork {
		kl[d.noNetworkLabel()] = "true"
	}
	ann := map[string]string{d.runtimePortAnnotation(): strconv.Itoa(spec.Containers[0].Port)}
	if orig != "" {
		ann[d.labels.originalsAnnotation()] = orig
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName(spec.ID), Namespace: d.cfg.Namespace, Labels: kl, Annotations: ann},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			// A Service named like an env var prefix (e.g. "ship") would inject
			// SHIP_PORT=tcp://... and override the runtime's own SHIP_PORT.
			EnableServiceLinks: ptr(false),
			// Sandboxes never get credentials for the cluster.
			AutomountServiceAccountToken:  ptr(false),
			TerminationGracePeriodSeconds: ptr(int64(d.cfg.StopGrace.Seconds())),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser:           ptr(userID),
				RunAsGroup:          ptr(userID),
				RunAsNonRoot:        ptr(true),
				FSGroup:             ptr(userID),
				FSGroupChangePolicy: ptr(corev1.FSGroupChangeOnRootMismatch),
				SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			SchedulingGates: []corev1.PodSchedulingGate{{Name: d.gate()}},
		},
	}
	if spec.Runtime != "" {
		// A profile's OCI runtime (e.g. runsc) is a RuntimeClass on Kubernetes.
		pod.Spec.RuntimeClassName = ptr(spec.Runtime)
	}
	for _, s := range d.cfg.ImagePullSecrets {
		pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	if spec.Volume != "" {
		pod.Spec.Volumes = []corev1.Volume{{Name: workspaceVolume, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: spec.Volume}}}}
	} else {
		pod.Spec.Volumes = []corev1.Volume{{Name: workspaceVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	}
	mount := corev1.VolumeMount{Name: workspaceVolume, MountPath: WorkspacePath}
	// The image is read-only; what the runtime and user code write goes to the
	// workspace or to a private /tmp (memory-backed, counted in the pod's memory).
	var names []string
	for i, c := range spec.Containers {
		tmp := tmpVolume
		if i > 0 {
			tmp += "-" + strconv.Itoa(i)
		}
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: tmp, VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name:            c.Name,
			Image:           c.Image,
			ImagePullPolicy: d.pullPolicy(),
			Env:             envVars(c.Env),
			WorkingDir:      WorkspacePath,
			Ports:           []corev1.ContainerPort{{Name: portName(c.Name), ContainerPort: int32(c.Port), Protocol: corev1.ProtocolTCP}},
			Resources:       resources(c.Resources),
			SecurityContext: restrictedContext(),
			VolumeMounts:    []corev1.VolumeMount{mount, {Name: tmp, MountPath: "/tmp"}},
			// The last lines of output become the termination message of a runtime
			// that dies, so Start can say why.
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		})
		names = append(names, c.Name)
	}
	if len(spec.Containers) > 1 {
		// As on Docker's session network: the browser opens http://ship:8000/.
		pod.Spec.HostAliases = []corev1.HostAlias{{IP: "127.0.0.1", Hostnames: names}}
	}
	if spec.Volume != "" && *d.cfg.ChownWorkspace {
		primary := spec.Containers[0]
		pod.Spec.InitContainers = []corev1.Container{{
			Name:            InitContainerName,
			Image:           primary.Image,
			ImagePullPolicy: d.pullPolicy(),
			Command:         []string{"/bin/sh", "-c", chownScript},
			VolumeMounts:    []corev1.VolumeMount{mount},
			Resources:       resources(primary.Resources),
			SecurityContext: &corev1.SecurityContext{
				RunAsUser:                ptr(int64(0)),
				RunAsGroup:               ptr(int64(0)),
				RunAsNonRoot:             ptr(false),
				AllowPrivilegeEscalation: ptr(false),
				Privileged:               ptr(false),
				Capabilities: &corev1.Capabilities{
					Drop: []corev1.Capability{"ALL"},
					Add:  []corev1.Capability{"CHOWN"},
				},
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}}
	}
	return pod
}

// portName names a container's runtime port (at most 15 characters).
func portName(container string) string {
	if container == ContainerName || len(container) > 13 {
		return "runtime"
	}
	return "rt-" + container
}

// recreated returns a copy of pod for a fresh create: what the API server
// filled in (uid, node, status, ...) dropped, gated again, and marked stopped.
func (d *Driver) recreated(pod *corev1.Pod) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace,
			Labels: maps.Clone(pod.Labels), Annotations: maps.Clone(pod.Annotations),
		},
		Spec: *pod.Spec.DeepCopy(),
	}
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[d.stoppedAnnotation()] = "true"
	p.Spec.NodeName = ""
	p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: d.gate()}}
	return p
}

func (d *Driver) gated(pod *corev1.Pod) bool {
	for _, g := range pod.Spec.SchedulingGates {
		if g.Name == d.gate() {
			return true
		}
	}
	return false
}

// state maps a pod to the driver's states: gated = created (or exited when
// Stop made it); pending = created (not running yet); running when every
// container runs; a container ended, the pod ended or being deleted = exited.
func (d *Driver) state(pod *corev1.Pod) driver.State {
	return driver.Aggregate(d.containers(pod))
}

// containers observes the containers of a pod, in the order of its spec.
func (d *Driver) containers(pod *corev1.Pod) []driver.Container {
	whole := driver.State("")
	switch {
	case d.gated(pod) && pod.Annotations[d.stoppedAnnotation()] == "true":
		whole = driver.StateExited
	case d.gated(pod):
		whole = driver.StateCreated
	case pod.DeletionTimestamp != nil, pod.Status.Phase == corev1.PodSucceeded, pod.Status.Phase == corev1.PodFailed:
		whole = driver.StateExited
	}
	out := make([]driver.Container, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		st := whole
		if st == "" {
			st = driver.StateCreated
			for _, cs := range pod.Status.ContainerStatuses {
				if cs.Name != c.Name {
					continue
				}
				switch {
				case cs.State.Running != nil && pod.Status.Phase == corev1.PodRunning:
					st = driver.StateRunning
				case cs.State.Terminated != nil:
					st = driver.StateExited
				}
			}
		}
		out = append(out, driver.Container{Name: c.Name, ID: pod.Name + "/" + c.Name, State: st})
	}
	return out
}

func ptr[T any](v T) *T { return &v }
