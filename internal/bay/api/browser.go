package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/browser"
	"github.com/shipyard/shipyard/internal/bay/errs"
)

// Bounds of browser requests (upstream: exec 1..300 s, batch and skill runs 1..600 s).
var (
	maxBrowserTimeout, maxBrowserBatchTimeout int64 = 300, 600
	maxBrowserCommands                              = 500 // commands of one batch (ours; upstream has no cap)
)

func (a *API) browserRoutes() {
	a.handle("POST /v1/sandboxes/{id}/browser/exec", a.authed(a.browserExec))
	a.handle("POST /v1/sandboxes/{id}/browser/exec_batch", a.authed(a.browserExecBatch))
	a.handle("POST /v1/sandboxes/{id}/browser/skills/{skill_key}/run", a.authed(a.browserSkillRun))
	a.handle("GET /v1/sandboxes/{id}/browser/traces/{trace_ref}", a.authed(a.browserTrace))
}

func browserMeta(b *body, learn bool) browser.Meta {
	m := browser.Meta{Description: b.text("description", false), Tags: b.text("tags", false),
		IncludeTrace: b.boolean("include_trace", false)}
	if learn {
		m.Learn = b.boolean("learn", false)
	}
	return m
}

// commandLine reads a required, non-blank command line.
func (b *body) commandLine(name string) string {
	s := b.text(name, true)
	if s == nil {
		return ""
	}
	if strings.TrimSpace(*s) == "" {
		b.fail("string_too_short", name, "String should have at least 1 non-blank character (a browser command, e.g. \"open http://example.com\")",
			*s, map[string]any{"min_length": 1})
		return ""
	}
	return *s
}

// commandList reads the required list of command lines of a batch.
func (b *body) commandList(name string) []string {
	if v, ok := b.value(name); !ok || v == nil {
		b.fail("missing", name, "Field required", b.input, nil)
		return nil
	}
	n := len(b.errs)
	list := b.strList(name)
	switch {
	case len(b.errs) > n:
		return nil
	case len(list) == 0:
		b.fail("too_short", name, "List should have at least 1 item after validation, not 0", []any{},
			map[string]any{"field_type": "List", "min_length": 1, "actual_length": 0})
		return nil
	case len(list) > maxBrowserCommands:
		b.fail("too_long", name, fmt.Sprintf("List should have at most %d items after validation, not %d", maxBrowserCommands, len(list)),
			nil, map[string]any{"field_type": "List", "max_length": maxBrowserCommands, "actual_length": len(list)})
		return nil
	}
	for i, c := range list {
		switch {
		case strings.ContainsRune(c, 0):
			b.errs = append(b.errs, fieldError{Type: "string_pattern_mismatch", Loc: []any{"body", name, i},
				Msg: "String should not contain NUL characters", Input: c})
		case strings.TrimSpace(c) == "":
			b.errs = append(b.errs, fieldError{Type: "string_too_short", Loc: []any{"body", name, i},
				Msg: "String should have at least 1 non-blank character (a browser command)", Input: c, Ctx: map[string]any{"min_length": 1}})
		}
	}
	return list
}

func orDefault(v *int64, def int64) int {
	if v == nil {
		return int(def)
	}
	return int(*v)
}

func (a *API) browserExec(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	cmd := b.commandLine("cmd")
	timeout := b.integer("timeout", false, &minTimeout, &maxBrowserTimeout)
	meta := browserMeta(b, true)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.Browser.Exec(r.Context(), owner, r.PathValue("id"), cmd, orDefault(timeout, 30), meta, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, browserExecJSON{res.Success, res.Output, res.Error, res.ExitCode, res.ExecutionID,
		res.ExecutionTimeMs, res.TraceRef})
}

// browserExecJSON is browser/exec's answer.
type browserExecJSON struct {
	Success         bool    `json:"success"`
	Output          string  `json:"output"`
	Error           *string `json:"error"`
	ExitCode        int     `json:"exit_code"`
	ExecutionID     string  `json:"execution_id"`
	ExecutionTimeMs int64   `json:"execution_time_ms"`
	TraceRef        *string `json:"trace_ref"`
}

// batchJSON is upstream's batch answer, fields in upstream order.
type batchJSON struct {
	Results         []browser.Step `json:"results"`
	TotalSteps      int            `json:"total_steps"`
	CompletedSteps  int            `json:"completed_steps"`
	Success         bool           `json:"success"`
	DurationMs      int64          `json:"duration_ms"`
	ExecutionID     string         `json:"execution_id"`
	ExecutionTimeMs int64          `json:"execution_time_ms"`
	TraceRef        *string        `json:"trace_ref"`
}

func toBatchJSON(o *browser.BatchOutcome) batchJSON {
	res := o.Results
	if res == nil {
		res = []browser.Step{}
	}
	return batchJSON{res, o.TotalSteps, o.CompletedSteps, o.Success, o.DurationMs, o.ExecutionID, o.ExecutionTimeMs, o.TraceRef}
}

func (a *API) browserExecBatch(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	commands := b.commandList("commands")
	timeout := b.integer("timeout", false, &minTimeout, &maxBrowserBatchTimeout)
	stop := b.boolean("stop_on_error", true)
	meta := browserMeta(b, true)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.Browser.ExecBatch(r.Context(), owner, r.PathValue("id"), commands, orDefault(timeout, 60), stop, meta, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toBatchJSON(res))
}

func (a *API) browserSkillRun(w http.ResponseWriter, r *http.Request, owner string) {
	key := r.PathValue("skill_key")
	if !printable(key) || strings.TrimSpace(key) == "" || utf8.RuneCountInString(key) > maxSkillKeyChars {
		a.fail(w, r, errs.Newf(errs.NotFound, "No active release found for skill_key: %s", strings.ToValidUTF8(key, "?")))
		return
	}
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	timeout := b.integer("timeout", false, &minTimeout, &maxBrowserBatchTimeout)
	stop := b.boolean("stop_on_error", true)
	meta := browserMeta(b, false)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.Browser.RunSkill(r.Context(), owner, r.PathValue("id"), key, orDefault(timeout, 60), stop, meta, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	bj := toBatchJSON(&res.BatchOutcome)
	writeJSON(w, http.StatusOK, skillRunJSON{res.SkillKey, res.ReleaseID, bj.ExecutionID, bj.ExecutionTimeMs, bj.TraceRef,
		bj.Results, bj.TotalSteps, bj.CompletedSteps, bj.Success, bj.DurationMs})
}

// skillRunJSON is browser/skills/{skill_key}/run's answer.
type skillRunJSON struct {
	SkillKey        string         `json:"skill_key"`
	ReleaseID       string         `json:"release_id"`
	ExecutionID     string         `json:"execution_id"`
	ExecutionTimeMs int64          `json:"execution_time_ms"`
	TraceRef        *string        `json:"trace_ref"`
	Results         []browser.Step `json:"results"`
	TotalSteps      int            `json:"total_steps"`
	CompletedSteps  int            `json:"completed_steps"`
	Success         bool           `json:"success"`
	DurationMs      int64          `json:"duration_ms"`
}

func (a *API) browserTrace(w http.ResponseWriter, r *http.Request, owner string) {
	ref := r.PathValue("trace_ref")
	if !printable(ref) || utf8.RuneCountInString(ref) > maxSkillKeyChars {
		a.fail(w, r, errs.New(errs.NotFound, "Trace not found"))
		return
	}
	trace, err := a.Browser.Trace(r.Context(), owner, r.PathValue("id"), ref, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, traceJSON{ref, trace})
}

// traceJSON is browser/traces/{trace_ref}'s answer.
type traceJSON struct {
	TraceRef string          `json:"trace_ref"`
	Trace    json.RawMessage `json:"trace"`
}
