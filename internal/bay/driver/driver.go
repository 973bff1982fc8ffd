// Package driver is the seam between Bay and the machinery that runs sandboxes
// (Docker on one host, Kubernetes beyond). Every driver passes the conformance
// suite in driver/drivertest.
package driver

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned (wrapped) when an instance, volume or network does not exist.
var ErrNotFound = errors.New("not found")

// ErrImageNotFound is returned (wrapped) by Create when the image is not present and
// the pull policy forbids or failed to fetch it. It is distinct from ErrNotFound so a
// missing image is never mistaken for a missing instance.
var ErrImageNotFound = errors.New("image not found")

// ErrUnschedulable is returned (wrapped) when the orchestrator cannot place
// or admit an instance: no node fits its resources, its volume is not bound, a
// resource quota is exhausted (Kubernetes). A retry later may succeed.
var ErrUnschedulable = errors.New("cannot be scheduled")

// ErrInUse is returned (wrapped) when a volume or network cannot be deleted because
// an instance still uses it; the caller may retry after destroying that instance.
var ErrInUse = errors.New("in use")

// Labels Bay puts on everything it creates (spec/COMPAT.md §6).
const (
	LabelManaged       = "bay.managed"
	LabelOwner         = "bay.owner"
	LabelSandboxID     = "bay.sandbox_id"
	LabelSessionID     = "bay.session_id"
	LabelCargoID       = "bay.cargo_id"
	LabelProfileID     = "bay.profile_id"
	LabelInstanceID    = "bay.instance_id"
	LabelRuntimePort   = "bay.runtime_port"
	LabelContainerName = "bay.container_name"
	LabelRuntimeType   = "bay.runtime_type"
)

// State is the observed state of an instance.
type State string

const (
	StateCreated  State = "created"
	StateRunning  State = "running"
	StateExited   State = "exited"
	StateNotFound State = "not_found"
)

// Resources limits one instance.
type Resources struct {
	NanoCPUs    int64 // CPUs * 1e9; 0 = unlimited
	MemoryBytes int64 // 0 = unlimited
	PidsLimit   int64 // 0 = driver default (256)
}

// InstanceSpec describes one container (pod) to create.
type InstanceSpec struct {
	Name      string // e.g. bay-session-<session_id>
	Hostname  string // "" = driver default
	Image     string
	Env       map[string]string // real environment variables
	Labels    map[string]string // all bay.* labels, set by the caller
	Volume    string            // volume name mounted read-write at /workspace
	Port      int               // runtime port inside the instance (8123 for Ship)
	Network   string            // session network to join ("" = driver's configured network / default)
	Runtime   string            // OCI runtime, e.g. "runsc" ("" = default)
	NoNetwork bool              // profile asked for no network at all
	Egress    *Egress           // nil = full egress (or none with NoNetwork)
	Resources Resources
}

// Egress is an outbound policy narrower than full: only the listed
// destinations are reachable and DNS resolves only the listed names. The
// driver enforces it outside the instance, so code inside cannot lift it (on
// Docker: a per-policy bridge, nftables rules and a DNS forwarder in Bay; on
// Kubernetes it maps to a NetworkPolicy).
type Egress struct {
	Policy string   // names the policy (the profile id); instances of one policy share its network and rules
	Allow  []string // CIDRs, IP addresses, host names, *.wildcard names (see internal/bay/egress.Parse)
}

// Instance is what the driver observes.
type Instance struct {
	ID        string
	Name      string
	State     State
	Labels    map[string]string
	CreatedAt time.Time
}

// Driver runs instances and volumes. All methods honour ctx.
type Driver interface {
	Ping(ctx context.Context) error
	// Create creates (does not start) an instance; the image is pulled per the
	// driver's pull policy first. Returns the instance id.
	Create(ctx context.Context, spec InstanceSpec) (string, error)
	// Start starts it and returns the endpoint Bay reaches the runtime at, e.g. http://127.0.0.1:49153.
	Start(ctx context.Context, id string) (endpoint string, err error)
	Stop(ctx context.Context, id string) error    // graceful stop, instance kept; missing → nil
	Destroy(ctx context.Context, id string) error // force remove; missing → nil
	Status(ctx context.Context, id string) (State, error)
	// List returns every instance (any state) carrying all the given labels.
	List(ctx context.Context, labels map[string]string) ([]Instance, error)

	// CreateVolume creates a volume of sizeMB MiB (0 = the driver's default size;
	// drivers whose volumes have no size, like Docker's local volumes, ignore it).
	CreateVolume(ctx context.Context, name string, labels map[string]string, sizeMB int) error // exists → nil
	DeleteVolume(ctx context.Context, name string) error                                       // missing → nil
	// ListVolumes returns the names of volumes carrying all the given labels.
	ListVolumes(ctx context.Context, labels map[string]string) ([]string, error)

	CreateNetwork(ctx context.Context, name string, labels map[string]string) error // exists → nil
	DeleteNetwork(ctx context.Context, name string) error                           // missing → nil
}
