// Package driver is the seam between Bay and the machinery that runs sandboxes
// (Docker on one host, Kubernetes beyond). Its unit is the session: one or
// more containers that share a workspace volume and a network identity (on
// Docker: containers on a private network, reaching each other by name; on
// Kubernetes: one pod). Every driver passes the conformance suite in
// driver/drivertest, the in-memory fake in driver/fake included.
package driver

import (
	"context"
	"errors"
	"time"
)

// The error vocabulary of every driver: errors are wrapped so that errors.Is
// finds one of these whatever the backend.
var (
	// ErrNotFound: the session or volume does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: CreateSession of a session id that exists already.
	ErrConflict = errors.New("conflict")
	// ErrInUse: a volume cannot be deleted because a session still uses it;
	// retry after destroying that session.
	ErrInUse = errors.New("in use")
	// ErrImageNotFound: an image is not present and the pull policy forbids or
	// failed to fetch it (at CreateSession on Docker, at StartSession where the
	// node pulls it, as on Kubernetes). Distinct from ErrNotFound so a missing
	// image is never mistaken for a missing session.
	ErrImageNotFound = errors.New("image not found")
	// ErrUnschedulable: the orchestrator cannot place or admit the session: no
	// node fits its resources, its volume is not bound, a quota is exhausted.
	// A retry later may succeed.
	ErrUnschedulable = errors.New("cannot be scheduled")
	// ErrStartTimeout: StartSession placed the session but its containers
	// did not run within the driver's start timeout (a slow image unpack or
	// volume attach). A retry later may succeed.
	ErrStartTimeout = errors.New("did not start in time")
)

// Labels Bay puts on everything it creates (spec/COMPAT.md §6).
const (
	LabelManaged       = "bay.managed"
	LabelOwner         = "bay.owner"
	LabelSandboxID     = "bay.sandbox_id"
	LabelSessionID     = "bay.session_id" // set by the driver from SessionSpec.ID
	LabelCargoID       = "bay.cargo_id"
	LabelProfileID     = "bay.profile_id"
	LabelInstanceID    = "bay.instance_id"
	LabelRuntimePort   = "bay.runtime_port"
	LabelContainerName = "bay.container_name"
	LabelRuntimeType   = "bay.runtime_type"
)

// State is the observed state of a session or of one of its containers.
type State string

const (
	StateCreated  State = "created"
	StateRunning  State = "running"
	StateExited   State = "exited"
	StateNotFound State = "not_found"
)

// Resources limits one container.
type Resources struct {
	NanoCPUs    int64 // CPUs * 1e9; 0 = unlimited
	MemoryBytes int64 // 0 = unlimited
	PidsLimit   int64 // 0 = driver default (256)
}

// SessionSpec describes a session to create.
type SessionSpec struct {
	// ID identifies the session to the driver (Bay's session id): every later
	// call names it, names of what the driver creates derive from it, and
	// everything carries it as LabelSessionID.
	ID string
	// Labels go on everything the session is made of (all bay.* labels but
	// the session id and the per-container ones).
	Labels map[string]string
	// Volume is mounted read-write at /workspace in every container ("" = a
	// scratch directory that goes with the session).
	Volume     string
	Runtime    string  // OCI runtime, e.g. "runsc" ("" = default)
	NoNetwork  bool    // no network at all (the runtime port stays reachable for Bay)
	Egress     *Egress // nil = full egress (or none with NoNetwork)
	Containers []ContainerSpec
}

// ContainerSpec is one container of a session. The containers of a session
// reach each other by Name (the browser opens http://ship:8000/); their
// runtime ports must differ (on Kubernetes they share one network namespace).
type ContainerSpec struct {
	Name      string // unique in the session, a DNS label
	Image     string
	Env       map[string]string
	Port      int               // runtime port inside the container (8123 for Ship)
	Labels    map[string]string // extra labels of this container (e.g. bay.runtime_type)
	Resources Resources
}

// Egress is an outbound policy narrower than full: only the listed
// destinations are reachable and DNS resolves only the listed names. The
// driver enforces it outside the session, so code inside cannot lift it (on
// Docker: a per-policy bridge, nftables rules and a DNS forwarder in Bay; on
// Kubernetes it maps to a NetworkPolicy).
type Egress struct {
	Policy string   // names the policy (the profile id); sessions of one policy share its network and rules
	Allow  []string // CIDRs, IP addresses, host names, *.wildcard names (see internal/bay/egress.Parse)
}

// Session is what the driver observes of a session.
type Session struct {
	ID string
	// State: running when every container runs; created while none has run;
	// exited when any container stopped or is missing.
	State      State
	Labels     map[string]string // the session's labels (those of its primary container)
	CreatedAt  time.Time
	Containers []Container // in the order of the spec; the first is the primary
}

// Container is one container of an observed session.
type Container struct {
	Name string
	// ID is the engine's reference of the container (Docker: the container
	// id; Kubernetes: <pod>/<container>), for records and logs.
	ID       string
	State    State
	Endpoint string // http://host:port of its runtime; set by StartSession
}

// Container returns the container called name, or nil.
func (s *Session) Container(name string) *Container {
	for i := range s.Containers {
		if s.Containers[i].Name == name {
			return &s.Containers[i]
		}
	}
	return nil
}

// Driver runs sessions and volumes. All methods honour ctx.
type Driver interface {
	Ping(ctx context.Context) error

	// CreateSession creates (does not start) the session; images are pulled
	// per the driver's pull policy first. A session of that id existing
	// already is ErrConflict. On failure nothing of it is left.
	CreateSession(ctx context.Context, spec SessionSpec) (*Session, error)
	// StartSession starts every container and returns the session with the
	// endpoint of each. On failure the session is left for DestroySession.
	StartSession(ctx context.Context, id string) (*Session, error)
	// StopSession stops every container gracefully and keeps the session (state
	// exited; StartSession runs it again). Missing → nil.
	StopSession(ctx context.Context, id string) error
	// DestroySession removes everything of the session but its volume, at
	// once. Missing → nil.
	DestroySession(ctx context.Context, id string) error
	// InspectSession observes one session; missing → an error wrapping ErrNotFound.
	InspectSession(ctx context.Context, id string) (*Session, error)
	// ListSessions returns every session (any state) whose labels include all
	// the given ones.
	ListSessions(ctx context.Context, labels map[string]string) ([]Session, error)

	// CreateVolume creates a volume of sizeMB MiB (0 = the driver's default size;
	// drivers whose volumes have no size, like Docker's local volumes, ignore it).
	CreateVolume(ctx context.Context, name string, labels map[string]string, sizeMB int) error // exists → nil
	// DeleteVolume deletes it; missing → nil; used by a session → ErrInUse.
	DeleteVolume(ctx context.Context, name string) error
	// ListVolumes returns the names of volumes carrying all the given labels, sorted.
	ListVolumes(ctx context.Context, labels map[string]string) ([]string, error)
}

// MatchLabels reports whether have includes every one of want.
func MatchLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Aggregate is a session's state from its containers' (running when all
// run, created when none has run, else exited).
func Aggregate(cs []Container) State {
	if len(cs) == 0 {
		return StateNotFound
	}
	running, created := 0, 0
	for _, c := range cs {
		switch c.State {
		case StateRunning:
			running++
		case StateCreated:
			created++
		}
	}
	switch {
	case running == len(cs):
		return StateRunning
	case created == len(cs):
		return StateCreated
	}
	return StateExited
}
