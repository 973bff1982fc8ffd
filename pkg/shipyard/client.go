package shipyard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"

	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// ---- sandboxes and profiles ----

// Container is one container of a sandbox's running session.
type Container = wire.Container

// Sandbox is Bay's sandbox resource.
type Sandbox = wire.Sandbox

// CreateSandboxRequest is the body of POST /v1/sandboxes.
type CreateSandboxRequest struct {
	Profile string  `json:"profile,omitempty"`
	CargoID *string `json:"cargo_id,omitempty"`
	TTL     *int    `json:"ttl,omitempty"` // seconds; 0 = no expiry
	// IdempotencyKey is sent as the Idempotency-Key header. When empty a
	// random key is made, so that a retried create (after a lost answer)
	// returns the first sandbox instead of making a second one.
	IdempotencyKey string `json:"-"`
}

// CreateSandbox creates a sandbox. It is retried on transport errors and on
// 429/502/503/504 under one idempotency key.
func (c *Client) CreateSandbox(ctx context.Context, r CreateSandboxRequest) (*Sandbox, error) {
	var s Sandbox
	key := r.IdempotencyKey
	if key == "" {
		key = newKey()
	}
	return &s, c.call(ctx, call{method: http.MethodPost, path: "/v1/sandboxes", in: r, out: &s, idemKey: key})
}

// GetSandbox returns one sandbox.
func (c *Client) GetSandbox(ctx context.Context, id string) (*Sandbox, error) {
	var s Sandbox
	return &s, c.do(ctx, http.MethodGet, sandboxPath(id, ""), nil, nil, &s)
}

// DeleteSandbox deletes a sandbox and its managed cargo.
func (c *Client) DeleteSandbox(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, sandboxPath(id, ""), nil, nil, nil)
}

// Resources are a profile's or container's limits.
type Resources struct {
	CPUs   float64 `json:"cpus"`
	Memory string  `json:"memory"` // e.g. "1g"
}

// ProfileContainer is one container of a profile (detail=true).
type ProfileContainer struct {
	Name         string    `json:"name"`
	RuntimeType  string    `json:"runtime_type"`
	Capabilities []string  `json:"capabilities"`
	Resources    Resources `json:"resources"`
}

// Profile is a runtime profile. (Bay writes CPUs the Python way, "1.0", so
// its encoder has a type of its own; test/sdk checks this one decodes all
// of Bay's answer.)
type Profile struct {
	ID           string             `json:"id"`
	Image        string             `json:"image"`
	Resources    Resources          `json:"resources"`
	Capabilities []string           `json:"capabilities"`
	IdleTimeout  int                `json:"idle_timeout"`
	Description  *string            `json:"description"`
	Containers   []ProfileContainer `json:"containers"`
	// Runtime is the OCI runtime ("" = the engine's default, "runsc" = gVisor).
	Runtime string `json:"runtime,omitempty"`
	// Available is false when this deployment cannot start the profile
	// (UnavailableReason says why, e.g. its runtime is not installed).
	Available         bool   `json:"available"`
	UnavailableReason string `json:"unavailable_reason,omitempty"`
	// Network is the egress policy: "full", "none" or {"allow": [...]}.
	Network json.RawMessage `json:"network"`
}

// ListProfiles lists the profiles (with descriptions and containers when detail).
func (c *Client) ListProfiles(ctx context.Context, detail bool) ([]Profile, error) {
	var q url.Values
	if detail {
		q = url.Values{"detail": {"true"}}
	}
	var out struct {
		Items []Profile `json:"items"`
	}
	return out.Items, c.do(ctx, http.MethodGet, "/v1/profiles", q, nil, &out)
}

// ---- execution ----

// PythonExecRequest is the body of POST …/python/exec.
type PythonExecRequest struct {
	Code        string  `json:"code"`
	Timeout     int     `json:"timeout,omitempty"` // seconds, 1..300 (Bay's default 30)
	IncludeCode bool    `json:"include_code,omitempty"`
	Description *string `json:"description,omitempty"`
	Tags        *string `json:"tags,omitempty"`
	// KillOnDisconnect (streamed calls): the code is interrupted when the
	// stream's client goes away. By default it runs on to the end.
	KillOnDisconnect bool `json:"kill_on_disconnect,omitempty"`
}

// PythonOutput is Ship's rich output: text and images ({"image/png": base64}).
type PythonOutput struct {
	Text   string              `json:"text"`
	Images []map[string]string `json:"images"`
}

// PythonResult is the answer of python/exec.
type PythonResult struct {
	Success bool    `json:"success"`
	Output  string  `json:"output"`
	Error   *string `json:"error"`
	Data    *struct {
		ExecutionCount *int         `json:"execution_count"`
		Output         PythonOutput `json:"output"`
	} `json:"data"`
	ExecutionID     string  `json:"execution_id"`
	ExecutionTimeMs int64   `json:"execution_time_ms"`
	Code            *string `json:"code"`
	TimedOut        bool    `json:"timed_out"`
	KernelRestarted bool    `json:"kernel_restarted"`
	Notice          *string `json:"notice"`
	Truncated       bool    `json:"truncated"`
}

// ExecPython runs code in the sandbox's kernel (state persists across calls).
func (c *Client) ExecPython(ctx context.Context, id string, r PythonExecRequest) (*PythonResult, error) {
	var out PythonResult
	return &out, c.do(ctx, http.MethodPost, sandboxPath(id, "/python/exec"), nil, r, &out)
}

// ShellExecRequest is the body of POST …/shell/exec.
type ShellExecRequest struct {
	Command     string  `json:"command"`
	Timeout     int     `json:"timeout,omitempty"`
	Cwd         *string `json:"cwd,omitempty"`
	IncludeCode bool    `json:"include_code,omitempty"`
	Description *string `json:"description,omitempty"`
	Tags        *string `json:"tags,omitempty"`
	// KillOnDisconnect (streamed calls): the command is killed when the
	// stream's client goes away. By default it runs on to the end.
	KillOnDisconnect bool `json:"kill_on_disconnect,omitempty"`
}

// ShellResult is the answer of shell/exec.
type ShellResult = wire.ShellResult

// ExecShell runs a shell command.
func (c *Client) ExecShell(ctx context.Context, id string, r ShellExecRequest) (*ShellResult, error) {
	var out ShellResult
	return &out, c.do(ctx, http.MethodPost, sandboxPath(id, "/shell/exec"), nil, r, &out)
}

// BrowserExecRequest is the body of POST …/browser/exec.
type BrowserExecRequest struct {
	Cmd          string  `json:"cmd"`
	Timeout      int     `json:"timeout,omitempty"`
	Description  *string `json:"description,omitempty"`
	Tags         *string `json:"tags,omitempty"`
	Learn        bool    `json:"learn,omitempty"`
	IncludeTrace bool    `json:"include_trace,omitempty"`
}

// BrowserResult is the answer of browser/exec.
type BrowserResult struct {
	Success         bool    `json:"success"`
	Output          string  `json:"output"`
	Error           *string `json:"error"`
	ExitCode        *int    `json:"exit_code"`
	ExecutionID     string  `json:"execution_id"`
	ExecutionTimeMs *int64  `json:"execution_time_ms"`
	TraceRef        *string `json:"trace_ref"`
}

// ExecBrowser runs one browser command.
func (c *Client) ExecBrowser(ctx context.Context, id string, r BrowserExecRequest) (*BrowserResult, error) {
	var out BrowserResult
	return &out, c.do(ctx, http.MethodPost, sandboxPath(id, "/browser/exec"), nil, r, &out)
}

// BrowserBatchRequest is the body of POST …/browser/exec_batch.
type BrowserBatchRequest struct {
	Commands     []string `json:"commands"`
	Timeout      int      `json:"timeout,omitempty"`
	StopOnError  bool     `json:"stop_on_error"`
	Description  *string  `json:"description,omitempty"`
	Tags         *string  `json:"tags,omitempty"`
	Learn        bool     `json:"learn,omitempty"`
	IncludeTrace bool     `json:"include_trace,omitempty"`
}

// BrowserStep is one step of a batch.
type BrowserStep struct {
	Cmd        string `json:"cmd"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	ExitCode   int    `json:"exit_code"`
	StepIndex  int    `json:"step_index"`
	DurationMs int64  `json:"duration_ms"`
}

// BrowserBatchResult is the answer of browser/exec_batch.
type BrowserBatchResult struct {
	Results         []BrowserStep `json:"results"`
	TotalSteps      int           `json:"total_steps"`
	CompletedSteps  int           `json:"completed_steps"`
	Success         bool          `json:"success"`
	DurationMs      int64         `json:"duration_ms"`
	ExecutionID     string        `json:"execution_id"`
	ExecutionTimeMs *int64        `json:"execution_time_ms"`
	TraceRef        *string       `json:"trace_ref"`
}

// ExecBrowserBatch runs browser commands in order.
func (c *Client) ExecBrowserBatch(ctx context.Context, id string, r BrowserBatchRequest) (*BrowserBatchResult, error) {
	var out BrowserBatchResult
	return &out, c.do(ctx, http.MethodPost, sandboxPath(id, "/browser/exec_batch"), nil, r, &out)
}

// ---- files ----

// FileEntry is one entry of a directory listing.
type FileEntry struct {
	Name         string   `json:"name"`
	Path         string   `json:"path"`
	IsFile       bool     `json:"is_file"`
	IsDir        bool     `json:"is_dir"`
	Size         *int64   `json:"size"`
	ModifiedTime *float64 `json:"modified_time"`
}

// ReadFile returns a text file's content (path relative to /workspace).
func (c *Client) ReadFile(ctx context.Context, id, path string) (string, error) {
	var out struct {
		Content string `json:"content"`
	}
	return out.Content, c.do(ctx, http.MethodGet, sandboxPath(id, "/filesystem/files"), url.Values{"path": {path}}, nil, &out)
}

// WriteFile writes a text file, creating parent directories.
func (c *Client) WriteFile(ctx context.Context, id, path, content string) error {
	body := map[string]string{"path": path, "content": content}
	return c.do(ctx, http.MethodPut, sandboxPath(id, "/filesystem/files"), nil, body, nil)
}

// DeleteFile deletes a file or directory (recursively).
func (c *Client) DeleteFile(ctx context.Context, id, path string) error {
	return c.do(ctx, http.MethodDelete, sandboxPath(id, "/filesystem/files"), url.Values{"path": {path}}, nil, nil)
}

// ListDir lists a directory.
func (c *Client) ListDir(ctx context.Context, id, path string) ([]FileEntry, error) {
	var out struct {
		Entries []FileEntry `json:"entries"`
	}
	return out.Entries, c.do(ctx, http.MethodGet, sandboxPath(id, "/filesystem/directories"), url.Values{"path": {path}}, nil, &out)
}

// UploadResult is the answer of an upload.
type UploadResult struct {
	Status string `json:"status"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
}

// Upload streams r into the sandbox at path (multipart, as the Python SDK).
func (c *Client) Upload(ctx context.Context, id, path string, r io.Reader) (*UploadResult, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if err := mw.WriteField("path", path); err != nil {
				return err
			}
			part, err := mw.CreateFormFile("file", "upload")
			if err != nil {
				return err
			}
			if _, err := io.Copy(part, r); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	resp, err := c.send(ctx, http.MethodPost, sandboxPath(id, "/filesystem/upload"), nil, pr, mw.FormDataContentType())
	pr.Close() // unblocks the writer if the request ended early
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out UploadResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("shipyard: decode upload: %w", err)
	}
	return &out, nil
}

// Download streams a file out of the sandbox; the caller closes the reader.
func (c *Client) Download(ctx context.Context, id, path string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, sandboxPath(id, "/filesystem/download"), url.Values{"path": {path}}, nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// DownloadTo streams a file out of the sandbox into w and returns its size.
func (c *Client) DownloadTo(ctx context.Context, id, path string, w io.Writer) (int64, error) {
	rc, err := c.Download(ctx, id, path)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, fmt.Errorf("shipyard: download %s: %w", path, err)
	}
	return n, nil
}

// ---- history ----

// Execution is one execution history entry.
type Execution = wire.Execution

// HistoryFilter filters GET …/history.
type HistoryFilter struct {
	ExecType       string // python, shell, browser, browser_batch; "" for all
	SuccessOnly    bool
	Limit          int // 1..500; 0 = Bay's default (100)
	Offset         int
	Tags           string
	HasNotes       bool
	HasDescription bool
}

func (f HistoryFilter) query() url.Values {
	q := url.Values{}
	if f.ExecType != "" {
		q.Set("exec_type", f.ExecType)
	}
	if f.SuccessOnly {
		q.Set("success_only", "true")
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	if f.Tags != "" {
		q.Set("tags", f.Tags)
	}
	if f.HasNotes {
		q.Set("has_notes", "true")
	}
	if f.HasDescription {
		q.Set("has_description", "true")
	}
	return q
}

// History is a page of execution history, newest first.
type History struct {
	Entries []Execution `json:"entries"`
	Total   int         `json:"total"`
}

// ListHistory lists a sandbox's executions.
func (c *Client) ListHistory(ctx context.Context, id string, f HistoryFilter) (*History, error) {
	var out History
	return &out, c.do(ctx, http.MethodGet, sandboxPath(id, "/history"), f.query(), nil, &out)
}

// GetExecution returns one execution.
func (c *Client) GetExecution(ctx context.Context, id, execID string) (*Execution, error) {
	var out Execution
	return &out, c.do(ctx, http.MethodGet, sandboxPath(id, "/history/"+url.PathEscape(execID)), nil, nil, &out)
}

// LastExecution returns the newest execution (of execType, when not "").
func (c *Client) LastExecution(ctx context.Context, id, execType string) (*Execution, error) {
	var q url.Values
	if execType != "" {
		q = url.Values{"exec_type": {execType}}
	}
	var out Execution
	return &out, c.do(ctx, http.MethodGet, sandboxPath(id, "/history/last"), q, nil, &out)
}

// Annotation updates an execution; nil fields are left as they are.
type Annotation struct {
	Description *string `json:"description,omitempty"`
	Tags        *string `json:"tags,omitempty"`
	Notes       *string `json:"notes,omitempty"`
}

// AnnotateExecution updates an execution's description, tags or notes.
func (c *Client) AnnotateExecution(ctx context.Context, id, execID string, a Annotation) (*Execution, error) {
	var out Execution
	return &out, c.do(ctx, http.MethodPatch, sandboxPath(id, "/history/"+url.PathEscape(execID)), nil, a, &out)
}
