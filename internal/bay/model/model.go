// Package model holds Bay's records: what the store persists and services pass around.
package model

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// NewID returns prefix + "-" + 12 lowercase hex digits (upstream: uuid4().hex[:12]).
func NewID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Session states (desired and observed).
const (
	SessionPending  = "pending"
	SessionStarting = "starting"
	SessionRunning  = "running"
	SessionFailed   = "failed"
	SessionStopped  = "stopped"
)

// Sandbox statuses as clients see them.
const (
	StatusIdle     = "idle"
	StatusStarting = "starting"
	StatusReady    = "ready"
	StatusFailed   = "failed"
	StatusExpired  = "expired"
	StatusDeleted  = "deleted"
)

// Warm-pool states of a sandbox row.
const (
	WarmPending   = "pending"
	WarmAvailable = "available"
	WarmClaimed   = "claimed"
	WarmRetiring  = "retiring"
)

// WarmOwner owns warm sandboxes until they are claimed.
const WarmOwner = "warm-pool"

// Sandbox is the stable handle a client holds.
type Sandbox struct {
	ID               string
	Owner            string
	ProfileID        string
	CargoID          string
	CurrentSessionID string // "" = no session
	CreatedAt        time.Time
	ExpiresAt        *time.Time // nil = infinite TTL
	IdleExpiresAt    *time.Time
	LastActiveAt     time.Time
	DeletedAt        *time.Time
	Warm             bool   // in the warm pool, not yet claimed
	WarmState        string // "" for ordinary sandboxes
	WarmReadyAt      *time.Time
	WarmRotateAt     *time.Time
}

// Status computes the client-visible status with one `now` (no clock reads here).
func (s *Sandbox) Status(now time.Time, sess *Session) string {
	switch {
	case s.DeletedAt != nil:
		return StatusDeleted
	case s.Expired(now):
		return StatusExpired
	case sess == nil:
		return StatusIdle
	}
	switch sess.ObservedState {
	case SessionRunning:
		return StatusReady
	case SessionPending, SessionStarting:
		return StatusStarting
	case SessionFailed:
		return StatusFailed
	}
	return StatusIdle
}

// Expired reports whether the TTL has passed at now.
func (s *Sandbox) Expired(now time.Time) bool {
	return s.ExpiresAt != nil && now.After(*s.ExpiresAt)
}

// ContainerInfo is one container of a (multi-container) session.
type ContainerInfo struct {
	Name         string   `json:"name"`
	ContainerID  string   `json:"container_id"`
	Endpoint     string   `json:"endpoint"`
	Status       string   `json:"status"`
	RuntimeType  string   `json:"runtime_type"`
	Capabilities []string `json:"capabilities"`
}

// Session is one running container set of a sandbox; internal and replaceable.
type Session struct {
	ID            string
	SandboxID     string
	ProfileID     string
	ContainerID   string // primary container
	Endpoint      string // primary endpoint
	Token         string // per-session SHIP_TOKEN; never logged or returned
	Network       string // session network of a multi-container session
	DesiredState  string
	ObservedState string
	Containers    []ContainerInfo
	CreatedAt     time.Time
	StartedAt     *time.Time // when the current start attempt began
	LastActiveAt  time.Time
	Version       int64 // optimistic-lock version
}

// Cargo is the persistent /workspace volume.
type Cargo struct {
	ID                 string
	Owner              string
	Managed            bool
	ManagedBySandboxID string // "" = none
	Backend            string
	DriverRef          string // volume name
	SizeLimitMB        int
	CreatedAt          time.Time
	LastAccessedAt     time.Time
}

// Execution is one history entry.
type Execution struct {
	ID               string
	SandboxID        string
	Owner            string
	SessionID        string
	ExecType         string
	Code             string
	Success          bool
	ExecutionTimeMs  int64
	Output           *string
	Error            *string
	PayloadRef       *string
	Description      *string
	Tags             *string
	Notes            *string
	LearnEnabled     bool
	LearnStatus      *string
	LearnError       *string
	LearnProcessedAt *time.Time
	CreatedAt        time.Time
}

// IdempotencyRecord stores a replayable response. Status 0 = still executing.
type IdempotencyRecord struct {
	Owner       string
	Key         string
	Fingerprint string
	Status      int
	Response    []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time
	// Holder is the replica running the request that reserved the key (while
	// Status is 0): when that replica dies, another may take the key over.
	Holder string
}

// FormatTime renders upstream's timestamp form: naive UTC ISO-8601 with
// microseconds, the fraction omitted when it is zero.
func FormatTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05")
	}
	return t.Format("2006-01-02T15:04:05.000000")
}
