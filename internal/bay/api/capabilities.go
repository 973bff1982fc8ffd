package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"

	"github.com/shipyard/shipyard/internal/bay/capability"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

func execMeta(b *body) capability.Meta {
	return capability.Meta{Description: b.text("description", false), Tags: b.text("tags", false),
		IncludeCode: b.boolean("include_code", false)}
}

func (a *API) pythonExec(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	code := b.text("code", true)
	timeout := b.integer("timeout", false, &minTimeout, &maxTimeout)
	meta := execMeta(b)
	kill := b.boolean("kill_on_disconnect", false)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	t := int64(30)
	if timeout != nil {
		t = *timeout
	}
	var echo *string
	if meta.IncludeCode {
		echo = code
	}
	if wantsStream(r) {
		s := newEventStream(w, streamKeepAlive)
		defer s.close()
		res, err := a.Capabilities.PythonStream(r.Context(), owner, r.PathValue("id"), *code, int(t), meta,
			capability.Stream{KillOnDisconnect: kill, Sink: s.sink()}, a.Now())
		if err != nil {
			a.streamFail(s, w, r, err)
			return
		}
		s.open() // a runtime that answered plain JSON streamed nothing
		s.event(wire.EventResult, pythonBody(res, echo))
		return
	}
	res, err := a.Capabilities.Python(r.Context(), owner, r.PathValue("id"), *code, int(t), meta, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pythonBody(res, echo))
}

// pythonBody is python/exec's answer (and a stream's result event).
func pythonBody(res *capability.PythonResult, echo *string) any {
	return struct {
		Success         bool    `json:"success"`
		Output          string  `json:"output"`
		Error           *string `json:"error"`
		Data            any     `json:"data"`
		ExecutionID     string  `json:"execution_id"`
		ExecutionTimeMs int64   `json:"execution_time_ms"`
		Code            *string `json:"code"`
		TimedOut        bool    `json:"timed_out"`
		KernelRestarted bool    `json:"kernel_restarted"`
		Notice          *string `json:"notice"`
		Truncated       bool    `json:"truncated"`
	}{res.Success, res.Output, res.Error, struct {
		ExecutionCount *int            `json:"execution_count"`
		Output         json.RawMessage `json:"output"`
	}{res.ExecutionCount, res.RawOutput}, res.ExecutionID, res.ExecutionTimeMs, echo,
		res.TimedOut, res.KernelRestarted, res.Notice, res.Truncated}
}

func (a *API) shellExec(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	command := b.text("command", true)
	timeout := b.integer("timeout", false, &minTimeout, &maxTimeout)
	cwd := b.str("cwd", false)
	meta := execMeta(b)
	kill := b.boolean("kill_on_disconnect", false)
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
	t := int64(30)
	if timeout != nil {
		t = *timeout
	}
	var echo *string
	if meta.IncludeCode {
		echo = command
	}
	if wantsStream(r) {
		s := newEventStream(w, streamKeepAlive)
		defer s.close()
		res, err := a.Capabilities.ShellStream(r.Context(), owner, r.PathValue("id"), *command, int(t), dir, meta,
			capability.Stream{KillOnDisconnect: kill, Sink: s.sink()}, a.Now())
		if err != nil {
			a.streamFail(s, w, r, err)
			return
		}
		s.open()
		s.event(wire.EventResult, shellBody(res, echo))
		return
	}
	res, err := a.Capabilities.Shell(r.Context(), owner, r.PathValue("id"), *command, int(t), dir, meta, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, shellBody(res, echo))
}

// shellBody is shell/exec's answer (and a stream's result event).
func shellBody(res *capability.ShellResult, echo *string) wire.ShellResult {
	return wire.ShellResult{Success: res.Success, Output: res.Output, Error: res.Error, ExitCode: res.ExitCode,
		ExecutionID: res.ExecutionID, ExecutionTimeMs: res.ExecutionTimeMs, Command: echo,
		TimedOut: res.TimedOut, Truncated: res.Truncated, Notice: res.Notice}
}

// pathQuery reads and validates the `path` query parameter.
func pathQuery(r *http.Request, def string) (string, error) {
	q := &query{v: r.URL.Query()}
	p := def
	if def == "" {
		p = q.required("path")
		if err := q.err(); err != nil {
			return "", err
		}
	} else if q.v.Has("path") {
		p = q.v.Get("path")
	}
	return ValidatePath(p, "path")
}

func (a *API) readFile(w http.ResponseWriter, r *http.Request, owner string) {
	p, err := pathQuery(r, "")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	content, err := a.Capabilities.ReadFile(r.Context(), owner, r.PathValue("id"), p, a.Now())
	if err != nil {
		a.fail(w, r, fileErr(err, p))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"content": content})
}

// fileErr names the path in file_not_found messages.
func fileErr(err error, p string) error {
	if e, ok := errs.As(err); ok && e.Code == errs.FileNotFound {
		return errs.Newf(errs.FileNotFound, "File not found: %s", p).With(map[string]any{"path": p})
	}
	return err
}

func (a *API) writeFile(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p := b.str("path", true)
	content := b.str("content", true)
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	np, err := ValidatePath(*p, "path")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Capabilities.WriteFile(r.Context(), owner, r.PathValue("id"), np, *content, a.Now()); err != nil {
		a.fail(w, r, fileErr(err, np))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) deleteFile(w http.ResponseWriter, r *http.Request, owner string) {
	p, err := pathQuery(r, "")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Capabilities.DeleteFile(r.Context(), owner, r.PathValue("id"), p, a.Now()); err != nil {
		a.fail(w, r, fileErr(err, p))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) listDir(w http.ResponseWriter, r *http.Request, owner string) {
	p, err := pathQuery(r, ".")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	entries, err := a.Capabilities.ListDir(r.Context(), owner, r.PathValue("id"), p, a.Now())
	if err != nil {
		a.fail(w, r, fileErr(err, p))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

// upload streams the multipart `file` part to Ship; the form field `path` must
// come first or be given as a query parameter, since the file is never buffered.
func (a *API) upload(w http.ResponseWriter, r *http.Request, owner string) {
	r.Body = http.MaxBytesReader(w, r.Body, a.Config.Server.MaxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		a.fail(w, r, &validationError{[]fieldError{{Type: "missing", Loc: []any{"body", "file"}, Msg: "Field required", Input: nil}}})
		return
	}
	p := r.URL.Query().Get("path")
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			a.fail(w, r, errs.New(errs.Validation, "Malformed multipart body").Wrap(err))
			return
		}
		switch part.FormName() {
		case "path":
			v, _ := io.ReadAll(io.LimitReader(part, 4096))
			p = string(v)
		case "file":
			if p == "" {
				a.fail(w, r, &validationError{[]fieldError{{Type: "missing", Loc: []any{"body", "path"}, Msg: "Field required", Input: nil}}})
				return
			}
			np, err := ValidatePath(p, "path")
			if err != nil {
				a.fail(w, r, err)
				return
			}
			src := &readRecorder{r: part}
			size, err := a.Capabilities.Upload(r.Context(), owner, r.PathValue("id"), np, src, a.Now())
			if err != nil {
				if src.err != nil { // the client's body broke (too large, truncated), not the runtime
					var mbe *http.MaxBytesError
					if errors.As(src.err, &mbe) {
						err = errs.Newf(errs.Validation, "Upload too large (limit %d bytes)", a.Config.Server.MaxUploadBytes)
					} else {
						err = bodyReadError(src.err, a.Config.Server.MaxUploadBytes)
					}
				}
				a.fail(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "path": np, "size": size})
			return
		}
	}
	missing := []fieldError{{Type: "missing", Loc: []any{"body", "file"}, Msg: "Field required", Input: nil}}
	if p == "" {
		missing = append(missing, fieldError{Type: "missing", Loc: []any{"body", "path"}, Msg: "Field required", Input: nil})
	}
	a.fail(w, r, &validationError{missing})
}

// readRecorder remembers the first error other than EOF its reader returned.
type readRecorder struct {
	r   io.Reader
	err error
}

func (rr *readRecorder) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && err != io.EOF && rr.err == nil {
		rr.err = err
	}
	return n, err
}

func (a *API) download(w http.ResponseWriter, r *http.Request, owner string) {
	p, err := pathQuery(r, "")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rc, size, err := a.Capabilities.Download(r.Context(), owner, r.PathValue("id"), p, a.Now())
	if err != nil {
		a.fail(w, r, fileErr(err, p))
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(p)}))
	if size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		a.log.WarnContext(r.Context(), "download interrupted", "err", err)
	}
}
