package k8s

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// PullPolicy values (driver.image_pull_policy), mapped to the pod's imagePullPolicy.
const (
	PullIfNotPresent = "if_not_present"
	PullAlways       = "always"
	PullNever        = "never"
)

// Endpoint values (driver.k8s.endpoint): how Bay reaches a session's runtime.
const (
	// EndpointAuto: the pod IP when Bay runs in a cluster (KUBERNETES_SERVICE_HOST
	// is set), else the API server's pod proxy.
	EndpointAuto = "auto"
	// EndpointPodIP: http://<pod IP>:<port>; Bay must be on the cluster network.
	EndpointPodIP = "pod_ip"
	// EndpointAPIProxy: <API server>/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy,
	// with Bay's kube credentials (the Role needs pods/proxy).
	EndpointAPIProxy = "api_proxy"
)

// Defaults applied by New to zero-valued fields.
const (
	DefaultNamespace     = "bay"
	DefaultStorageSize   = "1Gi"
	DefaultStartTimeout  = 60 * time.Second
	DefaultStopGrace     = 10 * time.Second
	DefaultLabelPrefix   = "bay"
	DefaultWorkspaceUser = 1000
)

// Config configures the Kubernetes driver (config.yaml: driver.k8s.* and
// driver.image_pull_policy). Zero values take the documented defaults.
type Config struct {
	// Namespace pods and PVCs live in; it must exist. Default "bay".
	Namespace string
	// Kubeconfig is the path of a kubeconfig file; "" = in-cluster config
	// (the service account Bay runs as).
	Kubeconfig string
	// StorageClass of the PVCs; "" = the cluster's default class.
	StorageClass string
	// DefaultStorageSize is the size of a PVC whose cargo has no size; "1Gi".
	DefaultStorageSize string
	// ImagePullSecrets are names of secrets in Namespace, put on every pod.
	ImagePullSecrets []string
	// PullPolicy: if_not_present (default), always or never.
	PullPolicy string
	// StartTimeout bounds Start: scheduling, volume binding, image pull and
	// container start; default 60 s (driver.k8s.pod_startup_timeout).
	StartTimeout time.Duration
	// StopGrace is the grace period of Stop; default 10 s (Destroy uses 0).
	StopGrace time.Duration
	// LabelPrefix replaces "bay" in the bay.* label keys on the cluster, so two
	// Bays can share a namespace; default "bay".
	LabelPrefix string
	// ChownWorkspace runs an init container (root, CAP_CHOWN only, no other
	// capability) that gives the workspace volume's root to uid 1000 when it is
	// not already: volume plugins that ignore fsGroup (hostPath, some local
	// provisioners) hand out root-owned directories. nil means true.
	// Namespaces enforcing the "restricted" Pod Security level refuse it: set
	// false there (their CSI drivers honour fsGroup).
	ChownWorkspace *bool
	// Endpoint: auto (default), pod_ip or api_proxy.
	Endpoint string
	// Logger; nil = slog.Default().
	Logger *slog.Logger
}

// Bool returns a pointer to b, for the optional boolean fields of Config.
func Bool(b bool) *bool { return &b }

func (c Config) withDefaults() (Config, error) {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
		return c, fmt.Errorf("k8s: namespace %q: %v", c.Namespace, errs)
	}
	if c.DefaultStorageSize == "" {
		c.DefaultStorageSize = DefaultStorageSize
	}
	if _, err := resource.ParseQuantity(c.DefaultStorageSize); err != nil {
		return c, fmt.Errorf("k8s: default storage size %q: %w", c.DefaultStorageSize, err)
	}
	switch c.PullPolicy {
	case "":
		c.PullPolicy = PullIfNotPresent
	case PullIfNotPresent, PullAlways, PullNever:
	default:
		return c, fmt.Errorf("k8s: pull policy %q: want if_not_present, always or never", c.PullPolicy)
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.StopGrace <= 0 {
		c.StopGrace = DefaultStopGrace
	}
	if c.LabelPrefix == "" {
		c.LabelPrefix = DefaultLabelPrefix
	}
	if errs := validation.IsDNS1123Label(c.LabelPrefix); len(errs) > 0 {
		return c, fmt.Errorf("k8s: label prefix %q: %v", c.LabelPrefix, errs)
	}
	for _, s := range c.ImagePullSecrets {
		if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
			return c, fmt.Errorf("k8s: image pull secret %q: %v", s, errs)
		}
	}
	switch c.Endpoint {
	case "":
		c.Endpoint = EndpointAuto
	case EndpointAuto, EndpointPodIP, EndpointAPIProxy:
	default:
		return c, fmt.Errorf("k8s: endpoint %q: want auto, pod_ip or api_proxy", c.Endpoint)
	}
	if c.ChownWorkspace == nil {
		c.ChownWorkspace = Bool(true)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

var errNoConfig = errors.New("k8s: no kubeconfig given and not running in a cluster (driver.k8s.kubeconfig)")

// endpointMode resolves auto: the pod IP in a cluster, the proxy outside.
func endpointMode(mode string, inCluster bool) string {
	if mode != EndpointAuto {
		return mode
	}
	if inCluster {
		return EndpointPodIP
	}
	return EndpointAPIProxy
}
