// Package mcp is Shipyard's MCP (Model Context Protocol) server: the 27 tools
// of Shipyard-Neo's MCP server, with its tool names, arguments and result
// texts, built on the official Go SDK. Every tool calls Bay's REST API through
// pkg/shipyard: over HTTP for the stdio command (cmd/shipyard-mcp), and
// in-process for Bay's own /mcp endpoint (see NewHTTPHandler).
package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

// Version is the server's version in the MCP handshake.
const Version = "0.4.0"

// tools holds what every handler needs.
type tools struct {
	bay  *shipyard.Client
	opts Options
	log  *slog.Logger
}

// NewServer returns an MCP server whose tools call bay.
func NewServer(bay *shipyard.Client, opts Options) *sdk.Server {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	srv := sdk.NewServer(&sdk.Implementation{Name: "shipyard-neo-mcp", Title: "Shipyard", Version: Version},
		&sdk.ServerOptions{
			Instructions: "Shipyard runs code in isolated sandboxes. Create a sandbox with create_sandbox, " +
				"then pass its sandbox_id to execute_python, execute_shell and the file tools; " +
				"delete it with delete_sandbox when done.",
			Logger: sdkLogger(opts.Log),
		})
	t := &tools{bay: bay, opts: opts, log: opts.Log}
	t.register(srv)
	return srv
}

// sdkLogger is log for the SDK's own messages, warnings and errors only: at
// info it writes "server connecting", "server session connected" and
// "server session disconnected" for every /mcp request (each one a session
// of its own in stateless mode), three lines that say nothing and cost a
// formatted write each.
func sdkLogger(log *slog.Logger) *slog.Logger {
	return slog.New(minLevel{log.Handler(), slog.LevelWarn})
}

// minLevel passes on records of at least min.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler { return minLevel{m.h.WithAttrs(as), m.min} }

func (m minLevel) WithGroup(name string) slog.Handler { return minLevel{m.h.WithGroup(name), m.min} }

// ---- errors and texts ----

// argError is a bad argument: "**Validation Error:** ..." as upstream.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

func badArg(format string, a ...any) error { return &argError{fmt.Sprintf(format, a...)} }

// errorText renders err as upstream's MCP server does.
func (t *tools) errorText(err error) string {
	var ae *argError
	var api *shipyard.APIError
	switch {
	case errors.As(err, &ae):
		return "**Validation Error:** " + ae.msg
	case errors.As(err, &api):
		code := api.Code
		if code == "" {
			code = fmt.Sprintf("http_%d", api.Status)
		}
		suffix := ""
		if len(api.Details) > 0 {
			b, _ := json.Marshal(api.Details)
			suffix = "\n\ndetails: " + truncate(string(b), 1000)
		}
		return fmt.Sprintf("**API Error:** [%s] %s%s", code, api.Message, suffix)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("**Timeout Error:** SDK call timed out after %ds", int(t.opts.CallTimeout.Seconds()))
	default:
		return "**Error:** " + err.Error()
	}
}

// truncate cuts text to limit characters with upstream's notice.
func truncate(text string, limit int) string {
	n := utf8.RuneCountInString(text)
	if n <= limit {
		return text
	}
	i, count := 0, 0
	for i = range text {
		if count == limit {
			break
		}
		count++
	}
	return fmt.Sprintf("%s\n\n...[truncated %d chars; original=%d]", text[:i], n-limit, n)
}

func (t *tools) cut(s string) string { return truncate(s, t.opts.MaxToolTextChars) }

// commandResult writes the upstream text of a shell or browser command:
// "**<what> successful|failed** (exit code: N)", its output, its execution id.
func (t *tools) commandResult(b *strings.Builder, what string, success bool, exitCode *int, out, executionID string) {
	if out == "" {
		out = "(no output)"
	}
	status := "successful"
	if !success {
		status = "failed"
	}
	exit := "N/A"
	if exitCode != nil {
		exit = fmt.Sprint(*exitCode)
	}
	fmt.Fprintf(b, "**%s %s** (exit code: %s)\n\n```\n%s\n```", what, status, exit, t.cut(out))
	if executionID != "" {
		fmt.Fprintf(b, "\n\nexecution_id: %s", executionID)
	}
}

func text(s string) *sdk.CallToolResult {
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: s}}}
}

// pyBool and pyStr print values as upstream's f-strings do.
func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func pyStr[T any](p *T) string {
	if p == nil {
		return "None"
	}
	return fmt.Sprint(*p)
}

func orEmpty(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// optional returns nil for "" (optional string arguments).
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// required rejects a blank required string as upstream ("missing required field: X").
func required(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return badArg("missing required field: %s", name)
	}
	return nil
}

// ---- registration ----

// add registers one tool whose input schema is inferred from In (descriptions
// from `jsonschema` tags, required = fields without omitempty) and adjusted
// by tweak (bounds, defaults, enums). Unknown arguments are ignored, as
// upstream. Any error from h becomes a tool error (IsError) with upstream's text.
func add[In any](t *tools, srv *sdk.Server, name, desc string, h func(context.Context, In) (*sdk.CallToolResult, error), tweak ...func(props map[string]*jsonschema.Schema)) {
	schema, err := jsonschema.For[In](nil)
	if err != nil {
		panic(fmt.Sprintf("mcp: schema of %s: %v", name, err)) // a programming error, caught by the tests
	}
	schema.AdditionalProperties = nil
	for _, p := range schema.Properties {
		if len(p.Types) == 2 && p.Types[0] == "null" { // *T: optional, shown as T
			p.Type, p.Types = p.Types[1], nil
		}
	}
	for _, f := range tweak {
		f(schema.Properties)
	}
	// The schema goes to the SDK as its JSON, marshalled once here: the SDK
	// resolves it once either way, but on every tools/call of protocol
	// 2026-07-28 it marshals the tool's schema again to look for x-mcp-header
	// annotations, which for a *jsonschema.Schema is a walk of the whole
	// schema and for JSON a copy. tools/list sends the same bytes.
	raw, err := json.Marshal(schema)
	if err != nil {
		panic(fmt.Sprintf("mcp: schema of %s: %v", name, err))
	}
	sdk.AddTool(srv, &sdk.Tool{Name: name, Description: desc, InputSchema: json.RawMessage(raw)},
		func(ctx context.Context, req *sdk.CallToolRequest, in In) (*sdk.CallToolResult, any, error) {
			if _, ok := callerFrom(ctx); !ok && req.Extra != nil && req.Extra.Header != nil {
				ctx = withCaller(ctx, caller{header: req.Extra.Header})
			}
			ctx, cancel := context.WithTimeout(ctx, t.opts.CallTimeout)
			defer cancel()
			res, err := h(ctx, in)
			if err != nil {
				var ae *argError
				if !errors.As(err, &ae) {
					t.log.WarnContext(ctx, "mcp tool failed", "tool", name, "err", err)
				}
				res = text(t.errorText(err))
				res.IsError = true
			}
			return res, nil, nil
		})
}

func ptr[T any](v T) *T { return &v }

// bounds sets an integer property's minimum, maximum (when max > 0) and default.
func bounds(name string, min, max, def int) func(map[string]*jsonschema.Schema) {
	return func(p map[string]*jsonschema.Schema) {
		s := p[name]
		s.Minimum = ptr(float64(min))
		if max > 0 {
			s.Maximum = ptr(float64(max))
		}
		if def >= 0 {
			s.Default = json.RawMessage(fmt.Sprint(def))
		}
	}
}

// enum restricts a string property.
func enum(name string, values ...string) func(map[string]*jsonschema.Schema) {
	return func(p map[string]*jsonschema.Schema) {
		for _, v := range values {
			p[name].Enum = append(p[name].Enum, v)
		}
	}
}

// nonEmpty requires a string or array property to be non-empty.
func nonEmpty(names ...string) func(map[string]*jsonschema.Schema) {
	return func(p map[string]*jsonschema.Schema) {
		for _, n := range names {
			if p[n].Type == "array" {
				p[n].MinItems = ptr(1)
			} else {
				p[n].MinLength = ptr(1)
			}
		}
	}
}

// anyJSON lets a property hold any JSON value of the given types (payloads).
func anyJSON(name string, types ...string) func(map[string]*jsonschema.Schema) {
	return func(p map[string]*jsonschema.Schema) {
		desc := p[name].Description
		p[name] = &jsonschema.Schema{Types: types, Description: desc}
	}
}
