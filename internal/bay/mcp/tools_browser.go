package mcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

type browserIn struct {
	SandboxID    string `json:"sandbox_id" jsonschema:"The sandbox ID to execute in."`
	Cmd          string `json:"cmd" jsonschema:"Browser automation command without 'agent-browser' prefix. E.g., 'open https://example.com', 'snapshot -i', 'click @e1'."`
	Timeout      int    `json:"timeout,omitempty" jsonschema:"Execution timeout in seconds (1-300). Defaults to 30."`
	Description  string `json:"description,omitempty" jsonschema:"Optional execution description for learning evidence."`
	Tags         string `json:"tags,omitempty" jsonschema:"Optional comma-separated tags for execution evidence."`
	Learn        bool   `json:"learn,omitempty" jsonschema:"Whether this execution should enter browser learning pipeline."`
	IncludeTrace bool   `json:"include_trace,omitempty" jsonschema:"Persist and return trace_ref for step-level replay trace."`
}

type browserBatchIn struct {
	SandboxID    string   `json:"sandbox_id" jsonschema:"The sandbox ID to execute in."`
	Commands     []string `json:"commands" jsonschema:"List of browser commands without 'agent-browser' prefix. E.g., ['open https://example.com', 'wait --load networkidle', 'snapshot -i']."`
	Timeout      int      `json:"timeout,omitempty" jsonschema:"Overall timeout in seconds for all commands (1-600). Defaults to 60."`
	StopOnError  *bool    `json:"stop_on_error,omitempty" jsonschema:"Stop execution if a command fails. Defaults to true."`
	Description  string   `json:"description,omitempty" jsonschema:"Optional execution description for learning evidence."`
	Tags         string   `json:"tags,omitempty" jsonschema:"Optional comma-separated tags for execution evidence."`
	Learn        bool     `json:"learn,omitempty" jsonschema:"Whether this execution should enter browser learning pipeline."`
	IncludeTrace bool     `json:"include_trace,omitempty" jsonschema:"Persist and return trace_ref for step-level replay trace."`
}

func (t *tools) registerBrowser(srv *sdk.Server) {
	add(t, srv, "execute_browser", "Execute a browser automation command in a sandbox. "+
		"The command should NOT include the 'agent-browser' prefix — it is injected automatically. "+
		"Examples: 'open https://example.com', 'snapshot -i', 'click @e1', 'fill @e2 \"text\"'. "+
		"The sandbox must have browser capability (use a browser-enabled profile).",
		t.executeBrowser, nonEmpty("sandbox_id", "cmd"), bounds("timeout", 1, 300, 30))
	add(t, srv, "execute_browser_batch", "Execute a sequence of browser automation commands in order within one request. "+
		"Use this for deterministic sequences that don't need intermediate reasoning (e.g., open → fill → click → wait). "+
		"For flows that need intermediate decisions (e.g., snapshot → analyze → decide), use individual execute_browser calls instead. "+
		"Commands should NOT include the 'agent-browser' prefix.",
		t.executeBrowserBatch, nonEmpty("sandbox_id", "commands"), bounds("timeout", 1, 600, 60))
}

// browserReady says clearly why a sandbox cannot run browser commands: its
// profile lacks the capability (Bay would answer 400 too, less plainly).
func (t *tools) browserReady(ctx context.Context, id string) error {
	sb, err := t.bay.GetSandbox(ctx, id)
	if err != nil {
		return err
	}
	if !slices.Contains(sb.Capabilities, "browser") {
		return fmt.Errorf("profile %s has no browser capability (sandbox %s has: %s); create a sandbox with a browser-enabled profile (see list_profiles)",
			sb.Profile, id, strings.Join(sb.Capabilities, ", "))
	}
	return nil
}

// browserErr explains a Bay without the browser routes.
func browserErr(err error) error {
	var ae *shipyard.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code == "" {
		explained := *ae
		explained.Message = "this Bay does not serve browser execution (/v1/sandboxes/{id}/browser/... answered 404 Not Found)"
		return &explained
	}
	return err
}

func (t *tools) executeBrowser(ctx context.Context, in browserIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := required("cmd", in.Cmd); err != nil {
		return nil, err
	}
	if err := t.browserReady(ctx, in.SandboxID); err != nil {
		return nil, err
	}
	res, err := t.bay.ExecBrowser(ctx, in.SandboxID, shipyard.BrowserExecRequest{Cmd: in.Cmd, Timeout: in.Timeout,
		Description: optional(in.Description), Tags: optional(in.Tags), Learn: in.Learn, IncludeTrace: in.IncludeTrace})
	if err != nil {
		return nil, browserErr(err)
	}
	var b strings.Builder
	t.commandResult(&b, "Browser command", res.Success, res.ExitCode, res.Output, res.ExecutionID)
	if res.ExecutionTimeMs != nil {
		fmt.Fprintf(&b, "\nexecution_time_ms: %d", *res.ExecutionTimeMs)
	}
	if res.TraceRef != nil && *res.TraceRef != "" {
		fmt.Fprintf(&b, "\ntrace_ref: %s", *res.TraceRef)
	}
	if !res.Success && res.Error != nil && *res.Error != "" {
		fmt.Fprintf(&b, "\n\nstderr:\n%s", t.cut(*res.Error))
	}
	return text(b.String()), nil
}

func (t *tools) executeBrowserBatch(ctx context.Context, in browserBatchIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if len(in.Commands) == 0 || slices.ContainsFunc(in.Commands, func(c string) bool { return strings.TrimSpace(c) == "" }) {
		return nil, badArg("field 'commands' must be a non-empty array of strings")
	}
	if err := t.browserReady(ctx, in.SandboxID); err != nil {
		return nil, err
	}
	stop := in.StopOnError == nil || *in.StopOnError
	res, err := t.bay.ExecBrowserBatch(ctx, in.SandboxID, shipyard.BrowserBatchRequest{Commands: in.Commands, Timeout: in.Timeout,
		StopOnError: stop, Description: optional(in.Description), Tags: optional(in.Tags), Learn: in.Learn, IncludeTrace: in.IncludeTrace})
	if err != nil {
		return nil, browserErr(err)
	}
	status := "completed"
	if !res.Success {
		status = "failed"
	}
	lines := []string{fmt.Sprintf("**Batch execution %s** (%d/%d steps, %dms)\n", status, res.CompletedSteps, res.TotalSteps, res.DurationMs)}
	if res.ExecutionID != "" {
		lines = append(lines, "execution_id: "+res.ExecutionID)
	}
	if res.ExecutionTimeMs != nil {
		lines = append(lines, fmt.Sprintf("execution_time_ms: %d", *res.ExecutionTimeMs))
	}
	if res.TraceRef != nil && *res.TraceRef != "" {
		lines = append(lines, "trace_ref: "+*res.TraceRef)
	}
	for _, s := range res.Results {
		icon := "✅"
		if s.ExitCode != 0 {
			icon = "❌"
		}
		lines = append(lines, fmt.Sprintf("%s Step %d: `%s` (exit=%d, %dms)", icon, s.StepIndex, s.Cmd, s.ExitCode, s.DurationMs))
		if o := strings.TrimSpace(s.Stdout); o != "" {
			lines = append(lines, "   stdout: "+truncate(o, 500))
		}
		if e := strings.TrimSpace(s.Stderr); e != "" {
			lines = append(lines, "   stderr: "+truncate(e, 500))
		}
	}
	return text(t.cut(strings.Join(lines, "\n"))), nil
}
