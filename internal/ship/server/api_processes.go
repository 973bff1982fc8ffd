package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/shipyard/shipyard/internal/ship/process"
)

// Output reads of a background process: max_bytes defaults to
// defaultOutputRead and is capped at maxOutputRead.
const (
	defaultOutputRead = 64 << 10
	maxOutputRead     = 1 << 20
)

// processError answers a failed process operation.
func processError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, process.ErrNotFound):
		detail(w, http.StatusNotFound, "Process not found")
	case errors.Is(err, process.ErrTooMany):
		detail(w, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, process.ErrInvalidEnv), errors.Is(err, process.ErrEmpty), errors.Is(err, process.ErrSignal):
		detail(w, http.StatusBadRequest, err.Error())
	default:
		detail(w, http.StatusInternalServerError, err.Error())
	}
}

// handleStartProcess starts a background command: POST /shell/processes
// {command, cwd?, env?} → 201 with the process.
func (s *Server) handleStartProcess(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Command string            `json:"command"`
		Cwd     string            `json:"cwd"`
		Env     map[string]string `json:"env"`
	}
	if !decodeJSON(w, r, &req, "command") {
		return
	}
	dir, msg := s.cwd(req.Cwd)
	if msg != "" {
		detail(w, http.StatusBadRequest, msg)
		return
	}
	info, err := s.opt.Processes.Start(r.Context(), process.Spec{Command: req.Command, Dir: dir, Env: req.Env})
	if err != nil {
		processError(w, err)
		return
	}
	body := struct {
		process.Info
		Notice *string `json:"notice,omitempty"`
	}{info, strOrNil(info.Notice)}
	writeJSON(w, http.StatusCreated, body)
}

// handleProcessOutput reads the merged output of a background process from
// an absolute byte offset: GET /shell/processes/{id}/output?offset=&max_bytes=.
func (s *Server) handleProcessOutput(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	offset, maxBytes := int64(0), defaultOutputRead
	if v := q.Get("offset"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			validation(w, fieldError{Type: "greater_than_equal", Loc: []any{"query", "offset"}, Msg: "Input should be an integer >= 0", Input: v})
			return
		}
		offset = n
	}
	if v := q.Get("max_bytes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			validation(w, fieldError{Type: "greater_than_equal", Loc: []any{"query", "max_bytes"}, Msg: "Input should be an integer >= 1", Input: v})
			return
		}
		maxBytes = min(n, maxOutputRead)
	}
	info, c, err := s.opt.Processes.ReadOutput(r.PathValue("id"), offset, maxBytes)
	if err != nil {
		processError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"process_id": info.ProcessID, "output": string(c.Data), "offset": c.Offset, "next_offset": c.Next,
		"truncated": c.Truncated, "status": info.Status, "exit_code": info.ExitCode,
	})
}

// handleProcessSignal sends a signal to a background process's group:
// POST /shell/processes/{id}/signal {signal}.
func (s *Server) handleProcessSignal(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Signal string `json:"signal"`
	}
	if !decodeJSON(w, r, &req, "signal") {
		return
	}
	sig, err := process.ParseSignal(req.Signal)
	if err != nil {
		processError(w, err)
		return
	}
	info, err := s.opt.Processes.Signal(r.Context(), r.PathValue("id"), sig)
	if err != nil {
		processError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// handleProcessRemove kills a background process's group if it runs and
// forgets it: DELETE /shell/processes/{id} → 204.
func (s *Server) handleProcessRemove(w http.ResponseWriter, r *http.Request) {
	if err := s.opt.Processes.Remove(r.Context(), r.PathValue("id")); err != nil {
		processError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
