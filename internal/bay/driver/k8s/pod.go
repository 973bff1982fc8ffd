package k8s

import (
	"errors"
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
	// ContainerName is the runtime container of a pod (upstream's name).
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

func validateSpec(spec driver.InstanceSpec) error {
	if spec.Image == "" {
		return errors.New("k8s: instance spec has no image")
	}
	if errs := validation.IsDNS1123Subdomain(spec.Name); len(errs) > 0 {
		return fmt.Errorf("k8s: instance name %q is not a valid pod name: %s", spec.Name, strings.Join(errs, "; "))
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return fmt.Errorf("k8s: instance spec port %d out of range", spec.Port)
	}
	if spec.Volume != "" {
		if errs := validation.IsDNS1123Subdomain(spec.Volume); len(errs) > 0 {
			return fmt.Errorf("k8s: volume name %q is not a valid claim name: %s", spec.Volume, strings.Join(errs, "; "))
		}
	}
	if spec.Hostname != "" {
		if errs := validation.IsDNS1123Label(spec.Hostname); len(errs) > 0 {
			return fmt.Errorf("k8s: hostname %q: %s", spec.Hostname, strings.Join(errs, "; "))
		}
	}
	for k, v := range spec.Env {
		if errs := validation.IsEnvVarName(k); len(errs) > 0 {
			return fmt.Errorf("k8s: invalid environment variable name %q", k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("k8s: environment variable %s contains NUL", k)
		}
	}
	r := spec.Resources
	if r.NanoCPUs < 0 || r.MemoryBytes < 0 || r.PidsLimit < 0 {
		return fmt.Errorf("k8s: negative resource limit in %+v", r)
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

// podFor builds the pod of spec, gated (not schedulable until Start).
func (d *Driver) podFor(spec driver.InstanceSpec) *corev1.Pod {
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[driver.LabelRuntimePort] = strconv.Itoa(spec.Port)
	kl, orig := d.labels.encode(labels)
	if spec.NoNetwork {
		kl[d.noNetworkLabel()] = "true"
	}
	ann := map[string]string{d.runtimePortAnnotation(): strconv.Itoa(spec.Port)}
	if orig != "" {
		ann[d.labels.originalsAnnotation()] = orig
	}

	ctr := corev1.Container{
		Name:            ContainerName,
		Image:           spec.Image,
		ImagePullPolicy: d.pullPolicy(),
		Env:             envVars(spec.Env),
		WorkingDir:      WorkspacePath,
		Ports:           []corev1.ContainerPort{{Name: "runtime", ContainerPort: int32(spec.Port), Protocol: corev1.ProtocolTCP}},
		Resources:       resources(spec.Resources),
		SecurityContext: restrictedContext(),
		// The last lines of output become the termination message of a runtime
		// that dies, so Start can say why.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Namespace: d.cfg.Namespace, Labels: kl, Annotations: ann},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			// A Service named like an env var prefix (e.g. "ship") would inject
			// SHIP_PORT=tcp://... and override the runtime's own SHIP_PORT.
			EnableServiceLinks: ptr(false),
			// Sandboxes never get credentials for the cluster.
			AutomountServiceAccountToken:  ptr(false),
			TerminationGracePeriodSeconds: ptr(int64(d.cfg.StopGrace.Seconds())),
			Hostname:                      spec.Hostname,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser:           ptr(userID),
				RunAsGroup:          ptr(userID),
				RunAsNonRoot:        ptr(true),
				FSGroup:             ptr(userID),
				FSGroupChangePolicy: ptr(corev1.FSGroupChangeOnRootMismatch),
				SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers:      []corev1.Container{ctr},
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
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: tmpVolume, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{mount, {Name: tmpVolume, MountPath: "/tmp"}}
	if spec.Volume != "" && *d.cfg.ChownWorkspace {
		pod.Spec.InitContainers = []corev1.Container{{
			Name:            InitContainerName,
			Image:           spec.Image,
			ImagePullPolicy: d.pullPolicy(),
			Command:         []string{"/bin/sh", "-c", chownScript},
			VolumeMounts:    []corev1.VolumeMount{mount},
			Resources:       resources(spec.Resources),
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
// Stop made it); pending = created (not running yet); running; terminated =
// exited; being deleted = exited.
func (d *Driver) state(pod *corev1.Pod) driver.State {
	if d.gated(pod) {
		if pod.Annotations[d.stoppedAnnotation()] == "true" {
			return driver.StateExited
		}
		return driver.StateCreated
	}
	if pod.DeletionTimestamp != nil {
		return driver.StateExited
	}
	switch pod.Status.Phase {
	case corev1.PodRunning:
		return driver.StateRunning
	case corev1.PodSucceeded, corev1.PodFailed:
		return driver.StateExited
	}
	return driver.StateCreated
}

func ptr[T any](v T) *T { return &v }
