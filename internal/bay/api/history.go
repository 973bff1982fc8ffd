package api

import (
	"errors"
	"net/http"
	"regexp"

	"github.com/shipyard/shipyard/internal/bay/capability"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// executionJSON is the history entry Bay writes: the SDK reads the same type.
type executionJSON = wire.Execution

func executionView(e *model.Execution) executionJSON {
	return executionJSON{ID: e.ID, SessionID: e.SessionID, ExecType: e.ExecType, Code: e.Code, Success: e.Success,
		ExecutionTimeMs: e.ExecutionTimeMs, Output: e.Output, Error: e.Error, PayloadRef: e.PayloadRef,
		Description: e.Description, Tags: e.Tags, Notes: e.Notes, LearnEnabled: e.LearnEnabled,
		LearnStatus: e.LearnStatus, LearnError: e.LearnError, LearnProcessedAt: timePtr(e.LearnProcessedAt),
		CreatedAt: model.FormatTime(e.CreatedAt)}
}

var execTypeRe = regexp.MustCompile(`^(python|shell|browser|browser_batch)$`)

// visibleSandbox 404s unless owner can see the sandbox.
func (a *API) visibleSandbox(r *http.Request, owner string) error {
	_, err := a.Store.GetSandbox(r.Context(), owner, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return errs.New(errs.NotFound, "Resource not found")
	}
	return err
}

func (a *API) listHistory(w http.ResponseWriter, r *http.Request, owner string) {
	q := &query{v: r.URL.Query()}
	f := store.ExecFilter{SandboxID: r.PathValue("id"), ExecType: q.v.Get("exec_type")}
	if f.ExecType != "" && !execTypeRe.MatchString(f.ExecType) {
		q.errs = append(q.errs, fieldError{Type: "string_pattern_mismatch", Loc: []any{"query", "exec_type"},
			Msg: "String should match pattern '^(python|shell|browser|browser_batch)$'", Input: f.ExecType,
			Ctx: map[string]any{"pattern": "^(python|shell|browser|browser_batch)$"}})
	}
	if so := q.boolean("success_only"); so != nil {
		f.SuccessOnly = *so
	}
	f.Limit = int(q.integer("limit", 100, 1, 500))
	f.Offset = int(q.integer("offset", 0, 0, maxOffset))
	f.HasNotes = q.boolean("has_notes")
	f.HasDescription = q.boolean("has_description")
	f.Tags = q.tags("tags")
	if err := q.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.visibleSandbox(r, owner); err != nil {
		a.fail(w, r, err)
		return
	}
	list, total, err := a.Store.ListExecutions(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	entries := make([]executionJSON, 0, len(list))
	for _, e := range list {
		entries = append(entries, executionView(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries, "total": total})
}

func (a *API) lastHistory(w http.ResponseWriter, r *http.Request, owner string) {
	typ := r.URL.Query().Get("exec_type")
	if typ != "" && !execTypeRe.MatchString(typ) {
		a.fail(w, r, &validationError{[]fieldError{{Type: "string_pattern_mismatch", Loc: []any{"query", "exec_type"},
			Msg: "String should match pattern '^(python|shell|browser|browser_batch)$'", Input: typ}}})
		return
	}
	if err := a.visibleSandbox(r, owner); err != nil {
		a.fail(w, r, err)
		return
	}
	e, err := a.Store.LastExecution(r.Context(), r.PathValue("id"), typ)
	if errors.Is(err, store.ErrNotFound) {
		err = errs.New(errs.NotFound, "No execution history found")
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, executionView(e))
}

func (a *API) getHistory(w http.ResponseWriter, r *http.Request, owner string) {
	if err := a.visibleSandbox(r, owner); err != nil {
		a.fail(w, r, err)
		return
	}
	e, err := a.Store.GetExecution(r.Context(), r.PathValue("id"), r.PathValue("eid"))
	if errors.Is(err, store.ErrNotFound) {
		err = errs.Newf(errs.NotFound, "Execution not found: %s", r.PathValue("eid"))
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, executionView(e))
}

func (a *API) patchHistory(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	desc, tags, notes := b.text("description", false), b.text("tags", false), b.text("notes", false)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.visibleSandbox(r, owner); err != nil {
		a.fail(w, r, err)
		return
	}
	id, eid := r.PathValue("id"), r.PathValue("eid")
	if _, err := a.Store.GetExecution(r.Context(), id, eid); errors.Is(err, store.ErrNotFound) {
		a.fail(w, r, errs.Newf(errs.NotFound, "Execution not found: %s", eid))
		return
	}
	if tags != nil {
		if n := capability.NormalizeTags(tags); n != nil {
			tags = n
		} else {
			empty := ""
			tags = &empty
		}
	}
	if err := a.Store.AnnotateExecution(r.Context(), id, eid, desc, tags, notes); err != nil {
		a.fail(w, r, err)
		return
	}
	e, err := a.Store.GetExecution(r.Context(), id, eid)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, executionView(e))
}
