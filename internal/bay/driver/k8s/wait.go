package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// checkFunc looks at one version of the watched object (nil: it was deleted)
// and says whether the wait is over, or failed.
type checkFunc func(pod *corev1.Pod) (done bool, err error)

// watchPod calls check with pod and then with every later version of the pod
// named like it, until check is done or fails, or ctx ends. It watches (no
// polling); a watch the server closes is resumed from the last version seen,
// after a fresh read so no change is missed.
func (d *Driver) watchPod(ctx context.Context, name string, pod *corev1.Pod, check checkFunc) error {
	if done, err := check(pod); done || err != nil {
		return err
	}
	rv := ""
	if pod != nil {
		rv = pod.ResourceVersion
	}
	pods := d.pods()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	for {
		if rv != "" {
			w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
			if err != nil && ctx.Err() == nil && !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
				return wrap("watch pod", name, err)
			}
			if err == nil {
				done, err := consume(w, check)
				w.Stop()
				if done || err != nil {
					return err
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The watch ended (server timeout, expired version): read the pod
		// again, and watch on from its version.
		cur, err := pods.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			cur = nil
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return wrap("get pod", name, err)
		}
		if done, err := check(cur); done || err != nil {
			return err
		}
		if cur != nil {
			rv = cur.ResourceVersion
		} else {
			// Gone and check wants more: watch for it to appear from the list's version.
			list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: sel})
			if err != nil {
				return wrap("list pods", name, err)
			}
			rv = list.ResourceVersion
		}
	}
}

// consume feeds the events of w to check until it is done, fails, or the
// watch ends (closed by the server, or an error event such as 410 Gone).
func consume(w watch.Interface, check checkFunc) (bool, error) {
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Added, watch.Modified, watch.Deleted:
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				pod = nil
			}
			if done, err := check(pod); done || err != nil {
				return done, err
			}
		case watch.Error:
			return false, nil
		}
	}
	return false, nil
}

// waitRunning waits until every container of pod runs with a pod IP and
// returns the pod as it is then. Failures that will not heal (image missing, container
// exited, configuration refused) end the wait at once; a pod still not running
// at the start timeout is described by its last conditions and events.
func (d *Driver) waitRunning(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	wctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	uid := pod.UID
	last := pod
	err := d.watchPod(wctx, pod.Name, pod, func(p *corev1.Pod) (bool, error) {
		if p == nil || p.UID != uid {
			return false, fmt.Errorf("k8s: pod %s was deleted while starting: %w", pod.Name, driver.ErrNotFound)
		}
		last = p
		if p.DeletionTimestamp != nil {
			return false, fmt.Errorf("k8s: pod %s is being deleted", p.Name)
		}
		if err := failure(p); err != nil {
			return false, err
		}
		if running(p) {
			return true, nil
		}
		return false, nil
	})
	if err == nil {
		d.log.DebugContext(ctx, "pod running", "pod", pod.Name, "ip", last.Status.PodIP, "node", last.Spec.NodeName)
		return last, nil
	}
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		why := driver.ErrStartTimeout
		if !scheduled(last) { // no node fits, or its claim is not bound: the scheduler said why
			why = driver.ErrUnschedulable
		}
		return nil, fmt.Errorf("k8s: pod %s did not run within %s: %w: %s", pod.Name, d.cfg.StartTimeout, why,
			d.describe(context.WithoutCancel(ctx), last))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("k8s: waiting for pod %s: %w", pod.Name, err)
	}
	return nil, err
}

// scheduled: the pod was bound to a node.
func scheduled(p *corev1.Pod) bool {
	if p.Spec.NodeName != "" {
		return true
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// running: every container runs and the pod has an address.
func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Spec.Containers {
		if !slices.ContainsFunc(p.Status.ContainerStatuses, func(cs corev1.ContainerStatus) bool {
			return cs.Name == c.Name && cs.State.Running != nil
		}) {
			return false
		}
	}
	return true
}

// Waiting reasons of a container that will not start by waiting longer.
var (
	imageReasons  = []string{"ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName"}
	configReasons = []string{"CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreCreateHookError", "PreStartHookError"}
)

// failure returns the error of a pod that will not run, or nil.
func failure(p *corev1.Pod) error {
	inits := len(p.Status.InitContainerStatuses)
	statuses := append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...)
	for i, cs := range statuses {
		if w := cs.State.Waiting; w != nil {
			switch {
			case slices.Contains(imageReasons, w.Reason):
				return fmt.Errorf("k8s: pod %s: image %s of container %s: %s: %s: %w", p.Name, cs.Image, cs.Name, w.Reason,
					w.Message, driver.ErrImageNotFound)
			case slices.Contains(configReasons, w.Reason):
				return fmt.Errorf("k8s: pod %s: container %s cannot start: %s: %s", p.Name, cs.Name, w.Reason, w.Message)
			}
		}
		if t := cs.State.Terminated; t != nil && (t.ExitCode != 0 || i >= inits) { // a runtime never ends
			return fmt.Errorf("k8s: pod %s: container %s exited (code %d, %s): %s", p.Name, cs.Name, t.ExitCode, t.Reason,
				strings.TrimSpace(t.Message))
		}
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return fmt.Errorf("k8s: pod %s ended (%s): %s %s", p.Name, p.Status.Phase, p.Status.Reason, p.Status.Message)
	}
	return nil
}

// describe summarises why a pod is not running: its phase, unmet conditions
// (unschedulable, volume binding), container states and its last warning events.
func (d *Driver) describe(ctx context.Context, p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			fmt.Fprintf(&b, "; %s: %s (%s)", c.Type, c.Reason, c.Message)
		}
	}
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			fmt.Fprintf(&b, "; container %s waiting: %s %s", cs.Name, w.Reason, w.Message)
		}
	}
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pvc, err := d.claims().Get(cctx, v.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			fmt.Fprintf(&b, "; volume claim %s does not exist", v.PersistentVolumeClaim.ClaimName)
		case err == nil && pvc.Status.Phase != corev1.ClaimBound:
			fmt.Fprintf(&b, "; volume claim %s is %s (not bound)", pvc.Name, pvc.Status.Phase)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	evs, err := d.kc.Events(d.cfg.Namespace).List(cctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.name": p.Name, "involvedObject.uid": string(p.UID), "type": corev1.EventTypeWarning}.String(),
	})
	if err == nil {
		items := evs.Items
		slices.SortFunc(items, func(a, b corev1.Event) int { return a.LastTimestamp.Compare(b.LastTimestamp.Time) })
		if len(items) > 3 {
			items = items[len(items)-3:]
		}
		for _, e := range items {
			fmt.Fprintf(&b, "; event %s: %s", e.Reason, e.Message)
		}
	}
	return b.String()
}

// waitGone waits until the pod of that uid no longer exists.
func (d *Driver) waitGone(ctx context.Context, name string, uid types.UID, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cur, err := d.pods().Get(wctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return wrap("get pod", name, err)
	}
	err = d.watchPod(wctx, name, cur, func(p *corev1.Pod) (bool, error) {
		return p == nil || p.UID != uid, nil
	})
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("k8s: pod %s still exists %s after its deletion", name, timeout)
	}
	return err
}

// waitPVCGone waits until a claim being deleted is gone, watching it.
func (d *Driver) waitPVCGone(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	wctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	pvcs := d.claims()
	w, err := pvcs.Watch(wctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", pvc.Name).String(),
		ResourceVersion: pvc.ResourceVersion,
	})
	if err != nil {
		return wrap("watch pvc", pvc.Name, err)
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type == watch.Deleted {
			return nil
		}
	}
	if _, err := pvcs.Get(ctx, pvc.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("k8s: pvc %s is still being deleted after %s (a pod may still use it)", pvc.Name, d.cfg.StartTimeout)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// jsonPointerEscape escapes a JSON pointer token (RFC 6901).
func jsonPointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func validationDNS(name string) string {
	return strings.Join(validation.IsDNS1123Subdomain(name), "; ")
}
