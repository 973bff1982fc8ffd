package mcp

import (
	"context"
	"fmt"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

type historyIn struct {
	SandboxID      string `json:"sandbox_id" jsonschema:"The sandbox ID."`
	ExecType       string `json:"exec_type,omitempty" jsonschema:"Optional execution type filter: python / shell / browser / browser_batch."`
	SuccessOnly    bool   `json:"success_only,omitempty" jsonschema:"Return only successful executions."`
	Limit          int    `json:"limit,omitempty" jsonschema:"Max number of entries (1-500). Defaults to 50."`
	Tags           string `json:"tags,omitempty" jsonschema:"Optional comma-separated tags filter."`
	HasNotes       bool   `json:"has_notes,omitempty" jsonschema:"Return only entries that have notes."`
	HasDescription bool   `json:"has_description,omitempty" jsonschema:"Return only entries that have description."`
}

type executionIn struct {
	SandboxID   string `json:"sandbox_id" jsonschema:"The sandbox ID."`
	ExecutionID string `json:"execution_id" jsonschema:"Execution record ID."`
}

type lastExecutionIn struct {
	SandboxID string `json:"sandbox_id" jsonschema:"The sandbox ID."`
	ExecType  string `json:"exec_type,omitempty" jsonschema:"Optional execution type filter: python / shell / browser / browser_batch."`
}

type annotateIn struct {
	SandboxID   string  `json:"sandbox_id" jsonschema:"The sandbox ID."`
	ExecutionID string  `json:"execution_id" jsonschema:"Execution record ID."`
	Description *string `json:"description,omitempty" jsonschema:"Description text."`
	Tags        *string `json:"tags,omitempty" jsonschema:"Comma-separated tags."`
	Notes       *string `json:"notes,omitempty" jsonschema:"Agent notes."`
}

func (t *tools) registerHistory(srv *sdk.Server) {
	types := []string{"python", "shell", "browser", "browser_batch"}
	add(t, srv, "get_execution_history", "Get execution history for a sandbox with optional filters.",
		t.getHistory, nonEmpty("sandbox_id"), enum("exec_type", types...), bounds("limit", 1, 500, 50))
	add(t, srv, "get_execution", "Get one execution record by execution ID.", t.getExecution, nonEmpty("sandbox_id", "execution_id"))
	add(t, srv, "get_last_execution", "Get the latest execution record in a sandbox.",
		t.getLastExecution, nonEmpty("sandbox_id"), enum("exec_type", types...))
	add(t, srv, "annotate_execution", "Add or update description/tags/notes for one execution record.",
		t.annotateExecution, nonEmpty("sandbox_id", "execution_id"))
}

func checkExecType(v string) error {
	switch v {
	case "", "python", "shell", "browser", "browser_batch":
		return nil
	}
	return badArg("field 'exec_type' must be one of: %s", execTypes)
}

func (t *tools) getHistory(ctx context.Context, in historyIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := checkExecType(in.ExecType); err != nil {
		return nil, err
	}
	limit := in.Limit
	if limit == 0 {
		limit = 50
	}
	h, err := t.bay.ListHistory(ctx, in.SandboxID, shipyard.HistoryFilter{ExecType: in.ExecType, SuccessOnly: in.SuccessOnly,
		Limit: limit, Tags: in.Tags, HasNotes: in.HasNotes, HasDescription: in.HasDescription})
	if err != nil {
		return nil, err
	}
	if len(h.Entries) == 0 {
		return text("No execution history found."), nil
	}
	lines := []string{fmt.Sprintf("Total: %d", h.Total)}
	for _, e := range h.Entries {
		lines = append(lines, fmt.Sprintf("- %s | %s | success=%s | %dms", e.ID, e.ExecType, pyBool(e.Success), e.ExecutionTimeMs))
		if d := orEmpty(e.Description); d != "" {
			lines = append(lines, "  description: "+d)
		}
		if tg := orEmpty(e.Tags); tg != "" {
			lines = append(lines, "  tags: "+tg)
		}
	}
	return text(t.cut(strings.Join(lines, "\n"))), nil
}

func (t *tools) getExecution(ctx context.Context, in executionIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := required("execution_id", in.ExecutionID); err != nil {
		return nil, err
	}
	e, err := t.bay.GetExecution(ctx, in.SandboxID, in.ExecutionID)
	if err != nil {
		return nil, err
	}
	return text(fmt.Sprintf("execution_id: %s\ntype: %s\nsuccess: %s\ntime_ms: %d\ntags: %s\ndescription: %s\nnotes: %s\n\n"+
		"code:\n%s\n\noutput:\n%s\n\nerror:\n%s",
		e.ID, e.ExecType, pyBool(e.Success), e.ExecutionTimeMs, orEmpty(e.Tags), orEmpty(e.Description), orEmpty(e.Notes),
		t.cut(e.Code), t.cut(orEmpty(e.Output)), t.cut(ansi.ReplaceAllString(orEmpty(e.Error), "")))), nil
}

func (t *tools) getLastExecution(ctx context.Context, in lastExecutionIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := checkExecType(in.ExecType); err != nil {
		return nil, err
	}
	e, err := t.bay.LastExecution(ctx, in.SandboxID, in.ExecType)
	if err != nil {
		return nil, err
	}
	return text(fmt.Sprintf("execution_id: %s\ntype: %s\nsuccess: %s\ntime_ms: %d\ncode:\n%s",
		e.ID, e.ExecType, pyBool(e.Success), e.ExecutionTimeMs, t.cut(e.Code))), nil
}

func (t *tools) annotateExecution(ctx context.Context, in annotateIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := required("execution_id", in.ExecutionID); err != nil {
		return nil, err
	}
	e, err := t.bay.AnnotateExecution(ctx, in.SandboxID, in.ExecutionID,
		shipyard.Annotation{Description: in.Description, Tags: in.Tags, Notes: in.Notes})
	if err != nil {
		return nil, err
	}
	return text(fmt.Sprintf("Updated execution %s\ndescription: %s\ntags: %s\nnotes: %s",
		e.ID, orEmpty(e.Description), orEmpty(e.Tags), orEmpty(e.Notes))), nil
}
