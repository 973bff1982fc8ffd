package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"

	"github.com/shipyard/shipyard/internal/ship/files"
	"github.com/shipyard/shipyard/internal/ship/workspace"
)

// fsError answers a failed file operation: 403 outside the workspace, 404
// missing, 400 wrong kind or bad input, 413 too large, 500 otherwise.
func (s *Server) fsError(w http.ResponseWriter, r *http.Request, op string, err error) {
	var fe *files.Error
	msg := ""
	if errors.As(err, &fe) {
		msg = fe.Detail
	}
	switch {
	case errors.Is(err, workspace.ErrOutside):
		detail(w, http.StatusForbidden, "Access denied: path must be within workspace "+s.opt.WorkspaceName)
	case errors.Is(err, workspace.ErrInvalid):
		detail(w, http.StatusBadRequest, "Invalid path: "+errors.Unwrap(err).Error())
	case errors.Is(err, files.ErrNotFound):
		detail(w, http.StatusNotFound, msg)
	case errors.Is(err, files.ErrNotFile), errors.Is(err, files.ErrNotDir), errors.Is(err, files.ErrInvalid):
		detail(w, http.StatusBadRequest, msg)
	case errors.Is(err, files.ErrTooLarge):
		detail(w, http.StatusRequestEntityTooLarge, msg)
	default:
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			detail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large (limit %d bytes)", tooBig.Limit))
			return
		}
		s.log.ErrorContext(r.Context(), op+" failed", "err", err)
		detail(w, http.StatusInternalServerError, fmt.Sprintf("Failed to %s: %v", op, err))
	}
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path    string `json:"path"`
		Content string `json:"content"`
		Mode    *int   `json:"mode"`
	}
	if !decodeJSON(w, r, &req, "path") {
		return
	}
	mode := os.FileMode(0o644)
	if req.Mode != nil {
		if *req.Mode < 0 || *req.Mode > 0o7777 {
			detail(w, http.StatusBadRequest, "mode must be a permission value between 0 and 0o7777")
			return
		}
		mode = os.FileMode(*req.Mode)
	}
	abs, err := s.opt.Files.Create(req.Path, req.Content, mode)
	if err != nil {
		s.fsError(w, r, "create file", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "File created: " + req.Path, "path": abs})
}

func (s *Server) handleRead(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path     string `json:"path"`
		Encoding string `json:"encoding"`
		Offset   *int   `json:"offset"`
		Limit    *int   `json:"limit"`
	}
	if !decodeJSON(w, r, &req, "path") {
		return
	}
	offset, limit := 0, 0
	if req.Offset != nil {
		offset = *req.Offset
	}
	if req.Limit != nil {
		if *req.Limit < 1 {
			detail(w, http.StatusBadRequest, "limit must be at least 1")
			return
		}
		limit = *req.Limit
	}
	res, err := s.opt.Files.Read(req.Path, req.Encoding, offset, limit)
	if err != nil {
		s.fsError(w, r, "read file", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"content": res.Content, "path": res.Path, "size": res.Size})
}

func (s *Server) handleWrite(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path     string `json:"path"`
		Content  string `json:"content"`
		Mode     string `json:"mode"`
		Encoding string `json:"encoding"`
	}
	if !decodeJSON(w, r, &req, "path", "content") {
		return
	}
	appendMode := req.Mode != "" && req.Mode != "w" // upstream: anything but "w" appends
	abs, size, err := s.opt.Files.Write(req.Path, req.Content, appendMode, req.Encoding)
	if err != nil {
		s.fsError(w, r, "write file", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "File written: " + req.Path, "path": abs, "size": size})
}

func (s *Server) handleEdit(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path       string `json:"path"`
		OldString  string `json:"old_string"`
		NewString  string `json:"new_string"`
		ReplaceAll bool   `json:"replace_all"`
		Encoding   string `json:"encoding"`
	}
	if !decodeJSON(w, r, &req, "path", "old_string", "new_string") {
		return
	}
	abs, n, size, err := s.opt.Files.Edit(req.Path, req.OldString, req.NewString, req.ReplaceAll, req.Encoding)
	if err != nil {
		s.fsError(w, r, "edit file", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true,
		"message": fmt.Sprintf("Replaced %d occurrence(s) in %s", n, req.Path), "path": abs, "replacements": n, "size": size})
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path string `json:"path"`
	}
	if !decodeJSON(w, r, &req, "path") {
		return
	}
	_, wasDir, err := s.opt.Files.Delete(req.Path)
	if err != nil {
		s.fsError(w, r, "delete file", err)
		return
	}
	msg := "File deleted: " + req.Path
	if wasDir {
		msg = "Directory deleted: " + req.Path
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": msg})
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path       string `json:"path"`
		ShowHidden bool   `json:"show_hidden"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	entries, abs, truncated, err := s.opt.Files.List(req.Path, req.ShowHidden)
	if err != nil {
		s.fsError(w, r, "list directory", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"files": entries, "current_path": abs, "truncated": truncated})
}

// handleUpload streams a multipart upload (part "file", field "file_path")
// to disk without buffering it: parts are read in order; if the file comes
// before its path, it is staged in the workspace and moved afterwards.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.opt.MaxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		validation(w, fieldError{Type: "missing", Loc: []any{"body", "file"}, Msg: "Expected multipart/form-data with a 'file' part and a 'file_path' field"})
		return
	}
	var (
		path, abs, staged string
		size              int64
		gotFile           bool
	)
	defer func() {
		if staged != "" {
			os.Remove(staged)
		}
	}()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.fsError(w, r, "upload file", fmt.Errorf("read multipart: %w", err))
			return
		}
		switch part.FormName() {
		case "file_path":
			b, err := io.ReadAll(io.LimitReader(part, 4097))
			if err != nil {
				s.fsError(w, r, "upload file", fmt.Errorf("read file_path: %w", err))
				return
			}
			if len(b) > 4096 {
				detail(w, http.StatusBadRequest, "file_path too long")
				return
			}
			path = string(b)
		case "file":
			if gotFile {
				break // only the first file part counts
			}
			gotFile = true
			if path != "" {
				abs, size, err = s.opt.Files.Upload(path, part)
			} else {
				staged, size, err = s.opt.Files.Stage(part)
			}
			if err != nil {
				s.fsError(w, r, "upload file", err)
				return
			}
		}
		part.Close()
	}
	var missing []fieldError
	if !gotFile {
		missing = append(missing, fieldError{Type: "missing", Loc: []any{"body", "file"}, Msg: "Field required"})
	}
	if path == "" {
		missing = append(missing, fieldError{Type: "missing", Loc: []any{"body", "file_path"}, Msg: "Field required"})
	}
	if len(missing) > 0 {
		validation(w, missing...)
		return
	}
	if staged != "" {
		abs, err = s.opt.Files.Commit(staged, path)
		staged = ""
		if err != nil {
			s.fsError(w, r, "upload file", err)
			return
		}
	}
	s.log.InfoContext(r.Context(), "file uploaded", "size", size)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "File uploaded successfully", "file_path": abs, "size": size, "error": nil})
}

func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("file_path")
	if p == "" {
		validation(w, fieldError{Type: "missing", Loc: []any{"query", "file_path"}, Msg: "Field required"})
		return
	}
	f, fi, err := s.opt.Files.Open(p)
	if err != nil {
		switch {
		case errors.Is(err, files.ErrNotFound):
			detail(w, http.StatusNotFound, "File not found")
		case errors.Is(err, files.ErrNotFile):
			detail(w, http.StatusBadRequest, "Path is not a file")
		default:
			s.fsError(w, r, "download file", err)
		}
		return
	}
	defer f.Close()
	name := filepath.Base(f.Name())
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	http.ServeContent(w, r, name, fi.ModTime(), f)
}
