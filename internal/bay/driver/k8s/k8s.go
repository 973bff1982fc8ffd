// Package k8s is the Kubernetes driver of Bay (client-go): a session is one
// Pod, bay-session-<id>, with a container per session container sharing its
// network namespace (each reaches the others by name through hostAliases to
// the loopback address) and the workspace PersistentVolumeClaim.
//
// The seam has create, then start, and a stop that keeps the session. A pod
// cannot be created stopped nor stopped and started again, so:
//
//   - CreateSession creates the pod with a scheduling gate: it exists
//     (ListSessions sees it, with all its labels) but nothing is scheduled or
//     run; state "created".
//   - StartSession removes the gate and watches the pod (no polling) until
//     every container runs and it has an IP; each container's endpoint is
//     http://<pod IP>:<its port>, or, for a Bay outside the cluster
//     network, the API server's pod proxy (see WrapTransport). Scheduling,
//     volume binding, image and container failures end the wait early with
//     a clear error; the pod is left for the caller to destroy, as on Docker.
//   - StopSession deletes the pod (grace period) and creates it again, gated
//     and marked stopped; state "exited"; StartSession runs it again.
//   - DestroySession deletes the pod at once (grace period 0).
//
// Every container runs as uid/gid 1000 with fsGroup 1000, runAsNonRoot, no
// privilege escalation, all capabilities dropped, a read-only root and the
// RuntimeDefault seccomp profile; pods get no service account token and no
// service links.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
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
	kc     *kubeClient
	log    *slog.Logger
	labels labelCodec
	proxy  *apiProxy // nil: endpoints are pod IPs
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
	d, err := NewForConfig(c, rc)
	if err != nil {
		return nil, err
	}
	if endpointMode(c.Endpoint, os.Getenv("KUBERNETES_SERVICE_HOST") != "") == EndpointAPIProxy {
		if d.proxy, err = newAPIProxy(rc, c.Namespace, d.log); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// NewForConfig returns a driver for the API server of rc, used as given (New
// also sets Bay's rate limits, user agent and warning handler). cfg must
// carry defaults already when called directly; New is the usual entry. Its
// endpoints are pod IPs (New sets up the API server's pod proxy).
func NewForConfig(cfg Config, rc *rest.Config) (*Driver, error) {
	if c, err := cfg.withDefaults(); err == nil {
		cfg = c
	}
	kc, err := newKubeClient(rc)
	if err != nil {
		return nil, fmt.Errorf("k8s: client: %w", err)
	}
	return &Driver{cfg: cfg, kc: kc, log: cfg.Logger.With("component", "driver.k8s"),
		labels: labelCodec{prefix: cfg.LabelPrefix}}, nil
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

// Close is a no-op (client-go keeps no resources that need closing); it
// exists so the app closes every driver alike.
func (d *Driver) Close() error { return nil }

// pods and claims are the driver's resources in its namespace.
func (d *Driver) pods() resourceClient[*corev1.Pod, *corev1.PodList] {
	return d.kc.Pods(d.cfg.Namespace)
}

func (d *Driver) claims() resourceClient[*corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaimList] {
	return d.kc.PersistentVolumeClaims(d.cfg.Namespace)
}

// Ping checks the API server answers and Bay may list pods in its namespace
// (the least the Role grants; no cluster-wide permission is needed).
func (d *Driver) Ping(ctx context.Context) error {
	_, err := d.pods().List(ctx, metav1.ListOptions{Limit: 1})
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

// CreateSession creates the session's pod, gated: nothing is scheduled until
// StartSession. A pod of that name being deleted (a session destroyed a
// moment ago, retried in place) is waited for; one that lives is
// driver.ErrConflict.
func (d *Driver) CreateSession(ctx context.Context, spec driver.SessionSpec) (*driver.Session, error) {
	if err := validateSpec(spec); err != nil {
		return nil, err
	}
	pod := d.podFor(spec)
	if spec.NoNetwork {
		if err := d.ensureNoNetworkPolicy(ctx); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		created, err := d.createPod(ctx, pod)
		if err == nil && ctx.Err() != nil {
			// Made for a caller that has gone: nobody would start or remove it.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			if derr := d.deletePod(dctx, created, 0); derr != nil {
				d.log.WarnContext(ctx, "cleanup of a cut-off pod create failed", "pod", pod.Name, "err", derr)
			}
			cancel()
			err = context.Cause(ctx)
		}
		if err == nil {
			d.log.DebugContext(ctx, "pod created", "pod", created.Name, "containers", len(spec.Containers), "volume", spec.Volume)
			return d.session(created), nil
		}
		if !apierrors.IsAlreadyExists(err) {
			if ctx.Err() != nil {
				d.removeIfOurs(ctx, pod)
			}
			return nil, wrap("create pod", pod.Name, err)
		}
		cur, gerr := d.pods().Get(ctx, pod.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(gerr) && attempt == 0:
			continue
		case gerr == nil && cur.DeletionTimestamp != nil && attempt == 0:
			if err := d.waitGone(ctx, cur.Name, cur.UID, d.cfg.StartTimeout); err != nil {
				return nil, err
			}
			continue
		}
		return nil, fmt.Errorf("k8s: create pod %s: a pod of that name exists: %w: %w", pod.Name, driver.ErrConflict, err)
	}
}

// session is what the driver observes of a pod.
func (d *Driver) session(pod *corev1.Pod) *driver.Session {
	labels := d.labels.decode(pod.Labels, pod.Annotations)
	delete(labels, d.labels.unkey(d.noNetworkLabel())) // the driver's own mark
	id := labels[driver.LabelSessionID]
	if id == "" {
		id = strings.TrimPrefix(pod.Name, "bay-session-")
	}
	cs := d.containers(pod)
	return &driver.Session{ID: id, State: driver.Aggregate(cs), Labels: labels, CreatedAt: pod.CreationTimestamp.Time, Containers: cs}
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
	_, err := d.kc.NetworkPolicies(d.cfg.Namespace).Create(ctx, np, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return wrap("create network policy", np.Name, err)
	}
	return nil
}

// createPod creates pod, retrying briefly while the namespace's default
// service account does not exist yet (the controller manager creates it
// asynchronously after the namespace, and admission refuses pods until then).
// A create runs to its end even when ctx ends meanwhile: the API server can
// commit a create whose client went away after any check for it, so the
// caller gets the pod and decides what becomes of it.
func (d *Driver) createPod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	delay := 50 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		created, err := d.pods().Create(cctx, pod, metav1.CreateOptions{})
		cancel()
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
	err := d.pods().Delete(ctx, pod.Name, opts)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) { // gone, or already replaced
		return nil
	}
	return err
}

// StartSession ungates the pod (or, if it ran and ended, runs a fresh copy
// of it) and waits, watching it, until every container runs with a pod IP.
func (d *Driver) StartSession(ctx context.Context, id string) (*driver.Session, error) {
	name := podName(id)
	pod, err := d.pods().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, wrap("get pod", name, err)
	}
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		// A pod that ran cannot run again: replace it by a gated copy first.
		if pod, err = d.replace(ctx, pod, 0); err != nil {
			return nil, err
		}
	}
	if d.gated(pod) {
		if pod, err = d.ungate(ctx, pod); err != nil {
			return nil, err
		}
	}
	if pod, err = d.waitRunning(ctx, pod); err != nil {
		return nil, err
	}
	s := d.session(pod)
	for i, c := range pod.Spec.Containers {
		s.Containers[i].Endpoint = d.endpoint(pod, c)
	}
	d.log.DebugContext(ctx, "session started", "pod", pod.Name, "endpoint", s.Containers[0].Endpoint)
	return s, nil
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
	p, err := d.pods().Patch(ctx, pod.Name, types.JSONPatchType, body, metav1.PatchOptions{})
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

// StopSession deletes the pod with the stop grace period and keeps a gated
// copy, so the session still exists (state exited) and StartSession runs it
// again. A missing pod is not an error.
func (d *Driver) StopSession(ctx context.Context, id string) error {
	name := podName(id)
	pod, err := d.pods().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return wrap("get pod", name, err)
	}
	if d.gated(pod) {
		if pod.Annotations[d.stoppedAnnotation()] == "true" {
			return nil
		}
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}}}`, d.stoppedAnnotation())
		_, err := d.pods().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return wrapIf("stop pod", name, err)
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

// DestroySession deletes the pod at once (grace period 0); missing is not an error.
func (d *Driver) DestroySession(ctx context.Context, id string) error {
	name := podName(id)
	zero := int64(0)
	err := d.pods().Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		return wrap("delete pod", name, err)
	}
	d.log.DebugContext(ctx, "pod deleted", "pod", name)
	return nil
}

// InspectSession observes the session's pod.
func (d *Driver) InspectSession(ctx context.Context, id string) (*driver.Session, error) {
	name := podName(id)
	pod, err := d.pods().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, wrap("get pod", name, err)
	}
	return d.session(pod), nil
}

// ListSessions returns the sessions whose pods carry all the given labels,
// in any state, sorted by id.
func (d *Driver) ListSessions(ctx context.Context, labels map[string]string) ([]driver.Session, error) {
	sel, err := d.labels.selector(labels)
	if err != nil {
		return nil, err
	}
	if sel != "" {
		sel += ","
	}
	sel += d.labels.key(driver.LabelSessionID) // pods of sessions only
	list, err := d.pods().List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, wrap("list pods", sel, err)
	}
	out := make([]driver.Session, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, *d.session(&list.Items[i]))
	}
	slices.SortFunc(out, func(a, b driver.Session) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// endpoint is where Bay reaches the runtime of container c of a running pod.
func (d *Driver) endpoint(pod *corev1.Pod, c corev1.Container) string {
	port := ""
	if len(c.Ports) > 0 {
		port = strconv.Itoa(int(c.Ports[0].ContainerPort))
	} else {
		port = pod.Annotations[d.runtimePortAnnotation()]
	}
	if d.proxy != nil {
		return d.proxy.endpoint(pod.Name, port)
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
	pvcs := d.claims()
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
	pods, err := d.pods().List(ctx, metav1.ListOptions{})
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
	err = d.claims().Delete(ctx, name, metav1.DeleteOptions{})
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
	list, err := d.claims().List(ctx, metav1.ListOptions{LabelSelector: sel})
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
