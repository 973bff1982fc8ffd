package api

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/shipyard/shipyard/docs/openapi"
	"github.com/shipyard/shipyard/internal/apispec"
	"github.com/shipyard/shipyard/internal/bay/capability"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/pkg/shipyard"
	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// The OpenAPI document is generated from the operations table below and the
// Go types the handlers encode (reflection over their json tags): a field
// renamed in a handler's struct is renamed in the document. The table itself
// is checked against the routes registered on the mux (openapi_test.go), and
// end-to-end tests validate real answers against the document
// (test/baytest Options.ValidateSpec).

// access says who may call an operation.
type access int

const (
	public    access = iota // no credentials
	byOwner                 // an API key (or anonymous when allowed)
	adminOnly               // an admin key
)

type (
	param        = apispec.Param
	raw          = apispec.Raw
	freeForm     = apispec.FreeForm
	noBody       = apispec.NoBody
	jsonOrStream = apispec.JSONOrStream
)

var (
	q    = apispec.Query
	hdr  = apispec.Header
	reqQ = apispec.RequiredQuery
)

// operation documents one pattern registered in routes().
type operation struct {
	Pattern     string   // exactly as registered with a.handle
	Methods     []string // documented methods of a method-less pattern
	Tag         string
	Summary     string
	Description string
	Access      access
	Params      []param
	Request     any // JSON body: a Go value of its shape, a raw, or nil
	Responses   map[int]any
	Errors      []errs.Code // domain codes answered (status from statusOf)
	Invalid     bool        // 422 with FastAPI's {"detail":[...]} on a bad body or query
	// Passthrough: the answer is another server's, any status (the port
	// proxy); only a default response is documented.
	Passthrough bool
}

// Doc-only shapes: what handlers write as maps with fixed keys, and request
// bodies the SDK has no type for (handlers read bodies field by field, see
// validate.go). Each lists exactly the keys the handler writes or reads.
type (
	statusBody struct {
		Status string `json:"status"`
	}
	detailBody struct {
		Detail string `json:"detail"`
	}
	validationBody struct {
		Detail []fieldError `json:"detail"`
	}
	fileContent struct {
		Content string `json:"content"`
	}
	writeFileRequest struct {
		Path    string `json:"path"`
		Content string `json:"content"`
	}
	uploadResult struct {
		Status string `json:"status"`
		Path   string `json:"path"`
		Size   int64  `json:"size"`
	}
	dirListing struct {
		Entries []map[string]any `json:"entries"`
	}
	extendTTLRequest struct {
		ExtendBy int `json:"extend_by"`
	}
	createCargoRequest struct {
		SizeLimitMB int `json:"size_limit_mb,omitempty"`
	}
	historyPage struct {
		Entries []executionJSON `json:"entries"`
		Total   int             `json:"total"`
	}
	patchHistoryRequest struct {
		Description *string `json:"description,omitempty"`
		Tags        *string `json:"tags,omitempty"`
		Notes       *string `json:"notes,omitempty"`
	}
	profileList struct {
		Items []profileJSON `json:"items"`
	}
	gcRunRequest struct {
		Tasks []string `json:"tasks,omitempty"`
	}
	mintKeyRequest struct {
		Owner string `json:"owner"`
		Admin bool   `json:"admin,omitempty"`
		Label string `json:"label,omitempty"`
	}
	keyPage struct {
		Items      []keyJSON `json:"items"`
		NextCursor *string   `json:"next_cursor"`
	}
	quotaBody struct {
		Owner    string       `json:"owner"`
		Limits   limitsJSON   `json:"limits"`
		Override overrideJSON `json:"override"`
		Usage    usageJSON    `json:"usage"`
	}
	portTokenRequest struct {
		Port int `json:"port"`
		TTL  int `json:"ttl,omitempty"`
	}
	waitRequest struct {
		Timeout float64 `json:"timeout,omitempty"`
	}
	signalRequest struct {
		Signal string `json:"signal"`
	}
	skillPayloadRequest struct {
		Payload any    `json:"payload"`
		Kind    string `json:"kind,omitempty"`
	}
	skillPayloadRef struct {
		PayloadRef string `json:"payload_ref"`
		Kind       string `json:"kind"`
	}
	skillCandidatePage struct {
		Items []skillCandidateJSON `json:"items"`
		Total int                  `json:"total"`
	}
	skillReleasePage struct {
		Items []skillReleaseJSON `json:"items"`
		Total int                `json:"total"`
	}
	deleteReasonRequest struct {
		Reason *string `json:"reason,omitempty"`
	}
)

// Error codes by kind of route (statusOf gives each its status).
var (
	sandboxErrs = []errs.Code{errs.NotFound, errs.Validation}
	// Routes that reach the sandbox's session (and may start it).
	sessionErrs = []errs.Code{errs.NotFound, errs.Validation, errs.SandboxExpired, errs.SessionNotReady,
		errs.ShipError, errs.Timeout, errs.CapabilityNotSupported, errs.ProfileUnavailable,
		errs.DriverUnavailable, errs.QuotaExceeded, errs.Conflict, errs.TooLarge}
	fileErrs    = append(slices.Clone(sessionErrs), errs.FileNotFound, errs.InvalidPath, errs.Forbidden)
	processErrs = append(slices.Clone(sessionErrs), errs.ProcessNotFound)
	skillErrs   = []errs.Code{errs.NotFound, errs.Validation, errs.Conflict}
)

var (
	pageParams = []param{q("limit", "integer", "page size (1..200, default 50)"),
		q("cursor", "string", "next_cursor of the previous page")}
	idemKey   = hdr("Idempotency-Key", "replays the first answer for a repeated key (same owner and body)")
	execDescr = "With Accept: text/event-stream the answer is a stream of Server-Sent Events " +
		"(stdout, stderr, display, exception, then result or error; see docs/api.md); " +
		"kill_on_disconnect ends the command when the client goes away."
)

// operations is Bay's API, one entry per registered pattern.
var operations = []operation{
	{Pattern: "GET /health", Tag: "meta", Summary: "Health with dependency checks", Access: public,
		Responses: map[int]any{200: freeForm("{status, version, checks: {name: ok|unavailable}, uptime_seconds, instance_id, replica_id}"),
			503: freeForm("same shape, status \"degraded\": a dependency is down")}},
	{Pattern: "GET /healthz", Tag: "meta", Summary: "Liveness (no I/O)", Access: public,
		Responses: map[int]any{200: statusBody{}}},
	{Pattern: "GET /metrics", Tag: "meta", Summary: "Prometheus metrics (when enabled)", Access: public,
		Responses: map[int]any{200: raw{Type: "text/plain", Desc: "Prometheus text exposition format"}}},
	{Pattern: "GET /openapi.json", Tag: "meta", Summary: "This document", Access: public,
		Responses: map[int]any{200: freeForm("an OpenAPI 3.0 document")}},
	{Pattern: "GET /docs", Tag: "meta", Summary: "Browsable API documentation (self-contained HTML)", Access: public,
		Responses: map[int]any{200: raw{Type: "text/html", Desc: "a page that renders /openapi.json"}}},
	{Pattern: "/mcp", Methods: []string{http.MethodGet, http.MethodPost, http.MethodDelete}, Tag: "mcp",
		Summary: "MCP server (streamable HTTP transport)", Access: byOwner,
		Description: "JSON-RPC messages of the Model Context Protocol; its tools call this API with the caller's credentials.",
		Request:     raw{Type: "application/json", Desc: "a JSON-RPC message (POST)"},
		Responses: map[int]any{200: raw{Type: "application/json", Desc: "a JSON-RPC answer, or text/event-stream"},
			202: noBody("notification accepted")}, Errors: []errs.Code{errs.Validation}},

	{Pattern: "GET /v1/profiles", Tag: "profiles", Summary: "List profiles", Access: public,
		Params:    []param{q("detail", "boolean", "include description and containers")},
		Responses: map[int]any{200: profileList{}}, Invalid: true},

	{Pattern: "POST /v1/sandboxes", Tag: "sandboxes", Summary: "Create a sandbox", Access: byOwner,
		Params: []param{idemKey}, Request: shipyard.CreateSandboxRequest{},
		Responses: map[int]any{201: wire.Sandbox{}},
		Errors:    []errs.Code{errs.Validation, errs.NotFound, errs.QuotaExceeded, errs.Conflict, errs.ProfileUnavailable, errs.TooLarge},
		Invalid:   true},
	{Pattern: "GET /v1/sandboxes", Tag: "sandboxes", Summary: "List sandboxes", Access: byOwner,
		Params: pageParams, Responses: map[int]any{200: wire.SandboxPage{}}, Invalid: true},
	{Pattern: "GET /v1/sandboxes/{id}", Tag: "sandboxes", Summary: "Get a sandbox", Access: byOwner,
		Responses: map[int]any{200: wire.Sandbox{}}, Errors: sandboxErrs},
	{Pattern: "DELETE /v1/sandboxes/{id}", Tag: "sandboxes", Summary: "Delete a sandbox (and its managed cargo)", Access: byOwner,
		Responses: map[int]any{204: noBody("deleted")}, Errors: append(slices.Clone(sandboxErrs), errs.Conflict, errs.DriverUnavailable)},
	{Pattern: "POST /v1/sandboxes/{id}/extend_ttl", Tag: "sandboxes", Summary: "Extend a sandbox's TTL", Access: byOwner,
		Params: []param{idemKey}, Request: extendTTLRequest{}, Responses: map[int]any{200: wire.Sandbox{}},
		Errors: append(slices.Clone(sandboxErrs), errs.SandboxExpired, errs.SandboxTTLInfinite, errs.Conflict), Invalid: true},
	{Pattern: "POST /v1/sandboxes/{id}/keepalive", Tag: "sandboxes", Summary: "Reset the idle timer", Access: byOwner,
		Responses: map[int]any{200: statusBody{}}, Errors: append(slices.Clone(sandboxErrs), errs.SandboxExpired)},
	{Pattern: "POST /v1/sandboxes/{id}/stop", Tag: "sandboxes", Summary: "Stop the sandbox's session (keeps the cargo)", Access: byOwner,
		Responses: map[int]any{200: statusBody{}}, Errors: append(slices.Clone(sandboxErrs), errs.DriverUnavailable)},

	{Pattern: "POST /v1/sandboxes/{id}/python/exec", Tag: "execution", Summary: "Run Python in the sandbox's kernel",
		Description: "data is {execution_count, output}: output is the kernel's rich output as Ship gives it " +
			"({text, images: [{mime: base64}]}; {} when the kernel could not start). " + execDescr,
		Access: byOwner, Request: shipyard.PythonExecRequest{},
		Responses: map[int]any{200: jsonOrStream{JSON: pythonBody(&capability.PythonResult{}, nil)}}, Errors: sessionErrs, Invalid: true},
	{Pattern: "POST /v1/sandboxes/{id}/shell/exec", Tag: "execution", Summary: "Run a shell command",
		Description: execDescr, Access: byOwner, Request: shipyard.ShellExecRequest{},
		Responses: map[int]any{200: jsonOrStream{JSON: wire.ShellResult{}}}, Errors: sessionErrs, Invalid: true},

	{Pattern: "GET /v1/sandboxes/{id}/filesystem/files", Tag: "filesystem", Summary: "Read a text file", Access: byOwner,
		Params:    []param{reqQ("path", "string", "path relative to /workspace (or absolute inside it)")},
		Responses: map[int]any{200: fileContent{}}, Errors: fileErrs, Invalid: true},
	{Pattern: "PUT /v1/sandboxes/{id}/filesystem/files", Tag: "filesystem", Summary: "Write a text file", Access: byOwner,
		Request: writeFileRequest{}, Responses: map[int]any{200: statusBody{}}, Errors: fileErrs, Invalid: true},
	{Pattern: "DELETE /v1/sandboxes/{id}/filesystem/files", Tag: "filesystem", Summary: "Delete a file or directory", Access: byOwner,
		Params:    []param{reqQ("path", "string", "path inside /workspace")},
		Responses: map[int]any{200: statusBody{}}, Errors: fileErrs, Invalid: true},
	{Pattern: "GET /v1/sandboxes/{id}/filesystem/directories", Tag: "filesystem", Summary: "List a directory", Access: byOwner,
		Params:    []param{q("path", "string", "directory (default the workspace)")},
		Responses: map[int]any{200: dirListing{}}, Errors: fileErrs, Invalid: true},
	{Pattern: "POST /v1/sandboxes/{id}/filesystem/upload", Tag: "filesystem", Summary: "Upload a file (streamed)", Access: byOwner,
		Request:   raw{Type: "multipart/form-data", Desc: "fields: path (destination), file (the content)"},
		Responses: map[int]any{200: uploadResult{}}, Errors: fileErrs, Invalid: true},
	{Pattern: "GET /v1/sandboxes/{id}/filesystem/download", Tag: "filesystem", Summary: "Download a file (streamed)", Access: byOwner,
		Params:    []param{reqQ("path", "string", "file inside /workspace")},
		Responses: map[int]any{200: raw{Type: "application/octet-stream", Desc: "the file's bytes"}}, Errors: fileErrs, Invalid: true},
	{Pattern: "GET /v1/sandboxes/{id}/terminal", Tag: "execution", Summary: "Interactive terminal (WebSocket)", Access: byOwner,
		Description: "Upgrades to a WebSocket carrying a PTY's bytes; see docs/api.md.",
		Responses:   map[int]any{101: noBody("switching to the WebSocket protocol")}, Errors: sessionErrs},

	{Pattern: "GET /v1/sandboxes/{id}/history", Tag: "history", Summary: "List executions", Access: byOwner,
		Params: []param{q("exec_type", "string", "python, shell, browser or browser_batch"),
			q("success_only", "boolean", ""), q("limit", "integer", "1..500, default 100"), q("offset", "integer", ""),
			q("tags", "string", "comma-separated tags (any matches)"), q("has_notes", "boolean", ""),
			q("has_description", "boolean", "")},
		Responses: map[int]any{200: historyPage{}}, Errors: sandboxErrs, Invalid: true},
	{Pattern: "GET /v1/sandboxes/{id}/history/last", Tag: "history", Summary: "The last execution", Access: byOwner,
		Params:    []param{q("exec_type", "string", "python, shell, browser or browser_batch")},
		Responses: map[int]any{200: executionJSON{}}, Errors: sandboxErrs, Invalid: true},
	{Pattern: "GET /v1/sandboxes/{id}/history/{eid}", Tag: "history", Summary: "One execution", Access: byOwner,
		Responses: map[int]any{200: executionJSON{}}, Errors: sandboxErrs},
	{Pattern: "PATCH /v1/sandboxes/{id}/history/{eid}", Tag: "history", Summary: "Annotate an execution", Access: byOwner,
		Request: patchHistoryRequest{}, Responses: map[int]any{200: executionJSON{}}, Errors: sandboxErrs, Invalid: true},

	{Pattern: "POST /v1/cargos", Tag: "cargos", Summary: "Create a cargo (persistent volume)", Access: byOwner,
		Params: []param{idemKey}, Request: createCargoRequest{}, Responses: map[int]any{201: wire.Cargo{}},
		Errors: []errs.Code{errs.Validation, errs.QuotaExceeded, errs.Conflict, errs.DriverUnavailable}, Invalid: true},
	{Pattern: "GET /v1/cargos", Tag: "cargos", Summary: "List cargos", Access: byOwner,
		Params:    append(slices.Clone(pageParams), q("managed", "boolean", "only managed (or unmanaged) cargos")),
		Responses: map[int]any{200: wire.CargoPage{}}, Invalid: true},
	{Pattern: "GET /v1/cargos/{cid}", Tag: "cargos", Summary: "Get a cargo", Access: byOwner,
		Responses: map[int]any{200: wire.Cargo{}}, Errors: []errs.Code{errs.NotFound}},
	{Pattern: "DELETE /v1/cargos/{cid}", Tag: "cargos", Summary: "Delete a cargo", Access: byOwner,
		Responses: map[int]any{204: noBody("deleted")}, Errors: []errs.Code{errs.NotFound, errs.Conflict, errs.DriverUnavailable}},

	{Pattern: "POST /v1/admin/gc/run", Tag: "admin", Summary: "Run garbage collection now", Access: adminOnly,
		Request: gcRunRequest{}, Responses: map[int]any{200: freeForm("the pass's report per task"),
			423: detailBody{}, 503: detailBody{}}, Invalid: true},
	{Pattern: "GET /v1/admin/gc/status", Tag: "admin", Summary: "Garbage collection status", Access: adminOnly,
		Responses: map[int]any{200: freeForm("scheduler state and the last pass per task"), 503: detailBody{}}},
	{Pattern: "POST /v1/admin/keys", Tag: "admin", Summary: "Mint an API key", Access: adminOnly,
		Request: mintKeyRequest{}, Responses: map[int]any{201: keyJSON{}}, Errors: []errs.Code{errs.Validation}, Invalid: true},
	{Pattern: "GET /v1/admin/keys", Tag: "admin", Summary: "List API keys", Access: adminOnly,
		Params:    append(slices.Clone(pageParams), q("include_revoked", "boolean", "")),
		Responses: map[int]any{200: keyPage{}}, Invalid: true},
	{Pattern: "POST /v1/admin/keys/{key_id}/rotate", Tag: "admin", Summary: "Rotate an API key", Access: adminOnly,
		Responses: map[int]any{201: keyJSON{}}, Errors: []errs.Code{errs.NotFound, errs.Conflict}},
	{Pattern: "DELETE /v1/admin/keys/{key_id}", Tag: "admin", Summary: "Revoke an API key", Access: adminOnly,
		Responses: map[int]any{200: keyJSON{}}, Errors: []errs.Code{errs.NotFound}},
	{Pattern: "GET /v1/admin/quotas/{owner}", Tag: "admin", Summary: "An owner's quota and usage", Access: adminOnly,
		Responses: map[int]any{200: quotaBody{}}, Errors: []errs.Code{errs.NotFound, errs.Validation}},
	{Pattern: "PUT /v1/admin/quotas/{owner}", Tag: "admin", Summary: "Override an owner's quota", Access: adminOnly,
		Request: overrideJSON{}, Responses: map[int]any{200: quotaBody{}}, Errors: []errs.Code{errs.NotFound, errs.Validation}, Invalid: true},
	{Pattern: "DELETE /v1/admin/quotas/{owner}", Tag: "admin", Summary: "Reset an owner's quota to the defaults", Access: adminOnly,
		Responses: map[int]any{200: quotaBody{}}, Errors: []errs.Code{errs.NotFound, errs.Validation}},

	{Pattern: "GET /v1/sandboxes/{id}/ports", Tag: "ports", Summary: "Ports listening in the sandbox", Access: byOwner,
		Responses: map[int]any{200: freeForm("{ports: [{port, address, reachable, url}]}")}, Errors: sessionErrs},
	{Pattern: "POST /v1/sandboxes/{id}/ports/tokens", Tag: "ports", Summary: "A signed preview URL for a port", Access: byOwner,
		Request: portTokenRequest{}, Responses: map[int]any{201: freeForm("{token, url, port, expires_at}")},
		Errors: append(slices.Clone(sessionErrs), errs.Forbidden), Invalid: true},
	{Pattern: "DELETE /v1/sandboxes/{id}/ports/tokens", Tag: "ports", Summary: "Revoke preview tokens (of one port with ?port=)", Access: byOwner,
		Params: []param{q("port", "integer", "only this port's tokens")}, Responses: map[int]any{204: noBody("revoked")},
		Errors: sandboxErrs, Invalid: true},
	{Pattern: "/v1/sandboxes/{id}/ports/{port}", Methods: []string{http.MethodGet}, Tag: "ports",
		Summary: "Redirect to the port's root (…/{port}/)", Access: byOwner,
		Responses: map[int]any{308: noBody("to the same path with a trailing slash")}, Errors: []errs.Code{errs.NotFound, errs.Validation, errs.Forbidden}},
	{Pattern: "/v1/sandboxes/{id}/ports/{port}/{path...}", Methods: []string{http.MethodGet, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete}, Tag: "ports", Summary: "Proxy to a server in the sandbox (any method, WebSocket too)",
		Description: "Authenticated with an API key or a preview token (?shipyard_token=, then a cookie). The answer is the app's.",
		Access:      byOwner, Request: raw{Type: "*/*", Desc: "passed to the app"}, Passthrough: true,
		Responses: map[int]any{}},

	{Pattern: "POST /v1/sandboxes/{id}/processes", Tag: "processes", Summary: "Start a background process", Access: byOwner,
		Request: wire.StartProcessRequest{}, Responses: map[int]any{201: wire.Process{}}, Errors: processErrs, Invalid: true},
	{Pattern: "GET /v1/sandboxes/{id}/processes", Tag: "processes", Summary: "List background processes", Access: byOwner,
		Responses: map[int]any{200: wire.ProcessList{}}, Errors: processErrs},
	{Pattern: "GET /v1/sandboxes/{id}/processes/{process_id}", Tag: "processes", Summary: "One background process", Access: byOwner,
		Responses: map[int]any{200: wire.Process{}}, Errors: processErrs},
	{Pattern: "GET /v1/sandboxes/{id}/processes/{process_id}/output", Tag: "processes", Summary: "Read output from an offset", Access: byOwner,
		Params:    []param{q("offset", "integer", "byte offset (next_offset of the previous read)"), q("max_bytes", "integer", "at most this many bytes")},
		Responses: map[int]any{200: wire.ProcessOutput{}}, Errors: processErrs, Invalid: true},
	{Pattern: "POST /v1/sandboxes/{id}/processes/{process_id}/wait", Tag: "processes", Summary: "Wait for the end (with a timeout)", Access: byOwner,
		Request: waitRequest{}, Responses: map[int]any{200: wire.Process{}}, Errors: processErrs, Invalid: true},
	{Pattern: "POST /v1/sandboxes/{id}/processes/{process_id}/signal", Tag: "processes", Summary: "Send a signal", Access: byOwner,
		Request: signalRequest{}, Responses: map[int]any{200: wire.Process{}}, Errors: processErrs, Invalid: true},
	{Pattern: "DELETE /v1/sandboxes/{id}/processes/{process_id}", Tag: "processes", Summary: "Kill (if running) and remove", Access: byOwner,
		Responses: map[int]any{204: noBody("removed")}, Errors: processErrs},

	{Pattern: "POST /v1/sandboxes/{id}/browser/exec", Tag: "browser", Summary: "Run one browser command", Access: byOwner,
		Request: shipyard.BrowserExecRequest{}, Responses: map[int]any{200: browserExecJSON{}}, Errors: sessionErrs, Invalid: true},
	{Pattern: "POST /v1/sandboxes/{id}/browser/exec_batch", Tag: "browser", Summary: "Run browser commands in order", Access: byOwner,
		Request: shipyard.BrowserBatchRequest{}, Responses: map[int]any{200: batchJSON{}}, Errors: sessionErrs, Invalid: true},
	{Pattern: "POST /v1/sandboxes/{id}/browser/skills/{skill_key}/run", Tag: "browser", Summary: "Replay a skill's active release", Access: byOwner,
		Request:   freeForm("{timeout?, stop_on_error?, description?, tags?, include_trace?}"),
		Responses: map[int]any{200: skillRunJSON{}},
		Errors:    sessionErrs, Invalid: true},
	{Pattern: "GET /v1/sandboxes/{id}/browser/traces/{trace_ref}", Tag: "browser", Summary: "A recorded browser trace", Access: byOwner,
		Responses: map[int]any{200: traceJSON{}}, Errors: sessionErrs},

	{Pattern: "POST /v1/skills/payloads", Tag: "skills", Summary: "Store a skill payload", Access: byOwner,
		Request: skillPayloadRequest{}, Responses: map[int]any{201: skillPayloadRef{}}, Errors: skillErrs, Invalid: true},
	{Pattern: "GET /v1/skills/payloads/{payload_ref...}", Tag: "skills", Summary: "Read a skill payload", Access: byOwner,
		Description: "payload_ref may contain slashes.",
		Responses:   map[int]any{200: skillPayloadJSON{}}, Errors: skillErrs},
	{Pattern: "POST /v1/skills/candidates", Tag: "skills", Summary: "Create a skill candidate", Access: byOwner,
		Request: shipyard.CandidateRequest{}, Responses: map[int]any{201: skillCandidateJSON{}}, Errors: skillErrs, Invalid: true},
	{Pattern: "GET /v1/skills/candidates", Tag: "skills", Summary: "List skill candidates", Access: byOwner,
		Params: []param{q("status", "string", ""), q("skill_key", "string", ""), q("limit", "integer", "1..500, default 100"),
			q("offset", "integer", "")},
		Responses: map[int]any{200: skillCandidatePage{}}, Invalid: true},
	{Pattern: "GET /v1/skills/candidates/{candidate_id}", Tag: "skills", Summary: "One skill candidate", Access: byOwner,
		Responses: map[int]any{200: skillCandidateJSON{}}, Errors: skillErrs},
	{Pattern: "DELETE /v1/skills/candidates/{candidate_id}", Tag: "skills", Summary: "Delete a skill candidate", Access: byOwner,
		Request: deleteReasonRequest{}, Responses: map[int]any{200: skillDeletedJSON{}}, Errors: skillErrs, Invalid: true},
	{Pattern: "POST /v1/skills/candidates/{candidate_id}/evaluate", Tag: "skills", Summary: "Record an evaluation", Access: byOwner,
		Request: shipyard.EvaluationRequest{}, Responses: map[int]any{200: skillEvaluationJSON{}}, Errors: skillErrs, Invalid: true},
	{Pattern: "POST /v1/skills/candidates/{candidate_id}/promote", Tag: "skills", Summary: "Promote a candidate to a release", Access: byOwner,
		Request: shipyard.PromoteRequest{}, Responses: map[int]any{200: skillReleaseJSON{}}, Errors: skillErrs, Invalid: true},
	{Pattern: "GET /v1/skills/releases", Tag: "skills", Summary: "List skill releases", Access: byOwner,
		Params: []param{q("skill_key", "string", ""), q("stage", "string", ""), q("active_only", "boolean", ""),
			q("limit", "integer", "1..500, default 100"), q("offset", "integer", "")},
		Responses: map[int]any{200: skillReleasePage{}}, Invalid: true},
	{Pattern: "DELETE /v1/skills/releases/{release_id}", Tag: "skills", Summary: "Delete a skill release", Access: byOwner,
		Request: deleteReasonRequest{}, Responses: map[int]any{200: skillDeletedJSON{}}, Errors: skillErrs, Invalid: true},
	{Pattern: "GET /v1/skills/releases/{release_id}/health", Tag: "skills", Summary: "A release's health", Access: byOwner,
		Responses: map[int]any{200: skillHealthJSON{}}, Errors: skillErrs},
	{Pattern: "POST /v1/skills/releases/{release_id}/rollback", Tag: "skills", Summary: "Roll a release back", Access: byOwner,
		Responses: map[int]any{200: skillReleaseJSON{}}, Errors: skillErrs},
}

// PatternExtension names the operation extension that carries the ServeMux
// pattern an OpenAPI operation documents.
const PatternExtension = apispec.PatternExtension

// specOperations is Bay's route table as apispec declarations, its error
// answers included (docs/openapi/bay.json is generated from it).
func specOperations() ([]apispec.Operation, error) {
	ops := make([]apispec.Operation, 0, len(operations))
	for _, op := range operations {
		o, err := op.spec()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op.Pattern, err)
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// specInfo heads Bay's document.
func specInfo() apispec.Info {
	return apispec.Info{Title: "Shipyard Bay", Version: Version,
		Description: "Bay's HTTP API. Errors are {\"error\":{code,message,request_id,details}}; " +
			"request validation errors are FastAPI's 422 {\"detail\":[...]}. Every answer carries X-Request-Id.",
		Bearer: "an API key (or the configured token)"}
}

// spec is the operation with its error answers: its codes and the ones every
// route of its kind can answer, each under the status statusOf gives it.
func (op operation) spec() (apispec.Operation, error) {
	o := apispec.Operation{Pattern: op.Pattern, Methods: op.Methods, Tag: op.Tag, Summary: op.Summary,
		Description: op.Description, Public: op.Access == public, Params: op.Params, Request: op.Request,
		Responses: maps.Clone(op.Responses)}
	if o.Responses == nil {
		o.Responses = map[int]any{}
	}
	if op.Passthrough {
		o.Responses = map[int]any{0: raw{Type: "*/*", Desc: "the app's answer, any status; Bay's own refusals (401, " +
			"403 forbidden, 404 not_found, 502 ship_error, 503 session_not_ready) carry the error body"}}
		return o, nil
	}
	codes := append([]errs.Code{errs.Internal}, op.Errors...)
	switch op.Access {
	case byOwner:
		codes = append(codes, errs.Unauthorized, errs.RateLimited, errs.DatabaseUnavailable, errs.Validation)
	case adminOnly:
		codes = append(codes, errs.Unauthorized, errs.AdminRequired, errs.DatabaseUnavailable, errs.Validation)
	}
	if len(apispec.PathParams(op.Pattern)) > 0 {
		codes = append(codes, errs.NotFound) // an id no row can have
	}
	byStatus := map[int][]string{}
	for _, c := range codes {
		st, ok := statusOf[c]
		if !ok {
			return o, fmt.Errorf("error code %s has no status in statusOf", c)
		}
		if !slices.Contains(byStatus[st], string(c)) {
			byStatus[st] = append(byStatus[st], string(c))
		}
	}
	for st, cs := range byStatus {
		if _, own := o.Responses[st]; own {
			continue // the route answers this status itself (e.g. GC's 503)
		}
		sort.Strings(cs)
		o.Responses[st] = apispec.Described{Desc: "error: " + strings.Join(cs, ", "), Body: wire.ErrorBody{}}
	}
	if op.Invalid {
		o.Responses[http.StatusUnprocessableEntity] = apispec.Described{
			Desc: "invalid body or query (FastAPI's shape)", Body: validationBody{}}
	}
	return o, nil
}

// serveSpec answers /openapi.json: the generated document (no auth, like upstream's).
func (a *API) serveSpec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, openapi.Bay())
}

// serveDocs answers /docs: a self-contained page rendering /openapi.json.
func (a *API) serveDocs(w http.ResponseWriter, r *http.Request) { apispec.ServeDocs(w, r) }
