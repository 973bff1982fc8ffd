// Package k8s is the Kubernetes driver of Bay (client-go): an instance is a
// Pod, a volume is a PersistentVolumeClaim, networks are no-ops (the
// containers of one pod share its network namespace; pods reach each other by
// pod IP).
//
// The driver.Driver seam is Docker-shaped (create, then start; stop keeps the
// instance). A pod cannot be created stopped nor stopped and started again,
// so:
//
//   - Create creates the pod with a scheduling gate: it exists (List sees it,
//     with all its labels) but nothing is scheduled or run; state "created".
//   - Start removes the gate and watches the pod (no polling) until its
//     runtime container runs and it has an IP; the endpoint is
//     http://<pod IP>:<port>. Scheduling, volume binding, image and container
//     failures end the wait early with a clear error; the pod is left for the
//     caller to Destroy, as on Docker.
//   - Stop deletes the pod (grace period) and creates it again, gated and
//     marked stopped; state "exited"; Start runs it again.
//   - Destroy deletes the pod at once (grace period 0).
//
// The instance id is the pod name. Every pod runs as uid/gid 1000 with
// fsGroup 1000, runAsNonRoot, no privilege escalation, all capabilities
// dropped and the RuntimeDefault seccomp profile, no service account token
// and no service links.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// cleanupTimeout bounds the best-effort removal of a half-made pod after the
// caller's context has gone.
const cleanupTimeout = 30 * time.Second

// Driver runs instances as pods. It is safe for concurrent use.
type Driver struct {
	cfg    Config
	cs     kubernetes.Interface
	rest   *rest.Config
	log    *slog.Logger
	labels labelCodec
}

var _ driver.Driver = (*Driver)(nil)

// New returns a driver for the cluster of cfg.Kubeconfig (or the in-cluster
// config). It does not contact the API server; call Ping to check it answers.
func New(cfg Config) (*Driver, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rc, err := restConfig(c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	// Bay is one client of many on a shared API server: moderate limits, and a
	// user agent that names it in audit logs.
	rc.QPS, rc.Burst = 50, 100
	rc.UserAgent = "shipyard-bay"
	// API warnings (e.g. Pod Security "warn" levels) go to the log, not to stderr.
	rc.WarningHandler = warningLogger{log: c.Logger.With("component", "driver.k8s")}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("k8s: client: %w", err)
	}
	return NewWithClient(c, cs, rc), nil
}

// NewWithClient returns a driver using cs (rc may be nil). cfg must carry
// defaults already when called directly; New is the usual entry.
func NewWithClient(cfg Config, cs kubernetes.Interface, rc *rest.Config) *Driver {
	if c, err := cfg.withDefaults(); err == nil {
		cfg = c
	}
	return &Driver{cfg: cfg, cs: cs, rest: rc, log: cfg.Logger.With("component", "driver.k8s"),
		labels: labelCodec{prefix: cfg.LabelPrefix}}
}

// warningLogger logs the API server's warnings at debug level.
type warningLogger struct{ log *slog.Logger }

func (w warningLogger) HandleWarningHeader(code int, agent, text string) {
	w.log.Debug("api server warning", "code", code, "warning", text)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("k8s: kubeconfig %s: %w", kubeconfig, err)
		}
		return rc, nil
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoConfig, err)
	}
	return rc, nil
}

// Config returns the effective configuration (defaults filled in).
func (d *Driver) Config() Config { return d.cfg }

// Client returns the clientset (tests read pods back through it).
func (d *Driver) Client() kubernetes.Interface { return d.cs }

// Close is a no-op (client-go keeps no resources that need closing); it
// exists so the app closes every driver alike.
func (d *Driver) Close() error { return nil }

func (d *Driver) pods() podClient { return d.cs.CoreV1().Pods(d.cfg.Namespace) }

type podClient interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Pod, error)
}

// Ping checks the API server answers and Bay may list pods in its namespace
// (the least the Role grants; no cluster-wide permission is needed).
func (d *Driver) Ping(ctx context.Context) error {
	_, err := d.cs.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return fmt.Errorf("k8s: list pods in namespace %s: %w", d.cfg.Namespace, err)
	}
	return nil
}

// wrap adds context to an API error and maps "not found" to driver.ErrNotFound.
func wrap(op, ref string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("k8s: %s %s: %w: %w", op, ref, driver.ErrNotFound, err)
	}
	if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota") {
		return fmt.Errorf("k8s: %s %s: the namespace's resource quota is exhausted: %w: %w", op, ref, driver.ErrUnschedulable, err)
	}
	return fmt.Errorf("k8s: %s %s: %w", op, ref, err)
}

// Create creates the pod, gated: nothing is scheduled until Start.
func (d *Driver) Create(ctx context.Context, spec driver.InstanceSpec) (string, error) {
	if err := validateSpec(spec); err != nil {
		return "", err
	}
	pod := d.podFor(spec)
	if spec.NoNetwork {
		if err := d.ensureNoNetworkPolicy(ctx); err != nil {
			return "", err
		}
	}
	created, err := d.createPod(ctx, pod)
	if apierrors.IsAlreadyExists(err) {
		// A retry of a create whose answer was lost: the same instance is fine,
		// someone else's pod of that name is a conflict.
		if cur, gerr := d.pods().Get(ctx, pod.Name, metav1.GetOptions{}); gerr == nil && sameLabels(cur.Labels, pod.Labels) && d.gated(cur) {
			return cur.Name, nil
		}
		return "", fmt.Errorf("k8s: create pod %s: a pod of that name exists: %w", pod.Name, err)
	}
	if err != nil {
		if ctx.Err() != nil {
			d.removeIfOurs(ctx, pod)
		}
		return "", wrap("create pod", pod.Name, err)
	}
	d.log.DebugContext(ctx, "pod created", "pod", created.Name, "image", spec.Image, "volume", spec.Volume)
	return created.Name, nil
}

// ensureNoNetworkPolicy makes sure the namespace's NetworkPolicy that denies
// all egress to pods labelled no_network exists (ingress stays open: Bay
// reaches the runtime). It is shared by those pods and never removed. Like any
// NetworkPolicy it needs a CNI plugin that enforces it.
func (d *Driver) ensureNoNetworkPolicy(ctx context.Context) error {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: d.noNetworkPolicy(), Namespace: d.cfg.Namespace,
			Labels: map[string]string{d.labels.key(driver.LabelManaged): "true"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{d.noNetworkLabel(): "true"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress:      []networkingv1.NetworkPolicyEgressRule{},
		},
	}
	_, err := d.cs.NetworkingV1().NetworkPolicies(d.cfg.Namespace).Create(ctx, np, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return wrap("create network policy", np.Name, err)
	}
	return nil
}

// createPod creates pod, retrying briefly while the namespace's default
// service account does not exist yet (the controller manager creates it
// asynchronously after the namespace, and admission refuses pods until then).
func (d *Driver) createPod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	delay := 50 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		created, err := d.cs.CoreV1().Pods(d.cfg.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "serviceaccount") ||
			time.Now().Add(delay).After(deadline) {
			return created, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, time.Second)
	}
}

func sameLabels(a, b map[string]string) bool {
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// removeIfOurs deletes the pod of that name if it carries all of pod's labels
// (never someone else's pod that happens to hold the name).
func (d *Driver) removeIfOurs(ctx context.Context, pod *corev1.Pod) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	cur, err := d.pods().Get(cctx, pod.Name, metav1.GetOptions{})
	if err != nil || !sameLabels(cur.Labels, pod.Labels) {
		return
	}
	d.deletePod(cctx, cur, 0)
}

// deletePod deletes exactly this pod (uid precondition), with the given grace.
func (d *Driver) deletePod(ctx context.Context, pod *corev1.Pod, grace int64) error {
	opts := metav1.DeleteOptions{GracePeriodSeconds: &grace}
	if pod.UID != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &pod.UID}
	}
	err := d.cs.CoreV1().Pods(d.cfg.Namespace).Delete(ctx, pod.Name, opts)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) { // gone, or already replaced
		return nil
	}
	return err
}

// Start ungates the pod (or, if it ran and ended, runs a fresh copy of it)
// and waits, watching it, until its runtime container runs with a pod IP.
func (d *Driver) Start(ctx context.Context, id string) (string, error) {
	pod, err := d.pods().Get(ctx, id, metav1.GetOptions{})
	if err != nil {
		return "", wrap("get pod", id, err)
	}
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		// A pod that ran cannot run again: replace it by a gated copy first.
		if pod, err = d.replace(ctx, pod, 0); err != nil {
			return "", err
		}
	}
	if d.gated(pod) {
		if pod, err = d.ungate(ctx, pod); err != nil {
			return "", err
		}
	}
	return d.waitRunning(ctx, pod)
}

// ungate removes the start gate and the stopped mark in one patch, guarded by
// the pod's resourceVersion (a concurrent change makes it fail, not merge).
func (d *Driver) ungate(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	gates := slices.DeleteFunc(slices.Clone(pod.Spec.SchedulingGates), func(g corev1.PodSchedulingGate) bool {
		return g.Name == d.gate()
	})
	patch := []map[string]any{
		{"op": "test", "path": "/metadata/resourceVersion", "value": pod.ResourceVersion},
		{"op": "replace", "path": "/spec/schedulingGates", "value": gates},
	}
	if _, ok := pod.Annotations[d.stoppedAnnotation()]; ok {
		patch = append(patch, map[string]any{"op": "remove", "path": "/metadata/annotations/" + jsonPointerEscape(d.stoppedAnnotation())})
	}
	body, err := jsonMarshal(patch)
	if err != nil {
		return nil, err
	}
	p, err := d.cs.CoreV1().Pods(d.cfg.Namespace).Patch(ctx, pod.Name, types.JSONPatchType, body, metav1.PatchOptions{})
	if err != nil {
		return nil, wrap("start pod", pod.Name, err)
	}
	return p, nil
}

// replace deletes pod with the given grace, waits until it is gone and
// creates it again, gated and marked stopped.
func (d *Driver) replace(ctx context.Context, pod *corev1.Pod, grace int64) (*corev1.Pod, error) {
	fresh := d.recreated(pod)
	if err := d.deletePod(ctx, pod, grace); err != nil {
		return nil, wrap("delete pod", pod.Name, err)
	}
	if err := d.waitGone(ctx, pod.Name, pod.UID, time.Duration(grace)*time.Second+d.cfg.StartTimeout); err != nil {
		return nil, err
	}
	created, err := d.createPod(ctx, fresh)
	if err != nil {
		return nil, wrap("re-create pod", pod.Name, err)
	}
	return created, nil
}

// Stop deletes the pod with the stop grace period and keeps a gated copy, so
// the instance still exists (state exited) and Start runs it again.
// A missing pod is not an error.
func (d *Driver) Stop(ctx context.Context, id string) error {
	pod, err := d.pods().Get(ctx, id, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return wrap("get pod", id, err)
	}
	if d.gated(pod) {
		if pod.Annotations[d.stoppedAnnotation()] == "true" {
			return nil
		}
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}}}`, d.stoppedAnnotation())
		_, err := d.cs.CoreV1().Pods(d.cfg.Namespace).Patch(ctx, id, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return wrapIf("stop pod", id, err)
	}
	_, err = d.replace(ctx, pod, int64(d.cfg.StopGrace.Seconds()))
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	return err
}

func wrapIf(op, ref string, err error) error {
	if err == nil {
		return nil
	}
	return wrap(op, ref, err)
}

// Destroy deletes the pod at once (grace period 0); missing is not an error.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	zero := int64(0)
	err := d.cs.CoreV1().Pods(d.cfg.Namespace).Delete(ctx, id, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		return wrap("delete pod", id, err)
	}
	d.log.DebugContext(ctx, "pod deleted", "pod", id)
	return nil
}

// Status reports the pod's state; a missing pod is StateNotFound.
func (d *Driver) Status(ctx context.Context, id string) (driver.State, error) {
	pod, err := d.pods().Get(ctx, id, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return driver.StateNotFound, nil
	}
	if err != nil {
		return "", wrap("get pod", id, err)
	}
	return d.state(pod), nil
}

// List returns the pods carrying all the given labels, in any state.
func (d *Driver) List(ctx context.Context, labels map[string]string) ([]driver.Instance, error) {
	sel, err := d.labels.selector(labels)
	if err != nil {
		return nil, err
	}
	list, err := d.cs.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, wrap("list pods", sel, err)
	}
	out := make([]driver.Instance, 0, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		out = append(out, driver.Instance{ID: p.Name, Name: p.Name, State: d.state(p),
			Labels: d.labels.decode(p.Labels, p.Annotations), CreatedAt: p.CreationTimestamp.Time})
	}
	return out, nil
}

// endpoint is where Bay reaches the runtime of a running pod.
func (d *Driver) endpoint(pod *corev1.Pod) string {
	port := pod.Annotations[d.runtimePortAnnotation()]
	if _, err := strconv.Atoi(port); err != nil {
		for _, c := range pod.Spec.Containers {
			if c.Name == ContainerName && len(c.Ports) > 0 {
				port = strconv.Itoa(int(c.Ports[0].ContainerPort))
			}
		}
	}
	host := pod.Status.PodIP
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "http://" + host + ":" + port
}

// CreateVolume creates the PVC name of size sizeMB (0 = the default size) on
// the configured storage class. An existing claim is not an error; one that is
// being deleted is waited for and created anew.
func (d *Driver) CreateVolume(ctx context.Context, name string, labels map[string]string, sizeMB int) error {
	if errs := validationDNS(name); errs != "" {
		return fmt.Errorf("k8s: volume name %q: %s", name, errs)
	}
	size := resource.MustParse(d.cfg.DefaultStorageSize)
	if sizeMB > 0 {
		size = *resource.NewQuantity(int64(sizeMB)<<20, resource.BinarySI)
	}
	kl, orig := d.labels.encode(labels)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.cfg.Namespace, Labels: kl},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
	if orig != "" {
		pvc.Annotations = map[string]string{d.labels.originalsAnnotation(): orig}
	}
	if d.cfg.StorageClass != "" {
		pvc.Spec.StorageClassName = ptr(d.cfg.StorageClass)
	}
	pvcs := d.cs.CoreV1().PersistentVolumeClaims(d.cfg.Namespace)
	for attempt := 0; ; attempt++ {
		_, err := pvcs.Create(ctx, pvc, metav1.CreateOptions{})
		if err == nil {
			d.log.DebugContext(ctx, "pvc created", "pvc", name, "size", size.String())
			return nil
		}
		if !apierrors.IsAlreadyExists(err) || attempt > 0 {
			return wrap("create pvc", name, err)
		}
		cur, gerr := pvcs.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(gerr) {
			continue
		}
		if gerr != nil {
			return wrap("get pvc", name, gerr)
		}
		if cur.DeletionTimestamp == nil {
			return nil
		}
		if err := d.waitPVCGone(ctx, cur); err != nil {
			return err
		}
	}
}

// DeleteVolume deletes the PVC; a missing one is not an error. A claim a live
// pod still mounts is driver.ErrInUse (Kubernetes would only mark it for
// deletion and keep it until the pod ends).
func (d *Driver) DeleteVolume(ctx context.Context, name string) error {
	pods, err := d.cs.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return wrap("list pods using pvc", name, err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == name {
				return fmt.Errorf("k8s: delete pvc %s: pod %s uses it: %w", name, p.Name, driver.ErrInUse)
			}
		}
	}
	err = d.cs.CoreV1().PersistentVolumeClaims(d.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return wrap("delete pvc", name, err)
	}
	return nil
}

// ListVolumes returns the names of the PVCs carrying all the given labels,
// sorted; claims being deleted are left out.
func (d *Driver) ListVolumes(ctx context.Context, labels map[string]string) ([]string, error) {
	sel, err := d.labels.selector(labels)
	if err != nil {
		return nil, err
	}
	list, err := d.cs.CoreV1().PersistentVolumeClaims(d.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, wrap("list pvcs", sel, err)
	}
	var out []string
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// CreateNetwork is a no-op: the containers of a pod share its network
// namespace and pods reach each other by IP.
func (d *Driver) CreateNetwork(context.Context, string, map[string]string) error { return nil }

// DeleteNetwork is a no-op (see CreateNetwork).
func (d *Driver) DeleteNetwork(context.Context, string) error { return nil }

// Unreachable reports whether err says the API server could not be reached
// or is overloaded (a retry later may succeed), for driver.MarkUnavailable.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	if apierrors.IsServiceUnavailable(err) || apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTimeout(err) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var se syscall.Errno
	return errors.As(err, &se) && (se == syscall.ECONNREFUSED || se == syscall.ECONNRESET || se == syscall.EHOSTUNREACH)
}
