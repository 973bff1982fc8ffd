package mcp

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

// toolNames are the 27 tools, in upstream's order.
var toolNames = []string{
	"create_sandbox", "delete_sandbox", "execute_python", "execute_shell",
	"read_file", "write_file", "list_files", "delete_file",
	"get_execution_history", "get_execution", "get_last_execution", "annotate_execution",
	"create_skill_payload", "get_skill_payload", "create_skill_candidate", "evaluate_skill_candidate",
	"promote_skill_candidate", "list_skill_candidates", "list_skill_releases", "delete_skill_release",
	"delete_skill_candidate", "rollback_skill_release", "execute_browser", "execute_browser_batch",
	"upload_file", "download_file", "list_profiles",
}

// ToolNames returns the names of the tools the server offers.
func ToolNames() []string { return append([]string(nil), toolNames...) }

var sandboxIDRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

func checkSandboxID(id string) error {
	if err := required("sandbox_id", id); err != nil {
		return err
	}
	if !sandboxIDRe.MatchString(id) {
		return badArg("invalid sandbox_id format: must be 1-128 alphanumeric/hyphen/underscore characters")
	}
	return nil
}

// checkPath is upstream's light local check; Bay validates for real.
func checkPath(field, p string) error {
	if strings.TrimSpace(p) == "" {
		return badArg("field '%s' must be a non-empty string", field)
	}
	if strings.HasPrefix(p, "/") {
		return badArg("invalid path: absolute paths are not allowed")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return badArg("invalid path: path traversal ('..') is not allowed")
		}
	}
	return nil
}

const execTypes = "python, shell, browser, browser_batch"

// ---- inputs ----

type sandboxArg struct {
	SandboxID string `json:"sandbox_id" jsonschema:"The sandbox ID (from create_sandbox)."`
}

type createSandboxIn struct {
	Profile *string `json:"profile,omitempty" jsonschema:"Runtime profile (e.g. 'python-default'); list_profiles shows them. Defaults to the server's default profile."`
	TTL     *int    `json:"ttl,omitempty" jsonschema:"Time-to-live in seconds. Defaults to 3600 (1 hour). Use 0 for no expiration."`
}

type execPythonIn struct {
	SandboxID   string `json:"sandbox_id" jsonschema:"The sandbox ID to execute in."`
	Code        string `json:"code" jsonschema:"Python code to execute. Variables, imports and files persist across calls in the same sandbox. Matplotlib figures are returned as images."`
	Timeout     int    `json:"timeout,omitempty" jsonschema:"Execution timeout in seconds (1-300). Defaults to 30."`
	IncludeCode bool   `json:"include_code,omitempty" jsonschema:"Include executed code and execution metadata in response."`
	Description string `json:"description,omitempty" jsonschema:"Optional description for execution history annotation."`
	Tags        string `json:"tags,omitempty" jsonschema:"Optional comma-separated tags for execution history."`
}

type execShellIn struct {
	SandboxID   string `json:"sandbox_id" jsonschema:"The sandbox ID to execute in."`
	Command     string `json:"command" jsonschema:"Shell command to execute (bash)."`
	Cwd         string `json:"cwd,omitempty" jsonschema:"Working directory (relative to /workspace). Defaults to workspace root."`
	Timeout     int    `json:"timeout,omitempty" jsonschema:"Execution timeout in seconds (1-300). Defaults to 30."`
	IncludeCode bool   `json:"include_code,omitempty" jsonschema:"Include executed command and execution metadata in response."`
	Description string `json:"description,omitempty" jsonschema:"Optional description for execution history annotation."`
	Tags        string `json:"tags,omitempty" jsonschema:"Optional comma-separated tags for execution history."`
}

type pathIn struct {
	SandboxID string `json:"sandbox_id" jsonschema:"The sandbox ID."`
	Path      string `json:"path" jsonschema:"File path relative to /workspace."`
}

type writeFileIn struct {
	SandboxID string `json:"sandbox_id" jsonschema:"The sandbox ID."`
	Path      string `json:"path" jsonschema:"File path relative to /workspace."`
	Content   string `json:"content" jsonschema:"Content to write (text)."`
}

type listFilesIn struct {
	SandboxID string `json:"sandbox_id" jsonschema:"The sandbox ID."`
	Path      string `json:"path,omitempty" jsonschema:"Directory path relative to /workspace. Defaults to '.' (workspace root)."`
}

// ---- registration ----

func (t *tools) register(srv *sdk.Server) {
	add(t, srv, "create_sandbox", "Create a new sandbox environment for executing code. Returns the sandbox ID which must be used for subsequent operations.",
		t.createSandbox, bounds("ttl", 0, 0, -1))
	add(t, srv, "delete_sandbox", "Delete a sandbox and clean up all resources.", t.deleteSandbox, nonEmpty("sandbox_id"))
	add(t, srv, "execute_python", "Execute Python code in a sandbox. Variables persist across calls within the same sandbox session.",
		t.executePython, nonEmpty("sandbox_id", "code"), bounds("timeout", 1, 300, 30))
	add(t, srv, "execute_shell", "Execute a shell command in a sandbox.",
		t.executeShell, nonEmpty("sandbox_id", "command"), bounds("timeout", 1, 300, 30))
	add(t, srv, "read_file", "Read a file from the sandbox workspace.", t.readFile, nonEmpty("sandbox_id", "path"))
	add(t, srv, "write_file", "Write content to a file in the sandbox workspace. Creates parent directories automatically.",
		t.writeFile, nonEmpty("sandbox_id", "path"))
	add(t, srv, "list_files", "List files and directories in the sandbox workspace.", t.listFiles, nonEmpty("sandbox_id"))
	add(t, srv, "delete_file", "Delete a file or directory from the sandbox workspace.", t.deleteFile, nonEmpty("sandbox_id", "path"))
	t.registerHistory(srv)
	t.registerSkills(srv)
	t.registerBrowser(srv)
	t.registerTransfer(srv)
	add(t, srv, "list_profiles", "List available sandbox profiles. Profiles define runtime capabilities (python, shell, filesystem, browser), "+
		"resource limits, and idle timeout. Use this to discover which profiles are available before creating a sandbox.", t.listProfiles)
}

// ---- sandboxes ----

func (t *tools) createSandbox(ctx context.Context, in createSandboxIn) (*sdk.CallToolResult, error) {
	profile := t.opts.DefaultProfile
	if in.Profile != nil {
		profile = *in.Profile
		if strings.TrimSpace(profile) == "" {
			return nil, badArg("field 'profile' must be a non-empty string")
		}
	}
	ttl := t.opts.DefaultTTL
	if in.TTL != nil {
		ttl = *in.TTL
	}
	if ttl < 0 {
		return nil, badArg("field 'ttl' must be >= 0")
	}
	sb, err := t.bay.CreateSandbox(ctx, shipyard.CreateSandboxRequest{Profile: profile, TTL: &ttl})
	if err != nil {
		return nil, err
	}
	t.log.InfoContext(ctx, "sandbox_created", "sandbox_id", sb.ID, "profile", sb.Profile, "ttl", ttl)
	containers := ""
	if len(sb.Containers) > 0 {
		lines := []string{"**Containers:**"}
		for _, c := range sb.Containers {
			health := "?"
			if c.Healthy != nil {
				health = map[bool]string{true: "✅", false: "❌"}[*c.Healthy]
			}
			ver := "unknown"
			if c.Version != nil && *c.Version != "" {
				ver = *c.Version
			}
			lines = append(lines, fmt.Sprintf("  - %s (%s) v%s %s [%s]", c.Name, c.RuntimeType, ver, health, strings.Join(c.Capabilities, ", ")))
		}
		containers = strings.Join(lines, "\n") + "\n"
	}
	return text(fmt.Sprintf("Sandbox created successfully.\n\n**Sandbox ID:** `%s`\n**Profile:** %s\n**Status:** %s\n"+
		"**Capabilities:** %s\n**TTL:** %d seconds\n%s\nUse this sandbox_id for subsequent operations.",
		sb.ID, sb.Profile, sb.Status, strings.Join(sb.Capabilities, ", "), ttl, containers)), nil
}

func (t *tools) deleteSandbox(ctx context.Context, in sandboxArg) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := t.bay.DeleteSandbox(ctx, in.SandboxID); err != nil {
		return nil, err
	}
	t.log.InfoContext(ctx, "sandbox_deleted", "sandbox_id", in.SandboxID)
	return text(fmt.Sprintf("Sandbox `%s` deleted successfully.", in.SandboxID)), nil
}

// ---- execution ----

// ansi matches terminal colour codes (IPython tracebacks carry them).
var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

func (t *tools) executePython(ctx context.Context, in execPythonIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := required("code", in.Code); err != nil {
		return nil, err
	}
	res, err := t.bay.ExecPython(ctx, in.SandboxID, shipyard.PythonExecRequest{Code: in.Code, Timeout: in.Timeout,
		IncludeCode: in.IncludeCode, Description: optional(in.Description), Tags: optional(in.Tags)})
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if res.Success {
		out := res.Output
		if out == "" {
			out = "(no output)"
		}
		fmt.Fprintf(&b, "**Execution successful**\n\n```\n%s\n```", t.cut(out))
	} else {
		msg := "Unknown error"
		if res.Error != nil && *res.Error != "" {
			msg = ansi.ReplaceAllString(*res.Error, "")
		}
		if res.Output != "" { // what ran before the error (additive)
			msg = res.Output + "\n" + msg
		}
		fmt.Fprintf(&b, "**Execution failed**\n\n```\n%s\n```", t.cut(msg))
	}
	if res.ExecutionID != "" {
		fmt.Fprintf(&b, "\n\nexecution_id: %s", res.ExecutionID)
	}
	if res.Success {
		fmt.Fprintf(&b, "\nexecution_time_ms: %d", res.ExecutionTimeMs)
	}
	if res.Notice != nil && *res.Notice != "" {
		fmt.Fprintf(&b, "\nnotice: %s", *res.Notice)
	}
	if in.IncludeCode && res.Code != nil && *res.Code != "" {
		fmt.Fprintf(&b, "\n\ncode:\n%s", t.cut(*res.Code))
	}
	result := text(b.String())
	if res.Data != nil {
		for _, img := range res.Data.Output.Images {
			for mime, data := range img {
				raw, err := base64.StdEncoding.DecodeString(data)
				if err != nil || !strings.HasPrefix(mime, "image/") {
					continue
				}
				result.Content = append(result.Content, &sdk.ImageContent{Data: raw, MIMEType: mime})
			}
		}
	}
	return result, nil
}

func (t *tools) executeShell(ctx context.Context, in execShellIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := required("command", in.Command); err != nil {
		return nil, err
	}
	res, err := t.bay.ExecShell(ctx, in.SandboxID, shipyard.ShellExecRequest{Command: in.Command, Timeout: in.Timeout,
		Cwd: optional(in.Cwd), IncludeCode: in.IncludeCode, Description: optional(in.Description), Tags: optional(in.Tags)})
	if err != nil {
		return nil, err
	}
	out := res.Output
	if !res.Success && res.Error != nil && *res.Error != "" { // stderr of a failed command (additive)
		out = strings.TrimSpace(out + "\n" + *res.Error)
	}
	var b strings.Builder
	t.commandResult(&b, "Command", res.Success, res.ExitCode, out, res.ExecutionID)
	fmt.Fprintf(&b, "\nexecution_time_ms: %d", res.ExecutionTimeMs)
	if res.Notice != nil && *res.Notice != "" {
		fmt.Fprintf(&b, "\nnotice: %s", *res.Notice)
	}
	if in.IncludeCode && res.Command != nil && *res.Command != "" {
		fmt.Fprintf(&b, "\n\ncommand:\n%s", t.cut(*res.Command))
	}
	return text(b.String()), nil
}

// ---- files ----

func (t *tools) readFile(ctx context.Context, in pathIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := checkPath("path", in.Path); err != nil {
		return nil, err
	}
	content, err := t.bay.ReadFile(ctx, in.SandboxID, in.Path)
	if err != nil {
		return nil, err
	}
	return text(fmt.Sprintf("**File: %s**\n\n```\n%s\n```", in.Path, t.cut(content))), nil
}

func (t *tools) writeFile(ctx context.Context, in writeFileIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := checkPath("path", in.Path); err != nil {
		return nil, err
	}
	if len(in.Content) > t.opts.MaxWriteFileBytes {
		return nil, badArg("write_file content too large: %d bytes exceeds limit of %d bytes", len(in.Content), t.opts.MaxWriteFileBytes)
	}
	if err := t.bay.WriteFile(ctx, in.SandboxID, in.Path, in.Content); err != nil {
		return nil, err
	}
	return text(fmt.Sprintf("File `%s` written successfully (%d bytes).", in.Path, len([]rune(in.Content)))), nil
}

func (t *tools) listFiles(ctx context.Context, in listFilesIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	path := in.Path
	if path == "" {
		path = "."
	}
	if err := checkPath("path", path); err != nil {
		return nil, err
	}
	entries, err := t.bay.ListDir(ctx, in.SandboxID, path)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return text(fmt.Sprintf("Directory `%s` is empty.", path)), nil
	}
	lines := []string{fmt.Sprintf("**Directory: %s**\n", path)}
	for _, e := range entries {
		if e.IsDir {
			lines = append(lines, fmt.Sprintf("📁 %s/", e.Name))
			continue
		}
		size := ""
		if e.Size != nil {
			size = fmt.Sprintf(" (%d bytes)", *e.Size)
		}
		lines = append(lines, fmt.Sprintf("📄 %s%s", e.Name, size))
	}
	return text(t.cut(strings.Join(lines, "\n"))), nil
}

func (t *tools) deleteFile(ctx context.Context, in pathIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := checkPath("path", in.Path); err != nil {
		return nil, err
	}
	if err := t.bay.DeleteFile(ctx, in.SandboxID, in.Path); err != nil {
		return nil, err
	}
	return text(fmt.Sprintf("Deleted `%s` successfully.", in.Path)), nil
}

// ---- profiles ----

func (t *tools) listProfiles(ctx context.Context, _ struct{}) (*sdk.CallToolResult, error) {
	profiles, err := t.bay.ListProfiles(ctx, true)
	if err != nil {
		return nil, err
	}
	if len(profiles) == 0 {
		return text("No profiles available."), nil
	}
	lines := []string{fmt.Sprintf("**Available Profiles** (%d)\n", len(profiles))}
	for _, p := range profiles {
		caps := "none"
		if len(p.Capabilities) > 0 {
			caps = strings.Join(p.Capabilities, ", ")
		}
		desc := ""
		if p.Description != nil && *p.Description != "" {
			desc = " — " + *p.Description
		}
		lines = append(lines, fmt.Sprintf("- **%s**%s: capabilities=[%s], idle_timeout=%ds", p.ID, desc, caps, p.IdleTimeout))
		for _, c := range p.Containers {
			cc := "none"
			if len(c.Capabilities) > 0 {
				cc = strings.Join(c.Capabilities, ", ")
			}
			lines = append(lines, fmt.Sprintf("    └ %s (%s): [%s]", c.Name, c.RuntimeType, cc))
		}
	}
	return text(strings.Join(lines, "\n")), nil
}
