package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// recorded is what an API server receives of one request.
type recorded struct {
	Method, Path, Query, Accept, ContentType, UserAgent string
	Body                                                []byte
}

// fakeAPIServer records every request and answers as the API server does, in
// JSON: a watch gets one ADDED event, a name "missing" a NotFound Status, a
// list a list of one item, anything else one object of the resource.
type fakeAPIServer struct {
	*httptest.Server
	mu  sync.Mutex
	got []recorded
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	s := &fakeAPIServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *fakeAPIServer) take() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

// kinds of the resources the driver uses: path segment → apiVersion, kind.
var kinds = map[string][2]string{
	"pods":                   {"v1", "Pod"},
	"persistentvolumeclaims": {"v1", "PersistentVolumeClaim"},
	"events":                 {"v1", "Event"},
	"networkpolicies":        {"networking.k8s.io/v1", "NetworkPolicy"},
	"runtimeclasses":         {"node.k8s.io/v1", "RuntimeClass"},
}

func (s *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.got = append(s.got, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Accept"),
		r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), body})
	s.mu.Unlock()
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// /api/v1/namespaces/ns/pods[/name] or /apis/g/v1/runtimeclasses[/name]
	var res, name string
	for i, p := range parts {
		if _, ok := kinds[p]; ok {
			res = p
			if i+1 < len(parts) {
				name = parts[i+1]
			}
		}
	}
	k, ok := kinds[res]
	w.Header().Set("Content-Type", "application/json")
	switch {
	case !ok:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
	case name == "missing":
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"%s \"missing\" not found","reason":"NotFound","details":{"name":"missing","kind":"%s"},"code":404}`, res, res)
	case r.Method == http.MethodDelete:
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}`)
	case r.URL.Query().Get("watch") == "true":
		item := fmt.Sprintf(`{"kind":%q,"apiVersion":%q,"metadata":{"name":"w","resourceVersion":"8","uid":"u-1"}}`, k[1], k[0])
		fmt.Fprintf(w, `{"type":"ADDED","object":%s}`+"\n", item)
	case name == "" && r.Method == http.MethodGet:
		fmt.Fprintf(w, `{"kind":"%sList","apiVersion":%q,"metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"a","labels":{"x":"y"},"deletionTimestamp":null}}]}`, k[1], k[0])
	default:
		fmt.Fprintf(w, `{"kind":%q,"apiVersion":%q,"metadata":{"name":%q,"namespace":"ns","resourceVersion":"3","uid":"u-2","labels":{"a":"b"}},"spec":{}}`, k[1], k[0], name)
	}
}

// TestKubeClientAsClientset: for every call the driver makes, the small client
// sends the API server exactly what client-go's clientset sends (method,
// path, query, content negotiation, body) and decodes the answer alike,
// errors included.
func TestKubeClientAsClientset(t *testing.T) {
	srv := newFakeAPIServer(t)
	rc := &rest.Config{Host: srv.URL, QPS: 50, Burst: 100, UserAgent: "shipyard-bay"}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := newKubeClient(rc)
	if err != nil {
		t.Fatal(err)
	}
	zero, uid, timeout := int64(0), types.UID("u-2"), int64(7)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"bay.managed": "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "ship", Image: "ship:latest",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}}},
			SchedulingGates: []corev1.PodSchedulingGate{{Name: "bay/not-started"}}},
	}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}}}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bay-no-network", Namespace: "ns"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{}}}
	list := metav1.ListOptions{LabelSelector: "bay.managed=true,bay.session", Limit: 1, TimeoutSeconds: &timeout}
	del := metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}}
	watchOpts := metav1.ListOptions{FieldSelector: "metadata.name=p", ResourceVersion: "7"}

	// Each call as the driver makes it, through both clients: the answer
	// (object or error) comes back for comparison.
	type call func(ctx context.Context) (any, error)
	calls := []struct {
		name      string
		cs, small call
	}{
		{"get pod",
			func(ctx context.Context) (any, error) {
				return cs.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{})
			},
			func(ctx context.Context) (any, error) { return kc.Pods("ns").Get(ctx, "p", metav1.GetOptions{}) }},
		{"get missing pod",
			func(ctx context.Context) (any, error) {
				return cs.CoreV1().Pods("ns").Get(ctx, "missing", metav1.GetOptions{ResourceVersion: "0"})
			},
			func(ctx context.Context) (any, error) {
				return kc.Pods("ns").Get(ctx, "missing", metav1.GetOptions{ResourceVersion: "0"})
			}},
		{"list pods", func(ctx context.Context) (any, error) { return cs.CoreV1().Pods("ns").List(ctx, list) },
			func(ctx context.Context) (any, error) { return kc.Pods("ns").List(ctx, list) }},
		{"create pod", func(ctx context.Context) (any, error) {
			return cs.CoreV1().Pods("ns").Create(ctx, pod, metav1.CreateOptions{})
		},
			func(ctx context.Context) (any, error) { return kc.Pods("ns").Create(ctx, pod, metav1.CreateOptions{}) }},
		{"json patch pod",
			func(ctx context.Context) (any, error) {
				return cs.CoreV1().Pods("ns").Patch(ctx, "p", types.JSONPatchType, []byte(`[{"op":"test","path":"/metadata/resourceVersion","value":"3"}]`), metav1.PatchOptions{})
			},
			func(ctx context.Context) (any, error) {
				return kc.Pods("ns").Patch(ctx, "p", types.JSONPatchType, []byte(`[{"op":"test","path":"/metadata/resourceVersion","value":"3"}]`), metav1.PatchOptions{})
			}},
		{"merge patch pod",
			func(ctx context.Context) (any, error) {
				return cs.CoreV1().Pods("ns").Patch(ctx, "p", types.MergePatchType, []byte(`{"metadata":{"annotations":{"bay/stopped":"true"}}}`), metav1.PatchOptions{})
			},
			func(ctx context.Context) (any, error) {
				return kc.Pods("ns").Patch(ctx, "p", types.MergePatchType, []byte(`{"metadata":{"annotations":{"bay/stopped":"true"}}}`), metav1.PatchOptions{})
			}},
		{"delete pod", func(ctx context.Context) (any, error) { return nil, cs.CoreV1().Pods("ns").Delete(ctx, "p", del) },
			func(ctx context.Context) (any, error) { return nil, kc.Pods("ns").Delete(ctx, "p", del) }},
		{"delete missing pod",
			func(ctx context.Context) (any, error) {
				return nil, cs.CoreV1().Pods("ns").Delete(ctx, "missing", metav1.DeleteOptions{GracePeriodSeconds: &zero})
			},
			func(ctx context.Context) (any, error) {
				return nil, kc.Pods("ns").Delete(ctx, "missing", metav1.DeleteOptions{GracePeriodSeconds: &zero})
			}},
		{"watch pod", func(ctx context.Context) (any, error) {
			return firstEvent(cs.CoreV1().Pods("ns").Watch(ctx, watchOpts))
		},
			func(ctx context.Context) (any, error) { return firstEvent(kc.Pods("ns").Watch(ctx, watchOpts)) }},
		{"create pvc",
			func(ctx context.Context) (any, error) {
				return cs.CoreV1().PersistentVolumeClaims("ns").Create(ctx, pvc, metav1.CreateOptions{})
			},
			func(ctx context.Context) (any, error) {
				return kc.PersistentVolumeClaims("ns").Create(ctx, pvc, metav1.CreateOptions{})
			}},
		{"get pvc",
			func(ctx context.Context) (any, error) {
				return cs.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "c", metav1.GetOptions{})
			},
			func(ctx context.Context) (any, error) {
				return kc.PersistentVolumeClaims("ns").Get(ctx, "c", metav1.GetOptions{})
			}},
		{"list pvcs",
			func(ctx context.Context) (any, error) {
				return cs.CoreV1().PersistentVolumeClaims("ns").List(ctx, metav1.ListOptions{LabelSelector: "bay.managed=true"})
			},
			func(ctx context.Context) (any, error) {
				return kc.PersistentVolumeClaims("ns").List(ctx, metav1.ListOptions{LabelSelector: "bay.managed=true"})
			}},
		{"watch pvc",
			func(ctx context.Context) (any, error) {
				return firstEvent(cs.CoreV1().PersistentVolumeClaims("ns").Watch(ctx, watchOpts))
			},
			func(ctx context.Context) (any, error) {
				return firstEvent(kc.PersistentVolumeClaims("ns").Watch(ctx, watchOpts))
			}},
		{"delete pvc",
			func(ctx context.Context) (any, error) {
				return nil, cs.CoreV1().PersistentVolumeClaims("ns").Delete(ctx, "c", metav1.DeleteOptions{})
			},
			func(ctx context.Context) (any, error) {
				return nil, kc.PersistentVolumeClaims("ns").Delete(ctx, "c", metav1.DeleteOptions{})
			}},
		{"list events",
			func(ctx context.Context) (any, error) {
				return cs.CoreV1().Events("ns").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=p,type=Warning"})
			},
			func(ctx context.Context) (any, error) {
				return kc.Events("ns").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=p,type=Warning"})
			}},
		{"create network policy",
			func(ctx context.Context) (any, error) {
				return cs.NetworkingV1().NetworkPolicies("ns").Create(ctx, np, metav1.CreateOptions{})
			},
			func(ctx context.Context) (any, error) {
				return kc.NetworkPolicies("ns").Create(ctx, np, metav1.CreateOptions{})
			}},
		{"list runtime classes",
			func(ctx context.Context) (any, error) {
				return cs.NodeV1().RuntimeClasses().List(ctx, metav1.ListOptions{})
			},
			func(ctx context.Context) (any, error) { return kc.RuntimeClasses().List(ctx, metav1.ListOptions{}) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			srv.take()
			want, werr := c.cs(t.Context())
			wantReq := srv.take()
			got, gerr := c.small(t.Context())
			gotReq := srv.take()
			if len(wantReq) != 1 {
				t.Fatalf("the clientset sent %d requests", len(wantReq))
			}
			if !reflect.DeepEqual(gotReq, wantReq) {
				t.Errorf("request\n got %+v\nwant %+v", gotReq, wantReq)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("answer\n got %#v\nwant %#v", got, want)
			}
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || apierrors.IsNotFound(gerr) != apierrors.IsNotFound(werr) {
				t.Errorf("error %v, want %v", gerr, werr)
			}
			if strings.Contains(c.name, "missing") && !apierrors.IsNotFound(gerr) {
				t.Errorf("error %v, want NotFound", gerr)
			}
		})
	}
	// What the requests carry, checked once by hand: protobuf preferred, the
	// body of a create in protobuf, options as query parameters.
	if _, err := kc.Pods("ns").Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Pods("ns").List(t.Context(), list); err != nil {
		t.Fatal(err)
	}
	reqs := srv.take()
	if r := reqs[0]; r.Method != "POST" || r.Path != "/api/v1/namespaces/ns/pods" ||
		r.ContentType != "application/vnd.kubernetes.protobuf" || !bytes.HasPrefix(r.Body, []byte("k8s\x00")) ||
		r.Accept != "application/vnd.kubernetes.protobuf,application/json" || r.UserAgent != "shipyard-bay" {
		t.Errorf("create: %+v", r)
	}
	if r := reqs[1]; r.Method != "GET" || r.Path != "/api/v1/namespaces/ns/pods" ||
		r.Query != "labelSelector=bay.managed%3Dtrue%2Cbay.session&limit=1&timeout=7s&timeoutSeconds=7" {
		t.Errorf("list: %+v", r)
	}
}

// firstEvent returns the first event of w, as the type and object it decoded.
func firstEvent(w watch.Interface, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	ev, ok := <-w.ResultChan()
	if !ok {
		return nil, fmt.Errorf("watch closed without an event")
	}
	b, _ := json.Marshal(ev.Object)
	return fmt.Sprintf("%s %T %s", ev.Type, ev.Object, b), nil
}

// TestKubeClientWatchTypes: watch events decode into the driver's types.
func TestKubeClientWatchTypes(t *testing.T) {
	srv := newFakeAPIServer(t)
	kc, err := newKubeClient(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	w, err := kc.Pods("ns").Watch(t.Context(), metav1.ListOptions{ResourceVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := <-w.ResultChan()
	if p, ok := ev.Object.(*corev1.Pod); ev.Type != watch.Added || !ok || p.Name != "w" || p.UID != "u-1" {
		t.Errorf("event %s %#v", ev.Type, ev.Object)
	}
	if ev, ok := <-w.ResultChan(); ok {
		t.Errorf("a second event %v after the server closed the watch", ev)
	}
	list, err := kc.RuntimeClasses().List(t.Context(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "a" || list.ResourceVersion != "9" {
		t.Errorf("runtime classes %+v, %v", list, err)
	}
}
