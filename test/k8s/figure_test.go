package k8s_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/test/baytest"
)

// TestColdStartFigure measures, in one run and interleaved, a cold create →
// first `1+1` through Bay on Kubernetes and on Docker, and the cluster's own
// floor: a bare pod of the same image (no PVC, no init container) created,
// watched to Running, and its /health answering. Only with SHIPYARD_BENCH=1;
// it logs medians for bench/REPORT.md and asserts nothing about speed.
func TestColdStartFigure(t *testing.T) {
	if os.Getenv("SHIPYARD_BENCH") == "" {
		t.Skip("SHIPYARD_BENCH=1 runs the figure")
	}
	e := start(t)
	dock := baytest.Start(t, baytest.Options{ConfigYAML: profiles, InstanceID: model.NewID("k8sfig"),
		Env: map[string]string{"BAY_DRIVER__IMAGE_PULL_POLICY": "never"}})
	coldPython := func(b *baytest.Bay) time.Duration {
		begin := time.Now()
		id := b.CreateSandbox(t, nil)
		if r := b.Python(t, id, "1+1"); r["output"] != "2" {
			t.Fatalf("1+1: %v", r)
		}
		took := time.Since(begin)
		b.Must(t, 204, baytest.Req{Method: "DELETE", Path: "/v1/sandboxes/" + id})
		return took
	}
	warmPython := func(b *baytest.Bay) time.Duration {
		id := b.CreateSandbox(t, nil)
		b.Python(t, id, "1+1")
		var ds []time.Duration
		for range 20 {
			begin := time.Now()
			b.Python(t, id, "1+1")
			ds = append(ds, time.Since(begin))
		}
		b.Must(t, 204, baytest.Req{Method: "DELETE", Path: "/v1/sandboxes/" + id})
		return median(ds)
	}
	const rounds = 5
	var onK8s, onDocker, floor []time.Duration
	for i := range rounds {
		onK8s = append(onK8s, coldPython(e.b))
		onDocker = append(onDocker, coldPython(dock))
		floor = append(floor, barePod(t, e, fmt.Sprintf("bare-%d", i)))
	}
	t.Logf("cold create → first 1+1, median of %d: Kubernetes %s (%v), Docker %s (%v); bare pod → Running + /health %s (%v)",
		rounds, median(onK8s), onK8s, median(onDocker), onDocker, median(floor), floor)
	t.Logf("warm 1+1 through Bay, median of 20: Kubernetes %s, Docker %s", warmPython(e.b), warmPython(dock))
}

// barePod: the floor of the cluster for this image.
func barePod(t *testing.T, e *env, name string) time.Duration {
	ctx := t.Context()
	pods := e.c.Client.CoreV1().Pods(e.ns)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever, EnableServiceLinks: new(bool),
		Containers: []corev1.Container{{Name: "ship", Image: "ship:latest", ImagePullPolicy: corev1.PullNever}},
	}}
	begin := time.Now()
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(),
		ResourceVersion: created.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	ip := ""
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Modified && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			ip = p.Status.PodIP
			break
		}
	}
	w.Stop()
	hctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for hctx.Err() == nil {
		req, _ := http.NewRequestWithContext(hctx, "GET", "http://"+ip+":8123/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(begin)
	zero := int64(0)
	_ = pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	return took
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}
