package server

import (
	"io"
	"net/http"

	"github.com/shipyard/shipyard/docs/openapi"
	"github.com/shipyard/shipyard/internal/apispec"
	"github.com/shipyard/shipyard/internal/ship/process"
)

// Ship's OpenAPI document, served at /openapi.json (with /docs) behind the
// token like every route but /health. Schemas come from the types the
// handlers encode where they are named types; answers written as maps and
// request bodies read into anonymous structs are described as objects with
// their keys listed. The conformance test compares the table with the
// patterns routes() registers.

// recordingMux registers on the ServeMux and remembers each pattern.
type recordingMux struct {
	mux      *http.ServeMux
	patterns *[]string
}

func (m recordingMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	*m.patterns = append(*m.patterns, pattern)
	m.mux.HandleFunc(pattern, h)
}

func (m recordingMux) Handle(pattern string, h http.Handler) {
	*m.patterns = append(*m.patterns, pattern)
	m.mux.Handle(pattern, h)
}

// Doc-only shapes of answers written as maps with fixed keys.
type (
	detailBody struct {
		Detail string `json:"detail"`
	}
	validationBody struct {
		Detail []fieldError `json:"detail"`
	}
	messageBody struct {
		Success bool   `json:"success"`
		Message string `json:"message"`
	}
	portsBody struct {
		Ports []ListeningPort `json:"ports"`
	}
	processList struct {
		Processes []process.Info `json:"processes"`
	}
	startedProcess struct {
		process.Info
		Notice *string `json:"notice,omitempty"`
	}
	processOutput struct {
		ProcessID  string `json:"process_id"`
		Output     string `json:"output"`
		Offset     int64  `json:"offset"`
		NextOffset int64  `json:"next_offset"`
		Truncated  bool   `json:"truncated"`
		Status     string `json:"status"`
		ExitCode   *int   `json:"exit_code"`
	}
)

// shipErrors are the {"detail": ...} answers a route can give.
func shipErrors(statuses ...int) map[int]any {
	out := map[int]any{
		http.StatusUnauthorized:        apispec.Described{Desc: "missing or wrong token", Body: detailBody{}},
		http.StatusInternalServerError: apispec.Described{Desc: "internal error", Body: detailBody{}},
	}
	for _, st := range statuses {
		if st == http.StatusUnprocessableEntity {
			out[st] = apispec.Described{Desc: "invalid body or query (FastAPI's shape)", Body: validationBody{}}
			continue
		}
		out[st] = apispec.Described{Desc: http.StatusText(st), Body: detailBody{}}
	}
	return out
}

// with adds the success answers to an error set.
func with(errs map[int]any, ok map[int]any) map[int]any {
	for k, v := range ok {
		errs[k] = v
	}
	return errs
}

var (
	bodyErrs    = []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity}
	fsErrs      = append([]int{http.StatusForbidden, http.StatusNotFound}, bodyErrs...)
	processErrs = append([]int{http.StatusNotFound}, bodyErrs...)
	pyExec      = apispec.FreeForm("{success, execution_count, output: {text, images: [{mime: base64}], other MIME types}, " +
		"error, timed_out, kernel_restarted, notice, truncated}")
)

var shipOperations = []apispec.Operation{
	{Pattern: "GET /{$}", Tag: "meta", Summary: "Root", Responses: with(shipErrors(), map[int]any{200: apispec.FreeForm("{message}")})},
	{Pattern: "GET /health", Tag: "meta", Summary: "Health (no token needed)", Public: true,
		Responses: map[int]any{200: healthBody{}}},
	{Pattern: "GET /stat", Tag: "meta", Summary: "Service identity", Responses: with(shipErrors(),
		map[int]any{200: apispec.FreeForm("{service, version, status, author}")})},
	{Pattern: "GET /meta", Tag: "meta", Summary: "Runtime, workspace, capabilities and built-in skills",
		Responses: with(shipErrors(), map[int]any{200: apispec.FreeForm("{runtime: {name, version, api_version, build}, " +
			"workspace: {mount_path}, capabilities: {name: {operations, endpoints, ...}}, built_in_skills}")})},
	{Pattern: "GET /ports", Tag: "meta", Summary: "TCP ports user code listens on", Responses: with(shipErrors(),
		map[int]any{200: portsBody{}})},
	{Pattern: "GET /metrics", Tag: "meta", Summary: "Prometheus metrics", Responses: with(shipErrors(),
		map[int]any{200: apispec.Raw{Type: "text/plain", Desc: "Prometheus text exposition format"}})},
	{Pattern: "GET /openapi.json", Tag: "meta", Summary: "This document", Responses: with(shipErrors(),
		map[int]any{200: apispec.FreeForm("an OpenAPI 3.0 document")})},
	{Pattern: "GET /docs", Tag: "meta", Summary: "Browsable API documentation (self-contained HTML)", Responses: with(shipErrors(),
		map[int]any{200: apispec.Raw{Type: "text/html", Desc: "a page that renders openapi.json"}})},

	{Pattern: "POST /fs/create_file", Tag: "filesystem", Summary: "Create a file",
		Request:   apispec.FreeForm("{path, content?, mode? (0..0o7777)}"),
		Responses: with(shipErrors(fsErrs...), map[int]any{200: apispec.FreeForm("{success, message, path}")})},
	{Pattern: "POST /fs/read_file", Tag: "filesystem", Summary: "Read a text file",
		Request:   apispec.FreeForm("{path, encoding?, offset?, limit?}"),
		Responses: with(shipErrors(fsErrs...), map[int]any{200: apispec.FreeForm("{content, path, size}")})},
	{Pattern: "POST /fs/write_file", Tag: "filesystem", Summary: "Write a text file",
		Request:   apispec.FreeForm("{path, content, mode?}"),
		Responses: with(shipErrors(fsErrs...), map[int]any{200: apispec.FreeForm("{success, message, path, size}")})},
	{Pattern: "POST /fs/edit_file", Tag: "filesystem", Summary: "Replace text in a file",
		Request:   apispec.FreeForm("{path, old_string, new_string, replace_all?, encoding?}"),
		Responses: with(shipErrors(fsErrs...), map[int]any{200: apispec.FreeForm("{success, message, path, replacements, size}")})},
	{Pattern: "POST /fs/delete_file", Tag: "filesystem", Summary: "Delete a file or directory",
		Request: apispec.FreeForm("{path}"), Responses: with(shipErrors(fsErrs...), map[int]any{200: messageBody{}})},
	{Pattern: "POST /fs/list_dir", Tag: "filesystem", Summary: "List a directory",
		Request:   apispec.FreeForm("{path?, show_hidden?}"),
		Responses: with(shipErrors(fsErrs...), map[int]any{200: apispec.FreeForm("{files: [...], current_path, truncated}")})},
	{Pattern: "POST /fs/upload", Tag: "filesystem", Summary: "Upload a file (streamed)",
		Request:   apispec.Raw{Type: "multipart/form-data", Desc: "fields: file_path, file"},
		Responses: with(shipErrors(fsErrs...), map[int]any{200: apispec.FreeForm("{success, message, file_path, size, error}")})},
	{Pattern: "GET /fs/download", Tag: "filesystem", Summary: "Download a file (streamed)",
		Params: []apispec.Param{apispec.RequiredQuery("file_path", "string", "file inside the workspace")},
		Responses: with(shipErrors(fsErrs...), map[int]any{200: apispec.Raw{Type: "application/octet-stream",
			Desc: "the file's bytes"}})},

	{Pattern: "POST /ipython/exec", Tag: "python", Summary: "Run a cell in the kernel",
		Description: "With Accept: text/event-stream: stdout, stderr, display and exception events, then result (the JSON answer).",
		Request:     apispec.FreeForm("{code, timeout?, silent?, kill_on_disconnect?}"),
		Responses:   with(shipErrors(bodyErrs...), map[int]any{200: apispec.JSONOrStream{JSON: pyExec}})},
	{Pattern: "GET /ipython/kernel/status", Tag: "python", Summary: "Kernel status",
		Responses: with(shipErrors(), map[int]any{200: apispec.FreeForm("{status, has_kernel, workspace}")})},
	{Pattern: "POST /ipython/kernel/restart", Tag: "python", Summary: "Restart the kernel (state is lost)",
		Responses: with(shipErrors(), map[int]any{200: messageBody{}})},
	{Pattern: "DELETE /ipython/kernel", Tag: "python", Summary: "Shut the kernel down",
		Responses: with(shipErrors(http.StatusNotFound), map[int]any{200: messageBody{}})},

	{Pattern: "POST /shell/exec", Tag: "shell", Summary: "Run a shell command",
		Description: "With Accept: text/event-stream: stdout and stderr events, then result (the JSON answer). " +
			"background: true starts a background process (see /shell/processes).",
		Request:   apispec.FreeForm("{command, cwd?, env?, timeout?, shell?, background?, kill_on_disconnect?}"),
		Responses: with(shipErrors(bodyErrs...), map[int]any{200: apispec.JSONOrStream{JSON: shellResponse{}}})},
	{Pattern: "GET /shell/processes", Tag: "processes", Summary: "List background processes",
		Responses: with(shipErrors(), map[int]any{200: processList{}})},
	{Pattern: "POST /shell/processes", Tag: "processes", Summary: "Start a background process",
		Request:   apispec.FreeForm("{command, cwd?, env?}"),
		Responses: with(shipErrors(append([]int{http.StatusTooManyRequests, http.StatusServiceUnavailable}, processErrs...)...), map[int]any{201: startedProcess{}})},
	{Pattern: "GET /shell/processes/{id}", Tag: "processes", Summary: "A process with its recent output",
		Responses: with(shipErrors(processErrs...), map[int]any{200: processView{}})},
	{Pattern: "POST /shell/processes/{id}/wait", Tag: "processes", Summary: "Wait for the end (timeout seconds)",
		Params:    []apispec.Param{apispec.Query("timeout", "number", "seconds")},
		Responses: with(shipErrors(processErrs...), map[int]any{200: processView{}})},
	{Pattern: "POST /shell/processes/{id}/kill", Tag: "processes", Summary: "Kill the process group",
		Responses: with(shipErrors(processErrs...), map[int]any{200: processView{}})},
	{Pattern: "GET /shell/processes/{id}/output", Tag: "processes", Summary: "Merged output from a byte offset",
		Params: []apispec.Param{apispec.Query("offset", "integer", "byte offset"),
			apispec.Query("max_bytes", "integer", "at most this many bytes")},
		Responses: with(shipErrors(processErrs...), map[int]any{200: processOutput{}})},
	{Pattern: "POST /shell/processes/{id}/signal", Tag: "processes", Summary: "Send a signal to the process group",
		Request:   apispec.FreeForm("{signal}: a name (TERM, SIGKILL, ...) or number"),
		Responses: with(shipErrors(append([]int{http.StatusTooManyRequests}, processErrs...)...), map[int]any{200: process.Info{}})},
	{Pattern: "DELETE /shell/processes/{id}", Tag: "processes", Summary: "Kill (if running) and forget",
		Responses: with(shipErrors(processErrs...), map[int]any{204: apispec.NoBody("removed")})},

	{Pattern: "GET /term/ws", Tag: "terminal", Summary: "Interactive terminal (WebSocket)",
		Params: []apispec.Param{apispec.Query("cols", "integer", ""), apispec.Query("rows", "integer", "")},
		Responses: with(shipErrors(http.StatusBadRequest), map[int]any{
			101: apispec.NoBody("switching to the WebSocket protocol")})},
}

// specOperations is Ship's route table as apispec declarations
// (docs/openapi/ship.json is generated from it).
func specOperations() []apispec.Operation { return shipOperations }

// specInfo heads Ship's document.
func specInfo() apispec.Info {
	return apispec.Info{Title: "Shipyard Ship", Version: Version,
		Description: "The runtime inside a sandbox. Errors are FastAPI's {\"detail\": ...}.",
		Bearer: "Ship's token (Bay holds it). It may come in the " + TokenHeader + " header instead of " +
			"Authorization (Kubernetes' API server pod proxy consumes Authorization)"}
}

// handleOpenAPI answers /openapi.json: the generated document.
func (s *Server) handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, openapi.Ship())
}
