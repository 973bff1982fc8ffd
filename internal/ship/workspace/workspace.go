// Package workspace resolves user-supplied paths under the sandbox workspace
// (/workspace by default). Every path, relative or absolute, is resolved the way
// the kernel would walk it (symlinks followed component by component, ".." applied
// after a symlink is expanded), allowing a tail that does not exist yet, and the
// result must stay under the root.
//
// The check is a contract of the file API, not a security boundary against the
// sandbox user: shell and Python run as the same uid and can touch anything that
// uid can. It stops clients (and agents) from reading or writing outside the
// workspace through /fs by accident or by a crafted path.
package workspace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Sentinel errors; callers map them to HTTP statuses.
var (
	// ErrOutside: the path resolves outside the workspace root.
	ErrOutside = errors.New("path outside workspace")
	// ErrInvalid: the path cannot be a file name (NUL byte, symlink loop).
	ErrInvalid = errors.New("invalid path")
)

// maxLinks bounds symlink expansions in one resolution (Linux uses 40).
const maxLinks = 40

// Root is a resolved workspace directory.
type Root struct {
	dir string // absolute, cleaned, symlink-free
}

// New resolves dir (which must exist) and returns its Root.
func New(dir string) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("workspace root %q: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("workspace root %q: %w", dir, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("workspace root %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("workspace root %q: not a directory", dir)
	}
	return &Root{dir: real}, nil
}

// Dir is the resolved root directory.
func (r *Root) Dir() string { return r.dir }

// Resolve returns the absolute, symlink-resolved form of p (relative paths are
// taken from the root). The final component is followed if it is a symlink.
// Components that do not exist are kept as they are. An empty p is the root.
func (r *Root) Resolve(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%w: contains NUL", ErrInvalid)
	}
	res, err := resolve(r.abs(p))
	if err != nil {
		return "", err
	}
	return r.check(res)
}

// ResolveParent resolves every component of p but the last, which is kept as is
// (not followed): the path that names a directory entry itself, as unlink needs,
// so that deleting a symlink removes the link and not its target. A p whose last
// component is "", "." or ".." is resolved fully.
func (r *Root) ResolveParent(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%w: contains NUL", ErrInvalid)
	}
	abs := strings.TrimRight(r.abs(p), "/")
	i := strings.LastIndexByte(abs, '/')
	if i < 0 {
		return r.Resolve(p)
	}
	dir, base := abs[:i+1], abs[i+1:]
	if base == "" || base == "." || base == ".." {
		return r.Resolve(p)
	}
	parent, err := resolve(dir)
	if err != nil {
		return "", err
	}
	if _, err := r.check(parent); err != nil {
		return "", err
	}
	return r.check(filepath.Join(parent, base))
}

// Within reports whether an absolute, resolved path is the root or below it.
func (r *Root) Within(p string) bool {
	if p == r.dir {
		return true
	}
	prefix := r.dir
	if prefix != "/" {
		prefix += "/"
	}
	return strings.HasPrefix(p, prefix)
}

func (r *Root) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return r.dir + "/" + p
}

func (r *Root) check(p string) (string, error) {
	if !r.Within(p) {
		return "", ErrOutside
	}
	return p, nil
}

// resolve walks the absolute path p component by component like the kernel:
// a symlink is replaced by its target (absolute targets restart at "/"), ".."
// drops the last resolved component. A component that does not exist is taken
// as a plain name (nothing below it can be a symlink, but ".." may climb out of
// it again, so the walk goes on).
func resolve(p string) (string, error) {
	pending := splitPath(p)
	resolved := "/"
	links := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, c)
		fi, err := os.Lstat(next)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				// Missing (or below a non-directory): take it as a plain name and
				// keep walking; a later ".." can climb back into existing
				// directories, whose symlinks must still be followed.
				resolved = next
				continue
			}
			return "", fmt.Errorf("resolve %q: %w", p, err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			resolved = next
			continue
		}
		links++
		if links > maxLinks {
			return "", fmt.Errorf("%w: too many levels of symbolic links", ErrInvalid)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", fmt.Errorf("resolve %q: %w", p, err)
		}
		if filepath.IsAbs(target) {
			resolved = "/"
		}
		pending = append(splitPath(target), pending...)
	}
	return resolved, nil
}

func splitPath(p string) []string { return strings.Split(p, "/") }
