package k8s

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// kubeClient is the part of the Kubernetes API the driver uses: pods, claims,
// events, network policies and runtime classes, as typed objects of
// k8s.io/api. It makes exactly the requests client-go's generated clientset
// makes for the same calls (same paths, parameters, protobuf preferred, one
// shared HTTP client and rate limiter), without linking the clientset: that
// registers every API group of Kubernetes when the package initialises, in
// every Bay, Docker-only ones too (client_test.go compares the two).
type kubeClient struct {
	core, networking, node *rest.RESTClient
}

// kubeScheme knows the three API groups the driver uses and the options of
// metav1 (as client-go's scheme registers them). Built on first use, so a
// Bay without the Kubernetes driver never builds it.
var kubeScheme = sync.OnceValue(func() schemeCodecs {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, networkingv1.AddToScheme, nodev1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err) // static registrations: cannot fail
		}
	}
	return schemeCodecs{s, serializer.NewCodecFactory(s), runtime.NewParameterCodec(s)}
})

type schemeCodecs struct {
	scheme *runtime.Scheme
	codecs serializer.CodecFactory
	params runtime.ParameterCodec
}

// newKubeClient returns a client for the API server of rc, set up as
// client-go's kubernetes.NewForConfig does.
func newKubeClient(rc *rest.Config) (*kubeClient, error) {
	c := *rc
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	hc, err := rest.HTTPClientFor(&c)
	if err != nil {
		return nil, err
	}
	return newKubeClientFor(&c, hc)
}

// newKubeClientFor is newKubeClient with the given HTTP client (shared by
// the three API groups, as the clientset shares one).
func newKubeClientFor(rc *rest.Config, hc *http.Client) (*kubeClient, error) {
	c := *rc
	if c.RateLimiter == nil && c.QPS > 0 {
		if c.Burst <= 0 {
			return nil, fmt.Errorf("burst is required to be greater than 0 when RateLimiter is not set and QPS is set to greater than 0")
		}
		c.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(c.QPS, c.Burst)
	}
	group := func(apiPath string, gv schema.GroupVersion) (*rest.RESTClient, error) {
		sc := kubeScheme()
		g := c
		g.GroupVersion = &gv
		g.APIPath = apiPath
		g.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(sc.scheme, sc.codecs).WithoutConversion()
		if g.UserAgent == "" {
			g.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		return rest.RESTClientForConfigAndClient(&g, hc)
	}
	var kc kubeClient
	var err error
	if kc.core, err = group("/api", corev1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	if kc.networking, err = group("/apis", networkingv1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	if kc.node, err = group("/apis", nodev1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	return &kc, nil
}

func (c *kubeClient) Pods(ns string) resourceClient[*corev1.Pod, *corev1.PodList] {
	return resourceClient[*corev1.Pod, *corev1.PodList]{c.core, "pods", ns, func() *corev1.Pod { return &corev1.Pod{} }, func() *corev1.PodList { return &corev1.PodList{} }}
}

func (c *kubeClient) PersistentVolumeClaims(ns string) resourceClient[*corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaimList] {
	return resourceClient[*corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaimList]{c.core, "persistentvolumeclaims", ns, func() *corev1.PersistentVolumeClaim { return &corev1.PersistentVolumeClaim{} }, func() *corev1.PersistentVolumeClaimList { return &corev1.PersistentVolumeClaimList{} }}
}

func (c *kubeClient) Events(ns string) resourceClient[*corev1.Event, *corev1.EventList] {
	return resourceClient[*corev1.Event, *corev1.EventList]{c.core, "events", ns, func() *corev1.Event { return &corev1.Event{} }, func() *corev1.EventList { return &corev1.EventList{} }}
}

func (c *kubeClient) NetworkPolicies(ns string) resourceClient[*networkingv1.NetworkPolicy, *networkingv1.NetworkPolicyList] {
	return resourceClient[*networkingv1.NetworkPolicy, *networkingv1.NetworkPolicyList]{c.networking, "networkpolicies", ns, func() *networkingv1.NetworkPolicy { return &networkingv1.NetworkPolicy{} }, func() *networkingv1.NetworkPolicyList { return &networkingv1.NetworkPolicyList{} }}
}

// RuntimeClasses are cluster-scoped.
func (c *kubeClient) RuntimeClasses() resourceClient[*nodev1.RuntimeClass, *nodev1.RuntimeClassList] {
	return resourceClient[*nodev1.RuntimeClass, *nodev1.RuntimeClassList]{c.node, "runtimeclasses", "", func() *nodev1.RuntimeClass { return &nodev1.RuntimeClass{} }, func() *nodev1.RuntimeClassList { return &nodev1.RuntimeClassList{} }}
}

// resourceClient is one resource of one namespace ("" for cluster-scoped
// ones), with the verbs of client-go's typed clients (k8s.io/client-go/gentype)
// and their requests: protobuf preferred, options as query parameters.
type resourceClient[T runtime.Object, L runtime.Object] struct {
	rc        *rest.RESTClient
	resource  string
	namespace string
	newObj    func() T
	newList   func() L
}

// request starts a request of this resource with client-go's defaults.
func (r resourceClient[T, L]) request(req *rest.Request) *rest.Request {
	return req.UseProtobufAsDefault().NamespaceIfScoped(r.namespace, r.namespace != "").Resource(r.resource)
}

func paramCodec() runtime.ParameterCodec { return kubeScheme().params }

func timeoutOf(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds != nil {
		return time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return 0
}

func (r resourceClient[T, L]) Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error) {
	out := r.newObj()
	err := r.request(r.rc.Get()).Name(name).VersionedParams(&opts, paramCodec()).Do(ctx).Into(out)
	return out, err
}

func (r resourceClient[T, L]) List(ctx context.Context, opts metav1.ListOptions) (L, error) {
	out := r.newList()
	err := r.request(r.rc.Get()).VersionedParams(&opts, paramCodec()).Timeout(timeoutOf(opts)).Do(ctx).Into(out)
	return out, err
}

func (r resourceClient[T, L]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return r.request(r.rc.Get()).VersionedParams(&opts, paramCodec()).Timeout(timeoutOf(opts)).Watch(ctx)
}

func (r resourceClient[T, L]) Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error) {
	out := r.newObj()
	err := r.request(r.rc.Post()).VersionedParams(&opts, paramCodec()).Body(obj).Do(ctx).Into(out)
	return out, err
}

func (r resourceClient[T, L]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions) (T, error) {
	out := r.newObj()
	err := r.request(r.rc.Patch(pt)).Name(name).VersionedParams(&opts, paramCodec()).Body(data).Do(ctx).Into(out)
	return out, err
}

func (r resourceClient[T, L]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return r.request(r.rc.Delete()).Name(name).Body(&opts).Do(ctx).Error()
}
