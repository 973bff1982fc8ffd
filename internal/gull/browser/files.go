package browser

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// workspaceRel turns p (absolute under ws, or relative to ws) into a path
// relative to ws, refusing anything outside it.
func workspaceRel(ws, p string) (string, error) {
	if p == "" {
		return "", userf("a path is needed, e.g. /workspace/page.png")
	}
	if strings.ContainsRune(p, 0) {
		return "", userf("the path contains a NUL byte")
	}
	abs := p
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(ws, abs)
	}
	abs = filepath.Clean(abs)
	rel, err := filepath.Rel(ws, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", userf("%s is outside %s: files are read and written only under %s (e.g. %s/page.png)", p, ws, ws, ws)
	}
	return rel, nil
}

// writeWorkspaceFile writes data to p under ws (symlinks cannot lead out:
// os.Root refuses them) and returns the absolute path.
func writeWorkspaceFile(ws, p string, data []byte) (string, error) {
	rel, err := workspaceRel(ws, p)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "", userf("%s is the workspace directory itself: give a file name", p)
	}
	root, err := os.OpenRoot(ws)
	if err != nil {
		return "", fmt.Errorf("open the workspace: %w", err)
	}
	defer root.Close()
	if dir := filepath.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return "", userf("cannot create the directory of %s: %v", p, cleanErr(err, ws))
		}
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", userf("cannot write %s: %v", p, cleanErr(err, ws))
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return "", userf("cannot write %s: %v", p, cleanErr(err, ws))
	}
	if err := f.Close(); err != nil {
		return "", userf("cannot write %s: %v", p, cleanErr(err, ws))
	}
	return filepath.Join(ws, rel), nil
}

// readWorkspaceFile reads at most limit bytes of p under ws.
func readWorkspaceFile(ws, p string, limit int64) ([]byte, error) {
	rel, err := workspaceRel(ws, p)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(ws)
	if err != nil {
		return nil, fmt.Errorf("open the workspace: %w", err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, userf("%s does not exist", p)
		}
		return nil, userf("cannot read %s: %v", p, cleanErr(err, ws))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, userf("cannot read %s: %v", p, cleanErr(err, ws))
	}
	if int64(len(data)) > limit {
		return nil, userf("%s is larger than %d bytes", p, limit)
	}
	return data, nil
}

// existingPath checks that p is a regular file under ws (symlinks resolved
// inside ws) and returns its absolute path, for the browser to read.
func existingPath(ws, p string) (string, error) {
	rel, err := workspaceRel(ws, p)
	if err != nil {
		return "", err
	}
	root, err := os.OpenRoot(ws)
	if err != nil {
		return "", fmt.Errorf("open the workspace: %w", err)
	}
	defer root.Close()
	fi, err := root.Stat(rel)
	if err != nil {
		return "", userf("%s does not exist (or leads outside %s)", p, ws)
	}
	if !fi.Mode().IsRegular() {
		return "", userf("%s is not a regular file", p)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(ws, rel))
	if err != nil {
		return "", userf("cannot resolve %s: %v", p, cleanErr(err, ws))
	}
	if _, err := workspaceRel(ws, real); err != nil {
		return "", err
	}
	return real, nil
}

func cleanErr(err error, ws string) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return strings.ReplaceAll(err.Error(), ws, "")
}
