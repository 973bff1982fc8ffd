package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"

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

// param is a query or header parameter.
type param struct {
	Name, In, Type, Desc string
	Required             bool
}

func q(name, typ, desc string) param { return param{Name: name, In: "query", Type: typ, Desc: desc} }
func hdr(name, desc string) param    { return param{Name: name, In: "header", Type: "string", Desc: desc} }
func reqQ(name, typ, desc string) param {
	return param{Name: name, In: "query", Type: typ, Desc: desc, Required: true}
}

// raw is a body that is not JSON (or not JSON only).
type raw struct {
	Type string // media type
	Desc string
}

// freeForm is a JSON object whose shape the text describes (a handler that
// writes a map or an anonymous struct).
type freeForm string

// noBody is an answer without a body.
type noBody string

// jsonOrStream is python/exec and shell/exec's answer: JSON, or Server-Sent
// Events with Accept: text/event-stream.
type jsonOrStream struct{ JSON any }

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
	fileErrs    = append(slices.Clone(sessionErrs), errs.FileNotFound, errs.InvalidPath)
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
		Responses: map[int]any{200: raw{"text/plain", "Prometheus text exposition format"}}},
	{Pattern: "GET /openapi.json", Tag: "meta", Summary: "This document", Access: public,
		Responses: map[int]any{200: freeForm("an OpenAPI 3.0 document")}},
	{Pattern: "GET /docs", Tag: "meta", Summary: "Browsable API documentation (self-contained HTML)", Access: public,
		Responses: map[int]any{200: raw{"text/html", "a page that renders /openapi.json"}}},
	{Pattern: "/mcp", Methods: []string{http.MethodGet, http.MethodPost, http.MethodDelete}, Tag: "mcp",
		Summary: "MCP server (streamable HTTP transport)", Access: byOwner,
		Description: "JSON-RPC messages of the Model Context Protocol; its tools call this API with the caller's credentials.",
		Request:     raw{"application/json", "a JSON-RPC message (POST)"},
		Responses: map[int]any{200: raw{"application/json", "a JSON-RPC answer, or text/event-stream"},
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
		Description: execDescr, Access: byOwner, Request: shipyard.PythonExecRequest{},
		Responses: map[int]any{200: jsonOrStream{shipyard.PythonResult{}}}, Errors: sessionErrs, Invalid: true},
	{Pattern: "POST /v1/sandboxes/{id}/shell/exec", Tag: "execution", Summary: "Run a shell command",
		Description: execDescr, Access: byOwner, Request: shipyard.ShellExecRequest{},
		Responses: map[int]any{200: jsonOrStream{wire.ShellResult{}}}, Errors: sessionErrs, Invalid: true},

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
		Request:   raw{"multipart/form-data", "fields: path (destination), file (the content)"},
		Responses: map[int]any{200: uploadResult{}}, Errors: fileErrs, Invalid: true},
	{Pattern: "GET /v1/sandboxes/{id}/filesystem/download", Tag: "filesystem", Summary: "Download a file (streamed)", Access: byOwner,
		Params:    []param{reqQ("path", "string", "file inside /workspace")},
		Responses: map[int]any{200: raw{"application/octet-stream", "the file's bytes"}}, Errors: fileErrs, Invalid: true},
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
		Responses: map[int]any{200: freeForm("{ports: [{port, url, ...}]}")}, Errors: sessionErrs},
	{Pattern: "POST /v1/sandboxes/{id}/ports/tokens", Tag: "ports", Summary: "A signed preview URL for a port", Access: byOwner,
		Request: portTokenRequest{}, Responses: map[int]any{201: freeForm("{token, url, expires_at, ...}")},
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
		Access:      byOwner, Request: raw{"*/*", "passed to the app"}, Passthrough: true,
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
		Request: shipyard.BrowserExecRequest{}, Responses: map[int]any{200: shipyard.BrowserResult{}}, Errors: sessionErrs, Invalid: true},
	{Pattern: "POST /v1/sandboxes/{id}/browser/exec_batch", Tag: "browser", Summary: "Run browser commands in order", Access: byOwner,
		Request: shipyard.BrowserBatchRequest{}, Responses: map[int]any{200: batchJSON{}}, Errors: sessionErrs, Invalid: true},
	{Pattern: "POST /v1/sandboxes/{id}/browser/skills/{skill_key}/run", Tag: "browser", Summary: "Replay a skill's active release", Access: byOwner,
		Request:   freeForm("{timeout?, stop_on_error?, description?, tags?, include_trace?}"),
		Responses: map[int]any{200: freeForm("{skill_key, release_id, execution_id, execution_time_ms, trace_ref, results, total_steps, completed_steps, success, duration_ms}")},
		Errors:    sessionErrs, Invalid: true},
	{Pattern: "GET /v1/sandboxes/{id}/browser/traces/{trace_ref}", Tag: "browser", Summary: "A recorded browser trace", Access: byOwner,
		Responses: map[int]any{200: freeForm("{trace_ref, trace}")}, Errors: sessionErrs},

	{Pattern: "POST /v1/skills/payloads", Tag: "skills", Summary: "Store a skill payload", Access: byOwner,
		Request: skillPayloadRequest{}, Responses: map[int]any{201: skillPayloadRef{}}, Errors: skillErrs, Invalid: true},
	{Pattern: "GET /v1/skills/payloads/{payload_ref...}", Tag: "skills", Summary: "Read a skill payload", Access: byOwner,
		Description: "payload_ref may contain slashes.",
		Responses:   map[int]any{200: freeForm("{payload_ref, kind, payload}")}, Errors: skillErrs},
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
// pattern an OpenAPI operation documents (test/baytest routes with it).
const PatternExtension = "x-pattern"

var wildcardRe = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// specPath turns a ServeMux pattern into its method (or "") and OpenAPI path.
func specPath(pattern string) (method, p string) {
	method, p, ok := strings.Cut(pattern, " ")
	if !ok {
		method, p = "", pattern
	}
	return method, wildcardRe.ReplaceAllString(p, "{$1}")
}

// pathParams lists the wildcards of a pattern.
func pathParams(pattern string) []string {
	var out []string
	for _, m := range wildcardRe.FindAllStringSubmatch(pattern, -1) {
		out = append(out, m[1])
	}
	return out
}

// OpenAPI builds Bay's OpenAPI document from the operations table.
func OpenAPI() (*openapi3.T, error) {
	g := newSchemaGen()
	doc := &openapi3.T{
		OpenAPI: "3.0.3",
		Info: &openapi3.Info{Title: "Shipyard Bay", Version: Version,
			Description: "Bay's HTTP API. Errors are {\"error\":{code,message,request_id,details}}; " +
				"request validation errors are FastAPI's 422 {\"detail\":[...]}. Every answer carries X-Request-Id."},
		Paths: openapi3.NewPaths(),
		Components: &openapi3.Components{
			Schemas: openapi3.Schemas{},
			SecuritySchemes: openapi3.SecuritySchemes{"bearer": &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
				Type: "http", Scheme: "bearer", Description: "an API key (or the configured token)"}}},
		},
	}
	for _, op := range operations {
		method, p := specPath(op.Pattern)
		methods := op.Methods
		if method != "" {
			methods = []string{method}
		}
		if len(methods) == 0 {
			return nil, fmt.Errorf("%s: a method-less pattern needs Methods", op.Pattern)
		}
		for _, m := range methods {
			o, err := g.operation(op, m)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op.Pattern, err)
			}
			item := doc.Paths.Value(p)
			if item == nil {
				item = &openapi3.PathItem{}
				doc.Paths.Set(p, item)
			}
			if item.GetOperation(m) != nil {
				return nil, fmt.Errorf("%s %s documented twice", m, p)
			}
			item.SetOperation(m, o)
		}
	}
	if err := g.err(); err != nil {
		return nil, err
	}
	for name, s := range g.components {
		doc.Components.Schemas[name] = s
	}
	// The generator leaves $refs unresolved; a round trip through the loader
	// resolves them (validation and response checks need the values).
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return openapi3.NewLoader().LoadFromData(b)
}

// OpenAPIJSON is the document as served at /openapi.json.
func OpenAPIJSON() ([]byte, error) {
	doc, err := OpenAPI()
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	return json.Marshal(doc)
}

// schemaGen turns Go values into schemas: named structs become components.
type schemaGen struct {
	components openapi3.Schemas
	names      map[string]reflect.Type
	errs       []error
}

func newSchemaGen() *schemaGen {
	return &schemaGen{components: openapi3.Schemas{}, names: map[string]reflect.Type{}}
}

func (g *schemaGen) err() error {
	if len(g.errs) == 0 {
		return nil
	}
	return g.errs[0]
}

// typeName names a component: the Go name without a JSON suffix, capitalised.
func (g *schemaGen) typeName(t reflect.Type) string {
	n := strings.TrimSuffix(t.Name(), "JSON")
	if n == "" {
		return ""
	}
	n = strings.ToUpper(n[:1]) + n[1:]
	if prev, ok := g.names[n]; ok && prev != t {
		g.errs = append(g.errs, fmt.Errorf("schema name %s for both %v and %v", n, prev, t))
	}
	g.names[n] = t
	return n
}

var timeType = reflect.TypeFor[time.Time]()

// customize adds what openapi3gen leaves out: required (a field without
// omitempty is always written), nullable slices, maps and interfaces (Go
// encodes nil ones as null), and closed response objects.
func customize(strict bool) openapi3gen.SchemaCustomizerFn {
	return func(_ string, t reflect.Type, _ reflect.StructTag, s *openapi3.Schema) error {
		switch t.Kind() {
		case reflect.Slice, reflect.Map, reflect.Interface:
			if t != reflect.TypeFor[[]byte]() {
				s.Nullable = true
			}
		case reflect.Struct:
			if t == timeType {
				return nil
			}
			s.Required = nil
			for _, f := range reflect.VisibleFields(t) {
				tag, ok := f.Tag.Lookup("json")
				if !ok || !f.IsExported() || tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if name == "" {
					name = f.Name
				}
				if !slices.Contains(strings.Split(opts, ","), "omitempty") && !slices.Contains(s.Required, name) {
					s.Required = append(s.Required, name)
				}
			}
			if s.Type == nil {
				s.Type = &openapi3.Types{"object"}
			}
			if strict {
				no := false
				s.AdditionalProperties = openapi3.AdditionalProperties{Has: &no}
			}
		}
		return nil
	}
}

// schema generates v's schema; strict closes objects (responses: a field
// the handler writes but the type lacks is drift).
func (g *schemaGen) schema(v any, strict bool) (*openapi3.SchemaRef, error) {
	gen := openapi3gen.NewGenerator(
		openapi3gen.SchemaCustomizer(customize(strict)),
		openapi3gen.CreateTypeNameGenerator(func(t reflect.Type) string {
			n := g.typeName(t)
			if !strict && n != "" {
				n += "Input"
				if strings.HasSuffix(n, "RequestInput") {
					n = strings.TrimSuffix(n, "Input")
				}
			}
			return n
		}),
		openapi3gen.CreateComponentSchemas(openapi3gen.ExportComponentSchemasOptions{
			ExportComponentSchemas: true, ExportTopLevelSchema: true}),
	)
	schemas := openapi3.Schemas{}
	ref, err := gen.NewSchemaRefForValue(v, schemas)
	if err != nil {
		return nil, err
	}
	for name, s := range schemas {
		g.components[name] = s
	}
	return ref, nil
}

func (g *schemaGen) operation(op operation, method string) (*openapi3.Operation, error) {
	o := &openapi3.Operation{
		Summary:     op.Summary,
		Description: op.Description,
		Tags:        []string{op.Tag},
		OperationID: operationID(method, op.Pattern),
		Responses:   openapi3.NewResponses(),
		Extensions:  map[string]any{PatternExtension: op.Pattern},
	}
	if op.Access == public {
		o.Security = &openapi3.SecurityRequirements{}
	} else {
		o.Security = &openapi3.SecurityRequirements{{"bearer": []string{}}}
	}
	for _, name := range pathParams(op.Pattern) {
		o.Parameters = append(o.Parameters, &openapi3.ParameterRef{Value: openapi3.NewPathParameter(name).
			WithSchema(openapi3.NewStringSchema())})
	}
	for _, p := range op.Params {
		var s *openapi3.Schema
		switch p.Type {
		case "integer":
			s = openapi3.NewIntegerSchema()
		case "boolean":
			s = openapi3.NewBoolSchema()
		default:
			s = openapi3.NewStringSchema()
		}
		o.Parameters = append(o.Parameters, &openapi3.ParameterRef{Value: &openapi3.Parameter{
			Name: p.Name, In: p.In, Description: p.Desc, Required: p.Required,
			Schema: &openapi3.SchemaRef{Value: s}}})
	}
	if op.Request != nil {
		content, err := g.content(op.Request, false)
		if err != nil {
			return nil, err
		}
		o.RequestBody = &openapi3.RequestBodyRef{Value: &openapi3.RequestBody{Content: content}}
	}
	if op.Passthrough {
		desc := "the app's answer, any status; Bay's own refusals (401, 403 forbidden, 404 not_found, " +
			"502 ship_error, 503 session_not_ready) carry the error body"
		o.Responses.Set("default", &openapi3.ResponseRef{Value: &openapi3.Response{Description: &desc,
			Content: openapi3.Content{"*/*": openapi3.NewMediaType()}}})
		return o, nil
	}
	for status, v := range op.Responses {
		r := &openapi3.Response{}
		desc := http.StatusText(status)
		switch v := v.(type) {
		case noBody:
			desc = string(v)
		case raw:
			desc = v.Desc
		}
		r.Description = &desc
		if _, empty := v.(noBody); !empty {
			content, err := g.content(v, true)
			if err != nil {
				return nil, err
			}
			r.Content = content
		}
		o.Responses.Set(strconv.Itoa(status), &openapi3.ResponseRef{Value: r})
	}
	return o, g.errors(op, o)
}

// errors documents the operation's error answers: its codes, the ones every
// route of its kind can answer, each under the status statusOf gives it.
func (g *schemaGen) errors(op operation, o *openapi3.Operation) error {
	codes := append([]errs.Code{errs.Internal}, op.Errors...)
	switch op.Access {
	case byOwner:
		codes = append(codes, errs.Unauthorized, errs.RateLimited, errs.DatabaseUnavailable, errs.Validation)
	case adminOnly:
		codes = append(codes, errs.Unauthorized, errs.AdminRequired, errs.DatabaseUnavailable, errs.Validation)
	}
	if len(pathParams(op.Pattern)) > 0 {
		codes = append(codes, errs.NotFound) // an id no row can have
	}
	byStatus := map[int][]string{}
	for _, c := range codes {
		st, ok := statusOf[c]
		if !ok {
			return fmt.Errorf("error code %s has no status in statusOf", c)
		}
		if !slices.Contains(byStatus[st], string(c)) {
			byStatus[st] = append(byStatus[st], string(c))
		}
	}
	ref, err := g.schema(wire.ErrorBody{}, true)
	if err != nil {
		return err
	}
	for st, cs := range byStatus {
		if o.Responses.Status(st) != nil {
			continue // the route answers this status itself (e.g. GC's 503)
		}
		sort.Strings(cs)
		desc := "error: " + strings.Join(cs, ", ")
		o.Responses.Set(strconv.Itoa(st), &openapi3.ResponseRef{Value: &openapi3.Response{Description: &desc,
			Content: openapi3.NewContentWithJSONSchemaRef(ref)}})
	}
	if op.Invalid {
		vref, err := g.schema(validationBody{}, true)
		if err != nil {
			return err
		}
		desc := "invalid body or query (FastAPI's shape)"
		o.Responses.Set("422", &openapi3.ResponseRef{Value: &openapi3.Response{Description: &desc,
			Content: openapi3.NewContentWithJSONSchemaRef(vref)}})
	}
	return nil
}

// content is a request or response body's media types.
func (g *schemaGen) content(v any, strict bool) (openapi3.Content, error) {
	switch v := v.(type) {
	case raw:
		if v.Type == "*/*" {
			mt := openapi3.NewMediaType()
			mt.Extensions = map[string]any{"x-description": v.Desc}
			return openapi3.Content{v.Type: mt}, nil
		}
		s := openapi3.NewSchema()
		if v.Type != "application/json" {
			s = openapi3.NewStringSchema()
			s.Format = "binary"
		}
		s.Description = v.Desc
		return openapi3.Content{v.Type: openapi3.NewMediaType().WithSchema(s)}, nil
	case freeForm:
		s := openapi3.NewObjectSchema()
		s.Description = string(v)
		return openapi3.NewContentWithJSONSchema(s), nil
	case jsonOrStream:
		c, err := g.content(v.JSON, strict)
		if err != nil {
			return nil, err
		}
		ev := openapi3.NewStringSchema()
		ev.Description = "Server-Sent Events (with Accept: text/event-stream)"
		c["text/event-stream"] = openapi3.NewMediaType().WithSchema(ev)
		return c, nil
	}
	ref, err := g.schema(v, strict)
	if err != nil {
		return nil, err
	}
	return openapi3.NewContentWithJSONSchemaRef(ref), nil
}

// operationID is a stable id: method and path words, e.g. post_v1_sandboxes_id_python_exec.
func operationID(method, pattern string) string {
	_, p := specPath(pattern)
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '/' || r == '_' || r == '-' || r == '.':
			if !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

//go:embed docs.html
var docsHTML []byte

// serveSpec answers /openapi.json (built once per API; no auth, like upstream's).
func (a *API) serveSpec(w http.ResponseWriter, r *http.Request) {
	a.specOnce.Do(func() { a.spec, a.specErr = OpenAPIJSON() })
	if a.specErr != nil {
		a.writeError(w, r, a.specErr)
		return
	}
	writeRaw(w, http.StatusOK, a.spec)
}

// serveDocs answers /docs: a self-contained page (no CDN) rendering /openapi.json.
func (a *API) serveDocs(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
	_, _ = w.Write(docsHTML)
}
