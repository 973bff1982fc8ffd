// Package wire holds the JSON shapes of Bay's /v1 API that both sides use:
// Bay's handlers encode them and the Go SDK (package shipyard) decodes them,
// so a field added or renamed on one side is added or renamed on the other.
//
// It has no behaviour and imports nothing but the standard library, so that
// Bay's internal packages and outside programs can both depend on it. Field
// order is the order Bay writes (upstream's order).
package wire

import "encoding/json"

// Error codes Bay answers in ErrorBody.Error.Code.
const (
	CodeNotFound               = "not_found"
	CodeUnauthorized           = "unauthorized"
	CodeForbidden              = "forbidden"
	CodeQuotaExceeded          = "quota_exceeded"
	CodeSessionNotReady        = "session_not_ready"
	CodeTimeout                = "timeout"
	CodeShipError              = "ship_error"
	CodeConflict               = "conflict"
	CodeSandboxExpired         = "sandbox_expired"
	CodeSandboxTTLInfinite     = "sandbox_ttl_infinite"
	CodeValidation             = "validation_error"
	CodeFileNotFound           = "file_not_found"
	CodeCapabilityNotSupported = "capability_not_supported"
	CodeInvalidPath            = "invalid_path"
	CodeInternal               = "internal_error"
	CodePayloadTooLarge        = "payload_too_large"
	CodeProcessNotFound        = "process_not_found"
	CodeProfileUnavailable     = "profile_unavailable"
	CodeDatabaseUnavailable    = "database_unavailable" // 503 + Retry-After: Bay's database is away (a restart)
	CodeDriverUnavailable      = "driver_unavailable"   // 503 + Retry-After: the container engine is away
)

// ErrorBody is Bay's error answer: {"error":{code,message,request_id,details}}.
type ErrorBody struct {
	Error ErrorInfo `json:"error"`
}

// ErrorInfo is the inside of ErrorBody.
type ErrorInfo struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id"`
	Details   map[string]any `json:"details,omitempty"`
}

// Container is one container of a sandbox's running session.
type Container struct {
	Name         string   `json:"name"`
	RuntimeType  string   `json:"runtime_type"`
	Status       string   `json:"status"`
	Version      *string  `json:"version"`
	Capabilities []string `json:"capabilities"`
	Healthy      *bool    `json:"healthy"`
}

// Sandbox is Bay's sandbox resource.
type Sandbox struct {
	ID            string      `json:"id"`
	Status        string      `json:"status"`
	Profile       string      `json:"profile"`
	CargoID       string      `json:"cargo_id"`
	Capabilities  []string    `json:"capabilities"`
	CreatedAt     string      `json:"created_at"`
	ExpiresAt     *string     `json:"expires_at"`
	IdleExpiresAt *string     `json:"idle_expires_at"`
	Containers    []Container `json:"containers"`
}

// SandboxPage is the answer of GET /v1/sandboxes.
type SandboxPage struct {
	Items      []Sandbox `json:"items"`
	NextCursor *string   `json:"next_cursor"`
}

// Cargo is a persistent /workspace volume.
type Cargo struct {
	ID                 string  `json:"id"`
	Managed            bool    `json:"managed"`
	ManagedBySandboxID *string `json:"managed_by_sandbox_id"`
	Backend            string  `json:"backend"`
	SizeLimitMB        int     `json:"size_limit_mb"`
	// SizeLimitEnforced says whether the backend holds the volume to
	// SizeLimitMB (Docker's local volumes cannot).
	SizeLimitEnforced bool   `json:"size_limit_enforced"`
	CreatedAt         string `json:"created_at"`
	LastAccessedAt    string `json:"last_accessed_at"`
}

// CargoPage is the answer of GET /v1/cargos.
type CargoPage struct {
	Items      []Cargo `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// Process states of a background process.
const (
	ProcessRunning   = "running"
	ProcessCompleted = "completed"
	ProcessFailed    = "failed"
	ProcessKilled    = "killed"
)

// StartProcessRequest is the body of POST …/processes.
type StartProcessRequest struct {
	Command string            `json:"command"`
	Cwd     string            `json:"cwd,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
}

// Process is a background process of a sandbox.
type Process struct {
	ProcessID string  `json:"process_id"`
	PID       int     `json:"pid"`
	Command   string  `json:"command"`
	Status    string  `json:"status"`
	ExitCode  *int    `json:"exit_code"`
	StartedAt string  `json:"started_at"`
	EndedAt   *string `json:"ended_at"`
	// TimedOut is set on the answer of …/wait when the timeout passed first.
	TimedOut bool `json:"timed_out,omitempty"`
}

// ProcessList is the answer of GET …/processes.
type ProcessList struct {
	Processes []Process `json:"processes"`
}

// ProcessOutput is a slice of a process's combined output, from Offset to
// NextOffset (byte offsets). Truncated: output before Offset was dropped
// from the bounded buffer, so the slice does not start where asked.
type ProcessOutput struct {
	ProcessID  string `json:"process_id"`
	Output     string `json:"output"`
	Offset     int64  `json:"offset"`
	NextOffset int64  `json:"next_offset"`
	Truncated  bool   `json:"truncated"`
	Status     string `json:"status"`
	ExitCode   *int   `json:"exit_code"`
}

// ShellResult is the answer of shell/exec (and a streamed call's result event).
type ShellResult struct {
	Success         bool    `json:"success"`
	Output          string  `json:"output"`
	Error           *string `json:"error"` // stderr, or why the command could not run
	ExitCode        *int    `json:"exit_code"`
	ExecutionID     string  `json:"execution_id"`
	ExecutionTimeMs int64   `json:"execution_time_ms"`
	Command         *string `json:"command"` // the command, with include_code
	TimedOut        bool    `json:"timed_out"`
	Truncated       bool    `json:"truncated"`
	Notice          *string `json:"notice"`
}

// Server-Sent Event types of a streamed python/exec or shell/exec.
const (
	EventStdout    = "stdout"
	EventStderr    = "stderr"
	EventDisplay   = "display"
	EventException = "exception"
	EventResult    = "result"
	EventError     = "error"
)

// StreamText is the data of a stdout or stderr event.
type StreamText struct {
	Text string `json:"text"`
}

// StreamDisplay is the data of a display event: MIME type → value
// (text/plain a string, image/png base64, application/json any JSON).
type StreamDisplay struct {
	Data map[string]json.RawMessage `json:"data"`
}

// StreamException is the data of an exception event.
type StreamException struct {
	Ename     string   `json:"ename"`
	Evalue    string   `json:"evalue"`
	Traceback []string `json:"traceback"`
}

// Execution is one execution history entry (GET /v1/sandboxes/{id}/history and
// its siblings).
type Execution struct {
	ID               string  `json:"id"`
	SessionID        string  `json:"session_id"`
	ExecType         string  `json:"exec_type"`
	Code             string  `json:"code"`
	Success          bool    `json:"success"`
	ExecutionTimeMs  int64   `json:"execution_time_ms"`
	Output           *string `json:"output"`
	Error            *string `json:"error"`
	PayloadRef       *string `json:"payload_ref"`
	Description      *string `json:"description"`
	Tags             *string `json:"tags"`
	Notes            *string `json:"notes"`
	LearnEnabled     bool    `json:"learn_enabled"`
	LearnStatus      *string `json:"learn_status"`
	LearnError       *string `json:"learn_error"`
	LearnProcessedAt *string `json:"learn_processed_at"`
	CreatedAt        string  `json:"created_at"`
}
