package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// Background processes: started detached in the sandbox, listed, read from
// an offset, waited on, signalled and removed. The handle is Ship's (Bay
// keeps nothing), so processes outlive clients and Bay restarts. See docs/api.md.

func (a *API) processRoutes() {
	a.handle("POST /v1/sandboxes/{id}/processes", a.authed(a.startProcess))
	a.handle("GET /v1/sandboxes/{id}/processes", a.authed(a.listProcesses))
	a.handle("GET /v1/sandboxes/{id}/processes/{process_id}", a.authed(a.withProcess(a.getProcess)))
	a.handle("GET /v1/sandboxes/{id}/processes/{process_id}/output", a.authed(a.withProcess(a.processOutput)))
	a.handle("POST /v1/sandboxes/{id}/processes/{process_id}/wait", a.authed(a.withProcess(a.waitProcess)))
	a.handle("POST /v1/sandboxes/{id}/processes/{process_id}/signal", a.authed(a.withProcess(a.signalProcess)))
	a.handle("DELETE /v1/sandboxes/{id}/processes/{process_id}", a.authed(a.withProcess(a.deleteProcess)))
}

// Limits of the process routes.
const (
	defaultOutputBytes = 64 << 10 // max_bytes default
	maxOutputBytes     = 1 << 20  // max_bytes cap (larger asks get this)
	defaultWaitSeconds = 30
	maxWaitSeconds     = 3600
	maxEnvEntries      = 256
)

var (
	processIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	envNamePattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	signalNames      = []string{"TERM", "KILL", "INT", "HUP", "QUIT", "USR1", "USR2"}
)

// viewOf is a process as Bay's API shows it (the SDK's wire type).
func viewOf(p *runtime.Process) wire.Process {
	v := wire.Process{ProcessID: p.ProcessID, PID: p.Pid, Command: p.Command, Status: p.Status, ExitCode: p.ExitCode,
		StartedAt: model.FormatTime(p.StartedAt)}
	if p.FinishedAt != nil {
		e := model.FormatTime(*p.FinishedAt)
		v.EndedAt = &e
	}
	return v
}

// withProcess checks the process id of the path (an id that cannot exist is
// simply not found).
func (a *API) withProcess(h func(w http.ResponseWriter, r *http.Request, owner, pid string)) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, owner string) {
		pid := r.PathValue("process_id")
		if !processIDPattern.MatchString(pid) {
			a.fail(w, r, errs.Newf(errs.ProcessNotFound, "Process not found: %s", pid).With(map[string]any{"process_id": pid}))
			return
		}
		h(w, r, owner, pid)
	}
}

// envField reads the optional env object: identifiers to strings without NUL.
func envField(b *body) map[string]string {
	v, ok := b.value("env")
	if !ok || v == nil {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		b.fail("dict_type", "env", "Input should be a valid dictionary", v, nil)
		return nil
	}
	if len(obj) > maxEnvEntries {
		b.fail("too_long", "env", fmt.Sprintf("Dictionary should have at most %d items", maxEnvEntries), nil, map[string]any{"max_length": maxEnvEntries})
		return nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make(map[string]string, len(obj))
	for _, k := range keys {
		s, ok := obj[k].(string)
		switch {
		case !envNamePattern.MatchString(k):
			b.errs = append(b.errs, fieldError{Type: "string_pattern_mismatch", Loc: []any{"body", "env", k},
				Msg: "Variable names must match ^[A-Za-z_][A-Za-z0-9_]*$", Input: k})
		case !ok:
			b.errs = append(b.errs, fieldError{Type: "string_type", Loc: []any{"body", "env", k}, Msg: "Input should be a valid string", Input: obj[k]})
		case strings.ContainsRune(s, 0):
			b.errs = append(b.errs, fieldError{Type: "string_pattern_mismatch", Loc: []any{"body", "env", k}, Msg: "String should not contain NUL characters", Input: s})
		default:
			env[k] = s
		}
	}
	return env
}

func (a *API) startProcess(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	command := b.text("command", true)
	cwd := b.str("cwd", false)
	env := envField(b)
	if command != nil && strings.TrimSpace(*command) == "" {
		b.fail("string_too_short", "command", "Command should not be empty", *command, nil)
	}
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	dir := ""
	if cwd != nil && *cwd != "" {
		if dir, err = ValidatePath(*cwd, "cwd"); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	p, err := a.Capabilities.StartProcess(r.Context(), owner, r.PathValue("id"), *command, dir, env, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, viewOf(p))
}

func (a *API) listProcesses(w http.ResponseWriter, r *http.Request, owner string) {
	ps, err := a.Capabilities.Processes(r.Context(), owner, r.PathValue("id"), a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := wire.ProcessList{Processes: make([]wire.Process, 0, len(ps))}
	for i := range ps {
		out.Processes = append(out.Processes, viewOf(&ps[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getProcess(w http.ResponseWriter, r *http.Request, owner, pid string) {
	p, err := a.Capabilities.Process(r.Context(), owner, r.PathValue("id"), pid, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(p))
}

func (a *API) processOutput(w http.ResponseWriter, r *http.Request, owner, pid string) {
	q := &query{v: r.URL.Query()}
	offset := q.integer("offset", 0, 0, 1<<62)
	maxBytes := q.integer("max_bytes", defaultOutputBytes, 1, 1<<62)
	if err := q.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	o, err := a.Capabilities.ProcessOutput(r.Context(), owner, r.PathValue("id"), pid, offset, int(min(maxBytes, maxOutputBytes)), a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ProcessOutput{ProcessID: o.ProcessID, Output: o.Output, Offset: o.Offset,
		NextOffset: o.NextOffset, Truncated: o.Truncated, Status: o.Status, ExitCode: o.ExitCode})
}

// seconds reads an optional number of seconds in [0, hi].
func (b *body) seconds(name string, def, hi float64) float64 {
	v, ok := b.value(name)
	if !ok || v == nil {
		return def
	}
	n, isNum := v.(json.Number)
	f, err := n.Float64()
	if !isNum || err != nil {
		b.fail("float_type", name, "Input should be a valid number", v, nil)
		return def
	}
	if f < 0 || f > hi {
		b.fail("less_than_equal", name, fmt.Sprintf("Input should be between 0 and %g", hi), v, map[string]any{"ge": 0, "le": hi})
		return def
	}
	return f
}

func (a *API) waitProcess(w http.ResponseWriter, r *http.Request, owner, pid string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	timeout := b.seconds("timeout", defaultWaitSeconds, maxWaitSeconds)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := a.Capabilities.WaitProcess(r.Context(), owner, r.PathValue("id"), pid, time.Duration(timeout*float64(time.Second)), a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// timed_out is always present on this answer (the wire type omits a false one).
	writeJSON(w, http.StatusOK, struct {
		wire.Process
		TimedOut bool `json:"timed_out"`
	}{viewOf(p), p.Status == wire.ProcessRunning})
}

func (a *API) signalProcess(w http.ResponseWriter, r *http.Request, owner, pid string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	sig := b.str("signal", true)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(*sig)), "SIG")
	known := false
	for _, s := range signalNames {
		known = known || s == name
	}
	if !known {
		a.fail(w, r, &validationError{[]fieldError{{Type: "enum", Loc: []any{"body", "signal"},
			Msg: "Input should be one of " + strings.Join(signalNames, ", "), Input: *sig,
			Ctx: map[string]any{"expected": strings.Join(signalNames, ", ")}}}})
		return
	}
	p, err := a.Capabilities.SignalProcess(r.Context(), owner, r.PathValue("id"), pid, name, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(p))
}

func (a *API) deleteProcess(w http.ResponseWriter, r *http.Request, owner, pid string) {
	if err := a.Capabilities.RemoveProcess(r.Context(), owner, r.PathValue("id"), pid, a.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
