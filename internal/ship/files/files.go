// Package files implements Ship's file operations (/fs/*) on the workspace:
// every path goes through workspace.Root, files written end up owned by the
// sandbox user, uploads and downloads stream.
package files

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/ship/workspace"
)

// Kinds of failure; errors returned by Service wrap one of them (and
// workspace.ErrOutside / workspace.ErrInvalid for path problems).
var (
	ErrNotFound = errors.New("not found")
	ErrNotFile  = errors.New("not a file")
	ErrNotDir   = errors.New("not a directory")
	ErrInvalid  = errors.New("invalid request")
	ErrTooLarge = errors.New("too large")
)

// Error carries the message meant for the client next to its kind.
type Error struct {
	Kind   error
	Detail string
	Cause  error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Detail + ": " + e.Cause.Error()
	}
	return e.Detail
}

// Unwrap exposes the kind and the cause to errors.Is/As.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Cause} }

func fail(kind error, format string, a ...any) error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, a...)}
}

// Owner is the uid/gid given to what the service creates. Nil Owner: leave
// ownership to the process (Ship already runs as the sandbox user).
type Owner struct{ UID, GID int }

// Config of a Service.
type Config struct {
	Root  *workspace.Root
	Owner *Owner
	// MaxReadBytes caps read_file of a whole file (default 32 MiB): bigger files
	// are for /fs/download. MaxListEntries caps list_dir (default 10000).
	MaxReadBytes   int64
	MaxListEntries int
}

// Service performs file operations under a workspace root.
type Service struct{ cfg Config }

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.MaxReadBytes <= 0 {
		cfg.MaxReadBytes = 32 << 20
	}
	if cfg.MaxListEntries <= 0 {
		cfg.MaxListEntries = 10000
	}
	return &Service{cfg: cfg}
}

// Root is the workspace root directory.
func (s *Service) Root() string { return s.cfg.Root.Dir() }

func (s *Service) chown(path string) error {
	if s.cfg.Owner == nil {
		return nil
	}
	if err := os.Lchown(path, s.cfg.Owner.UID, s.cfg.Owner.GID); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// mkdirAll creates dir and missing parents, giving each created one to Owner.
func (s *Service) mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fail(ErrNotDir, "Parent is not a directory: %s", dir)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := s.mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		if errors.Is(err, syscall.ENOTDIR) {
			return fail(ErrNotDir, "Parent is not a directory: %s", dir)
		}
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	return s.chown(dir)
}

// Encoding support: utf-8 (default), latin-1, ascii.
func decode(b []byte, enc, path string) (string, error) {
	switch normEncoding(enc) {
	case "utf-8":
		if !utf8.Valid(b) {
			return "", fail(ErrInvalid, "File is not valid utf-8 text: %s (use /fs/download for binary files)", path)
		}
		return string(b), nil
	case "ascii":
		for _, c := range b {
			if c >= 0x80 {
				return "", fail(ErrInvalid, "File is not valid ascii text: %s", path)
			}
		}
		return string(b), nil
	case "latin-1":
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r), nil
	}
	return "", fail(ErrInvalid, "Unsupported encoding: %s", enc)
}

func encode(s, enc string) ([]byte, error) {
	switch normEncoding(enc) {
	case "utf-8":
		return []byte(s), nil
	case "ascii", "latin-1":
		limit := rune(0xff)
		if normEncoding(enc) == "ascii" {
			limit = 0x7f
		}
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > limit {
				return nil, fail(ErrInvalid, "Content cannot be encoded as %s", enc)
			}
			b = append(b, byte(r))
		}
		return b, nil
	}
	return nil, fail(ErrInvalid, "Unsupported encoding: %s", enc)
}

func normEncoding(enc string) string {
	switch strings.ToLower(strings.ReplaceAll(enc, "_", "-")) {
	case "", "utf-8", "utf8":
		return "utf-8"
	case "ascii", "us-ascii":
		return "ascii"
	case "latin-1", "latin1", "iso-8859-1", "iso8859-1":
		return "latin-1"
	}
	return enc
}

func (s *Service) resolve(p string) (string, error) {
	abs, err := s.cfg.Root.Resolve(p)
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", p, err)
	}
	return abs, nil
}

// writeFile writes data to abs (creating parents), truncating or appending.
func (s *Service) writeFile(abs string, data []byte, appendMode bool, perm os.FileMode) (int64, error) {
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return 0, fail(ErrNotFile, "Path is a directory: %s", abs)
	}
	if err := s.mkdirAll(filepath.Dir(abs)); err != nil {
		return 0, err
	}
	flags := os.O_WRONLY | os.O_CREATE | syscall.O_NOFOLLOW
	if appendMode {
		flags |= os.O_APPEND
	} else {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(abs, flags, perm)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", abs, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return 0, fmt.Errorf("write %s: %w", abs, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("stat %s: %w", abs, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w", abs, err)
	}
	return fi.Size(), s.chown(abs)
}

// Create writes content to path (replacing it) and sets its mode.
func (s *Service) Create(path, content string, mode os.FileMode) (string, error) {
	abs, err := s.resolve(path)
	if err != nil {
		return "", err
	}
	if _, err := s.writeFile(abs, []byte(content), false, mode.Perm()); err != nil {
		return "", err
	}
	if err := os.Chmod(abs, mode.Perm()); err != nil {
		return "", fmt.Errorf("chmod %s: %w", abs, err)
	}
	return abs, nil
}

// Write writes (or appends) content encoded as enc.
func (s *Service) Write(path, content string, appendMode bool, enc string) (string, int64, error) {
	abs, err := s.resolve(path)
	if err != nil {
		return "", 0, err
	}
	data, err := encode(content, enc)
	if err != nil {
		return "", 0, err
	}
	size, err := s.writeFile(abs, data, appendMode, 0o644)
	return abs, size, err
}

func (s *Service) statFile(abs, path string) (os.FileInfo, error) {
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fail(ErrNotFound, "File not found: %s", path)
		}
		return nil, fmt.Errorf("stat %s: %w", abs, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fail(ErrNotFile, "Path is not a file: %s", path)
	}
	return fi, nil
}

// ReadResult is a read_file answer.
type ReadResult struct {
	Content string
	Path    string
	Size    int64
}

// Read reads a text file; offset (1-based line) and limit (lines) select a
// window of lines when given (0 = from the start / to the end).
func (s *Service) Read(path, enc string, offset, limit int) (ReadResult, error) {
	abs, err := s.resolve(path)
	if err != nil {
		return ReadResult{}, err
	}
	fi, err := s.statFile(abs, path)
	if err != nil {
		return ReadResult{}, err
	}
	f, err := os.Open(abs)
	if err != nil {
		return ReadResult{}, fmt.Errorf("open %s: %w", abs, err)
	}
	defer f.Close()
	var data []byte
	if offset <= 1 && limit <= 0 {
		if fi.Size() > s.cfg.MaxReadBytes {
			return ReadResult{}, fail(ErrTooLarge, "File too large to read (%d bytes, limit %d); use /fs/download", fi.Size(), s.cfg.MaxReadBytes)
		}
		data, err = io.ReadAll(io.LimitReader(f, s.cfg.MaxReadBytes+1))
		if err != nil {
			return ReadResult{}, fmt.Errorf("read %s: %w", abs, err)
		}
		if int64(len(data)) > s.cfg.MaxReadBytes {
			return ReadResult{}, fail(ErrTooLarge, "File too large to read (limit %d bytes); use /fs/download", s.cfg.MaxReadBytes)
		}
	} else {
		data, err = s.readLines(f, offset, limit)
		if err != nil {
			return ReadResult{}, err
		}
	}
	content, err := decode(data, enc, path)
	if err != nil {
		return ReadResult{}, err
	}
	return ReadResult{Content: content, Path: abs, Size: fi.Size()}, nil
}

func (s *Service) readLines(r io.Reader, offset, limit int) ([]byte, error) {
	if offset < 1 {
		offset = 1
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var out []byte
	for line := 1; limit <= 0 || line < offset+limit; line++ {
		b, err := br.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) { // long line: keep reading it
			if line >= offset {
				out = append(out, b...)
			}
			b, err = br.ReadSlice('\n')
		}
		if line >= offset {
			out = append(out, b...)
			if int64(len(out)) > s.cfg.MaxReadBytes {
				return nil, fail(ErrTooLarge, "Selected lines exceed the read limit (%d bytes); use /fs/download", s.cfg.MaxReadBytes)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
	}
	return out, nil
}

// Edit replaces old with new in a text file.
func (s *Service) Edit(path, old, new string, replaceAll bool, enc string) (abs string, replacements int, size int64, err error) {
	if old == new {
		return "", 0, 0, fail(ErrInvalid, "old_string and new_string must be different")
	}
	if old == "" {
		return "", 0, 0, fail(ErrInvalid, "old_string must not be empty")
	}
	rr, err := s.Read(path, enc, 0, 0)
	if err != nil {
		return "", 0, 0, err
	}
	n := strings.Count(rr.Content, old)
	switch {
	case n == 0:
		return "", 0, 0, fail(ErrInvalid, "old_string not found in file: %s", path)
	case n > 1 && !replaceAll:
		return "", 0, 0, fail(ErrInvalid, "old_string found %d times in %s; make it unique or set replace_all", n, path)
	}
	if !replaceAll {
		n = 1
	}
	// The result is built in memory: bound it before building it (a short
	// old_string replaced everywhere by a long new_string multiplies).
	if grown := int64(len(rr.Content)) + int64(n)*(int64(len(new))-int64(len(old))); grown > s.cfg.MaxReadBytes {
		return "", 0, 0, fail(ErrTooLarge, "The edited file would be %d bytes, over the limit of %d bytes", grown, s.cfg.MaxReadBytes)
	}
	var content string
	if replaceAll {
		content = strings.ReplaceAll(rr.Content, old, new)
	} else {
		content = strings.Replace(rr.Content, old, new, 1)
	}
	data, err := encode(content, enc)
	if err != nil {
		return "", 0, 0, err
	}
	size, err = s.writeFile(rr.Path, data, false, 0o644)
	return rr.Path, n, size, err
}

// Delete removes a file, a symlink (not its target) or a directory tree.
func (s *Service) Delete(path string) (abs string, wasDir bool, err error) {
	abs, err = s.cfg.Root.ResolveParent(path)
	if err != nil {
		return "", false, fmt.Errorf("resolve %q: %w", path, err)
	}
	if abs == s.cfg.Root.Dir() {
		return "", false, fail(ErrInvalid, "Cannot delete the workspace root")
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return "", false, fail(ErrNotFound, "Path not found: %s", path)
		}
		return "", false, fmt.Errorf("stat %s: %w", abs, err)
	}
	if fi.IsDir() {
		err = os.RemoveAll(abs)
	} else {
		err = os.Remove(abs)
	}
	if err != nil {
		return "", false, fmt.Errorf("delete %s: %w", abs, err)
	}
	return abs, fi.IsDir(), nil
}

// Entry is one list_dir item (JSON shape of upstream).
type Entry struct {
	Name         string  `json:"name"`
	Path         string  `json:"path"`
	IsFile       bool    `json:"is_file"`
	IsDir        bool    `json:"is_dir"`
	Size         *int64  `json:"size"`
	ModifiedTime float64 `json:"modified_time"`
}

// List lists a directory: directories first, then by name ignoring case.
// Entries that cannot be stat'ed (dangling links) are skipped.
func (s *Service) List(path string, showHidden bool) (entries []Entry, abs string, truncated bool, err error) {
	if path == "" {
		path = "."
	}
	abs, err = s.resolve(path)
	if err != nil {
		return nil, "", false, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, "", false, fail(ErrNotFound, "Directory not found: %s", path)
		}
		return nil, "", false, fmt.Errorf("stat %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, "", false, fail(ErrNotDir, "Path is not a directory: %s", path)
	}
	d, err := os.Open(abs)
	if err != nil {
		return nil, "", false, fmt.Errorf("open %s: %w", abs, err)
	}
	defer d.Close()
	entries = []Entry{}
	for {
		names, rerr := d.Readdirnames(256)
		for _, name := range names {
			if !showHidden && strings.HasPrefix(name, ".") {
				continue
			}
			if len(entries) >= s.cfg.MaxListEntries {
				truncated = true
				break
			}
			p := filepath.Join(abs, name)
			st, err := os.Stat(p)
			if err != nil {
				continue
			}
			e := Entry{Name: name, Path: p, IsFile: st.Mode().IsRegular(), IsDir: st.IsDir(),
				ModifiedTime: float64(st.ModTime().UnixNano()) / 1e9}
			if !e.IsDir {
				size := st.Size()
				e.Size = &size
			}
			entries = append(entries, e)
		}
		if truncated || rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, "", false, fmt.Errorf("read dir %s: %w", abs, rerr)
		}
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].IsDir != entries[j].IsDir {
			return entries[i].IsDir
		}
		li, lj := strings.ToLower(entries[i].Name), strings.ToLower(entries[j].Name)
		if li != lj {
			return li < lj
		}
		return entries[i].Name < entries[j].Name
	})
	return entries, abs, truncated, nil
}

// Open opens a regular file for download.
func (s *Service) Open(path string) (*os.File, os.FileInfo, error) {
	abs, err := s.resolve(path)
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.statFile(abs, path); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", abs, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", abs, err)
	}
	return f, fi, nil
}

// Upload streams r into path: written to a temporary file beside the target,
// then renamed over it, so a failed upload leaves the old file intact.
func (s *Service) Upload(path string, r io.Reader) (string, int64, error) {
	abs, err := s.resolve(path)
	if err != nil {
		return "", 0, err
	}
	if abs == s.cfg.Root.Dir() {
		return "", 0, fail(ErrNotFile, "Path is a directory: %s", path)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return "", 0, fail(ErrNotFile, "Path is a directory: %s", path)
	}
	dir := filepath.Dir(abs)
	if err := s.mkdirAll(dir); err != nil {
		return "", 0, err
	}
	tmp, err := os.CreateTemp(dir, ".ship-upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("create temp in %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, r)
	if err != nil {
		return "", 0, fmt.Errorf("write upload: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", 0, fmt.Errorf("chmod upload: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("close upload: %w", err)
	}
	if err := s.chown(tmp.Name()); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp.Name(), abs); err != nil {
		return "", 0, fmt.Errorf("rename upload: %w", err)
	}
	ok = true
	return abs, n, nil
}

// Stage streams r into a hidden temporary file in the workspace root, for an
// upload whose destination is not known yet; Commit moves it into place.
func (s *Service) Stage(r io.Reader) (string, int64, error) {
	tmp, err := os.CreateTemp(s.cfg.Root.Dir(), ".ship-upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("create staging file: %w", err)
	}
	n, err := io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", 0, fmt.Errorf("write upload: %w", err)
	}
	return tmp.Name(), n, nil
}

// Commit moves a staged upload to path (the staged file is removed on failure).
func (s *Service) Commit(staged, path string) (string, error) {
	f, err := os.Open(staged)
	if err != nil {
		return "", fmt.Errorf("open staged upload: %w", err)
	}
	defer os.Remove(staged)
	defer f.Close()
	abs, _, err := s.Upload(path, f) // same filesystem in the common case is a copy; fine for the rare order
	return abs, err
}
