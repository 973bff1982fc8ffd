package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/shipyard/shipyard/internal/ship/kernel"
	"github.com/shipyard/shipyard/internal/ship/process"
	"github.com/shipyard/shipyard/internal/ship/workspace"
)

func (s *Server) handlePython(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code             string   `json:"code"`
		Timeout          *float64 `json:"timeout"`
		Silent           bool     `json:"silent"`
		KillOnDisconnect bool     `json:"kill_on_disconnect"`
	}
	if !decodeJSON(w, r, &req, "code") {
		return
	}
	ctx := r.Context()
	kreq := kernel.Request{Code: req.Code, Timeout: s.timeout(req.Timeout, s.opt.DefaultTimeout), Silent: req.Silent}
	if !wantsStream(r) {
		writeJSON(w, http.StatusOK, s.runPython(ctx, kreq))
		return
	}
	// Streamed: the cell runs to its end (or timeout) even if the client
	// leaves, unless it asked otherwise.
	run, cancel := s.streamContext(ctx, req.KillOnDisconnect)
	defer cancel()
	out := startSSE(w, s.opt.StreamKeepAlive, s.goneFunc(req.KillOnDisconnect, cancel))
	defer out.close()
	kreq.OnOutput = func(o kernel.Output) {
		switch o.Type {
		case kernel.OutputStdout, kernel.OutputStderr:
			out.event(o.Type, map[string]string{"text": o.Text})
		case kernel.OutputDisplay:
			out.event(o.Type, map[string]any{"data": o.Data})
		case kernel.OutputException:
			out.event(o.Type, map[string]any{"ename": o.Ename, "evalue": o.Evalue, "traceback": o.Traceback})
		}
	}
	out.event("result", s.runPython(run, kreq))
}

// streamContext is the context a streamed execution runs in: the request's,
// or, unless killOnDisconnect, one the client's leaving does not cancel.
func (s *Server) streamContext(ctx context.Context, killOnDisconnect bool) (context.Context, context.CancelFunc) {
	if killOnDisconnect {
		return context.WithCancel(ctx)
	}
	return context.WithCancel(context.WithoutCancel(ctx))
}

// goneFunc is what a stream does when its client goes away: cancel the
// execution when asked to.
func (s *Server) goneFunc(killOnDisconnect bool, cancel context.CancelFunc) func() {
	if killOnDisconnect {
		return cancel
	}
	return nil
}

// runPython runs a cell and returns /ipython/exec's answer.
func (s *Server) runPython(ctx context.Context, req kernel.Request) map[string]any {
	start := time.Now()
	// Execute starts the kernel when there is none (at boot it is already
	// starting; after DELETE /ipython/kernel or a failed start it starts
	// again) and waits for it within timeout.
	res, err := s.opt.Kernel.Execute(ctx, req)
	s.opt.Metrics.execDuration.WithLabelValues("python").Observe(time.Since(start).Seconds())
	if err != nil {
		s.log.WarnContext(ctx, "python execution failed", "err", err)
		return map[string]any{"success": false, "execution_count": nil, "output": map[string]any{},
			"error": "Execution error: " + err.Error()}
	}
	if res.Restarted {
		s.opt.Metrics.kernelRestarts.WithLabelValues("died").Inc()
		s.log.WarnContext(ctx, "kernel had died and was restarted; state lost")
	}
	output := map[string]any{"text": res.Text, "images": res.Images}
	if res.Images == nil {
		output["images"] = []map[string]string{}
	}
	for mimeType, v := range res.Data {
		if mimeType != "text" && mimeType != "images" {
			output[mimeType] = v
		}
	}
	return map[string]any{
		"success":          res.Success,
		"execution_count":  res.ExecutionCount,
		"output":           output,
		"error":            orNil(res.Error),
		"timed_out":        res.TimedOut,
		"kernel_restarted": res.Restarted,
		"notice":           orNil(res.Notice),
		"truncated":        res.Truncated,
	}
}

func (s *Server) handleKernelStatus(w http.ResponseWriter, r *http.Request) {
	st := s.opt.Kernel.Status()
	writeJSON(w, http.StatusOK, map[string]any{"status": st, "has_kernel": st != kernel.StatusNotStarted, "workspace": s.opt.WorkspaceName})
}

func (s *Server) handleKernelRestart(w http.ResponseWriter, r *http.Request) {
	s.kmu.Lock()
	var err error
	if s.opt.Kernel.Status() == kernel.StatusNotStarted {
		err = s.opt.Kernel.Start(r.Context())
	} else {
		err = s.opt.Kernel.Restart(r.Context())
	}
	s.kmu.Unlock()
	if err != nil {
		s.log.ErrorContext(r.Context(), "kernel restart failed", "err", err)
		detail(w, http.StatusInternalServerError, "Failed to restart kernel: "+err.Error())
		return
	}
	s.opt.Metrics.kernelRestarts.WithLabelValues("api").Inc()
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Kernel restarted successfully"})
}

func (s *Server) handleKernelShutdown(w http.ResponseWriter, r *http.Request) {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	if s.opt.Kernel.Status() == kernel.StatusNotStarted {
		detail(w, http.StatusNotFound, "No kernel is running")
		return
	}
	if err := s.opt.Kernel.Shutdown(r.Context()); err != nil {
		s.log.ErrorContext(r.Context(), "kernel shutdown failed", "err", err)
		detail(w, http.StatusInternalServerError, "Failed to shut down kernel: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Kernel shutdown successfully"})
}

type shellResponse struct {
	Success    bool    `json:"success"`
	ReturnCode int     `json:"return_code"`
	Stdout     string  `json:"stdout"`
	Stderr     string  `json:"stderr"`
	Pid        *int    `json:"pid"`
	ProcessID  *string `json:"process_id"`
	Error      *string `json:"error"`
	TimedOut   bool    `json:"timed_out"`
	Truncated  bool    `json:"truncated"`
	// Notice (additive) says that stray processes were killed to free
	// process slots before the command could start.
	Notice *string `json:"notice,omitempty"`
}

func shellFailure(msg string) shellResponse {
	return shellResponse{ReturnCode: -1, Error: &msg}
}

func (s *Server) handleShell(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Command    string            `json:"command"`
		Cwd        string            `json:"cwd"`
		Env        map[string]string `json:"env"`
		Timeout    *float64          `json:"timeout"`
		Shell      *bool             `json:"shell"`
		Background bool              `json:"background"`
		// KillOnDisconnect: a streamed command is killed when its client
		// goes away (by default it runs on to its end or timeout).
		KillOnDisconnect bool `json:"kill_on_disconnect"`
	}
	if !decodeJSON(w, r, &req, "command") {
		return
	}
	if err := process.ValidateEnv(req.Env); err != nil {
		detail(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	dir, errMsg := s.cwd(req.Cwd)
	if errMsg != "" {
		s.shellAnswer(w, r, shellFailure(errMsg))
		return
	}
	spec := process.Spec{Command: req.Command, Dir: dir, Env: req.Env, NoShell: req.Shell != nil && !*req.Shell,
		Timeout: s.timeout(req.Timeout, s.opt.DefaultTimeout)}
	if req.Background {
		info, err := s.opt.Processes.Start(ctx, spec)
		if err != nil {
			s.shellAnswer(w, r, shellFailure(err.Error()))
			return
		}
		s.shellAnswer(w, r, shellResponse{Success: true, Pid: &info.Pid, ProcessID: &info.ProcessID, Notice: strOrNil(info.Notice)})
		return
	}
	if !wantsStream(r) {
		out, ok := s.runShell(ctx, spec)
		if ok {
			writeJSON(w, http.StatusOK, out)
		}
		return
	}
	run, cancel := s.streamContext(ctx, req.KillOnDisconnect)
	defer cancel()
	sse := startSSE(w, s.opt.StreamKeepAlive, s.goneFunc(req.KillOnDisconnect, cancel))
	defer sse.close()
	streams := map[string]*textStream{"stdout": {typ: "stdout", out: sse}, "stderr": {typ: "stderr", out: sse}}
	spec.OnOutput = func(stream string, p []byte) { streams[stream].write(p) }
	out, ok := s.runShell(run, spec)
	streams["stdout"].flush()
	streams["stderr"].flush()
	if !ok {
		out = shellFailure("Command cancelled: the client went away")
	}
	sse.event("result", out)
}

// shellAnswer answers a shell call that runs nothing in the foreground: as
// JSON, or as a stream of one result event when one was asked for.
func (s *Server) shellAnswer(w http.ResponseWriter, r *http.Request, out shellResponse) {
	if !wantsStream(r) {
		writeJSON(w, http.StatusOK, out)
		return
	}
	sse := startSSE(w, s.opt.StreamKeepAlive, nil)
	sse.event("result", out)
	sse.close()
}

// cwd resolves a command's working directory in the workspace ("" = its
// root); a bad one gives the message of the failure answer.
func (s *Server) cwd(cwd string) (dir, errMsg string) {
	if cwd == "" {
		return s.opt.Workspace.Dir(), ""
	}
	d, err := s.opt.Workspace.Resolve(cwd)
	if err != nil {
		if errors.Is(err, workspace.ErrOutside) {
			return "", "403: Access denied: path must be within workspace: " + s.opt.WorkspaceName
		}
		return "", "Invalid cwd: " + cwd
	}
	return d, ""
}

// runShell runs a foreground command and returns /shell/exec's answer;
// false when ctx ended first (nothing to answer).
func (s *Server) runShell(ctx context.Context, spec process.Spec) (shellResponse, bool) {
	start := time.Now()
	res, err := s.opt.Processes.Run(ctx, spec)
	s.opt.Metrics.execDuration.WithLabelValues("shell").Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return shellResponse{}, false // client went away
		}
		out := shellFailure(err.Error())
		out.Notice = strOrNil(res.Notice)
		return out, true
	}
	out := shellResponse{Success: res.ReturnCode == 0 && !res.TimedOut, ReturnCode: res.ReturnCode, Stdout: res.Stdout,
		Stderr: res.Stderr, Pid: &res.Pid, TimedOut: res.TimedOut, Truncated: res.Truncated, Notice: strOrNil(res.Notice)}
	if res.TimedOut {
		msg := fmt.Sprintf("Command timed out after %s seconds", fmtSeconds(spec.Timeout))
		out.Error = &msg
	}
	return out, true
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) handleProcesses(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"processes": s.opt.Processes.List()})
}

type processView struct {
	process.Info
	Stdout        string `json:"stdout"`
	Stderr        string `json:"stderr"`
	StdoutDropped int64  `json:"stdout_dropped"`
	StderrDropped int64  `json:"stderr_dropped"`
	Truncated     bool   `json:"truncated"` // older output fell out of the ring
}

func (s *Server) writeProcess(w http.ResponseWriter, info process.Info, out process.Output, err error) {
	if err != nil {
		if errors.Is(err, process.ErrNotFound) {
			detail(w, http.StatusNotFound, "Process not found")
			return
		}
		detail(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, processView{Info: info, Stdout: out.Stdout, Stderr: out.Stderr,
		StdoutDropped: out.StdoutDropped, StderrDropped: out.StderrDropped, Truncated: out.Truncated()})
}

func (s *Server) handleProcess(w http.ResponseWriter, r *http.Request) {
	info, out, err := s.opt.Processes.Get(r.PathValue("id"))
	s.writeProcess(w, info, out, err)
}

func (s *Server) handleProcessWait(w http.ResponseWriter, r *http.Request) {
	var sec *float64
	if v := r.URL.Query().Get("timeout"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			validation(w, fieldError{Type: "float_parsing", Loc: []any{"query", "timeout"}, Msg: "Input should be a valid number", Input: v})
			return
		}
		sec = &f
	}
	info, out, err := s.opt.Processes.Wait(r.Context(), r.PathValue("id"), s.timeout(sec, s.opt.DefaultTimeout))
	if err != nil && r.Context().Err() != nil {
		return
	}
	s.writeProcess(w, info, out, err)
}

func (s *Server) handleProcessKill(w http.ResponseWriter, r *http.Request) {
	info, out, err := s.opt.Processes.Kill(r.Context(), r.PathValue("id"))
	s.writeProcess(w, info, out, err)
}
