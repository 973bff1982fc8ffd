package files

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shipyard/shipyard/internal/ship/workspace"
)

func newService(t *testing.T, owner *Owner) (*Service, string) {
	t.Helper()
	dir := t.TempDir()
	root, err := workspace.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root.Dir(), "etc-link")); err != nil {
		t.Fatal(err)
	}
	return New(Config{Root: root, Owner: owner, MaxReadBytes: 1000, MaxListEntries: 50}), root.Dir()
}

func TestWriteReadEditDelete(t *testing.T) {
	s, ws := newService(t, nil)
	abs, size, err := s.Write("d/e/f.txt", "one\ntwo\nthree\n", false, "")
	if err != nil || abs != ws+"/d/e/f.txt" || size != 14 {
		t.Fatalf("write: %q %d %v", abs, size, err)
	}
	if _, size, err = s.Write("d/e/f.txt", "four\n", true, "utf-8"); err != nil || size != 19 {
		t.Fatalf("append: %d %v", size, err)
	}
	reads := []struct {
		offset, limit int
		want          string
	}{
		{0, 0, "one\ntwo\nthree\nfour\n"},
		{2, 0, "two\nthree\nfour\n"},
		{2, 2, "two\nthree\n"},
		{4, 10, "four\n"},
		{9, 1, ""},
	}
	for _, r := range reads {
		rr, err := s.Read("d/e/f.txt", "", r.offset, r.limit)
		if err != nil || rr.Content != r.want || rr.Size != 19 || rr.Path != abs {
			t.Errorf("read %d/%d: %+v %v", r.offset, r.limit, rr, err)
		}
	}
	if _, n, _, err := s.Edit("d/e/f.txt", "o", "0", true, ""); err != nil || n != 3 {
		t.Fatalf("edit all: %d %v", n, err)
	}
	for _, bad := range []struct{ old, new string }{{"x", "x"}, {"zzz", "y"}, {"0", "o"}} {
		if _, _, _, err := s.Edit("d/e/f.txt", bad.old, bad.new, false, ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("edit %q: %v", bad.old, err)
		}
	}
	if _, wasDir, err := s.Delete("d"); err != nil || !wasDir {
		t.Fatalf("delete dir: %v", err)
	}
	if _, err := os.Stat(ws + "/d"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("dir still there")
	}
}

func TestErrors(t *testing.T) {
	s, _ := newService(t, nil)
	if _, _, err := s.Write("dir/file", "x", false, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Write("big", strings.Repeat("x", 2000), false, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Write("bin", "\xff\xfe", false, "latin-1"); err == nil {
		t.Fatal("latin-1 write of non-latin runes should fail")
	}
	if err := os.WriteFile(filepath.Join(s.Root(), "bin"), []byte{0xff, 0xfe}, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func() error
		kind error
	}{
		{"read missing", func() error { _, err := s.Read("nope", "", 0, 0); return err }, ErrNotFound},
		{"read below a file", func() error { _, err := s.Read("dir/file/x", "", 0, 0); return err }, ErrNotFound},
		{"read dir", func() error { _, err := s.Read("dir", "", 0, 0); return err }, ErrNotFile},
		{"read too big", func() error { _, err := s.Read("big", "", 0, 0); return err }, ErrTooLarge},
		{"read binary as utf-8", func() error { _, err := s.Read("bin", "", 0, 0); return err }, ErrInvalid},
		{"bad encoding", func() error { _, err := s.Read("dir/file", "klingon", 0, 0); return err }, ErrInvalid},
		{"read traversal", func() error { _, err := s.Read("../../etc/passwd", "", 0, 0); return err }, workspace.ErrOutside},
		{"read absolute outside", func() error { _, err := s.Read("/etc/passwd", "", 0, 0); return err }, workspace.ErrOutside},
		{"read via link", func() error { _, err := s.Read("etc-link/passwd", "", 0, 0); return err }, workspace.ErrOutside},
		{"write via link", func() error { _, _, err := s.Write("etc-link/x", "", false, ""); return err }, workspace.ErrOutside},
		{"write dir", func() error { _, _, err := s.Write("dir", "", false, ""); return err }, ErrNotFile},
		{"write below file", func() error { _, _, err := s.Write("dir/file/x", "", false, ""); return err }, ErrNotDir},
		{"delete missing", func() error { _, _, err := s.Delete("nope"); return err }, ErrNotFound},
		{"delete root", func() error { _, _, err := s.Delete("."); return err }, ErrInvalid},
		{"delete outside", func() error { _, _, err := s.Delete("etc-link/passwd"); return err }, workspace.ErrOutside},
		{"list missing", func() error { _, _, _, err := s.List("nope", false); return err }, ErrNotFound},
		{"list file", func() error { _, _, _, err := s.List("dir/file", false); return err }, ErrNotDir},
		{"list via link", func() error { _, _, _, err := s.List("etc-link", false); return err }, workspace.ErrOutside},
		{"open missing", func() error { _, _, err := s.Open("nope"); return err }, ErrNotFound},
		{"open dir", func() error { _, _, err := s.Open("dir"); return err }, ErrNotFile},
		{"upload onto dir", func() error { _, _, err := s.Upload("dir", strings.NewReader("x")); return err }, ErrNotFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, tt.kind) {
				t.Fatalf("got %v, want %v", err, tt.kind)
			}
		})
	}
}

func TestDeleteSymlinkKeepsTarget(t *testing.T) {
	s, ws := newService(t, nil)
	if _, _, err := s.Delete("etc-link"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(ws + "/etc-link"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("link not removed")
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatal("target damaged")
	}
}

func TestList(t *testing.T) {
	s, ws := newService(t, nil)
	for _, p := range []string{"b.txt", "A.txt", ".hidden", "zdir/x", "Adir/y"} {
		if _, _, err := s.Write(p, "12", false, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("missing", ws+"/dangling"); err != nil {
		t.Fatal(err)
	}
	entries, abs, truncated, err := s.List("", false)
	if err != nil || abs != ws || truncated {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
		if e.IsDir != (e.Size == nil) || e.Path != ws+"/"+e.Name || e.ModifiedTime < 1e9 {
			t.Errorf("entry %+v", e)
		}
	}
	// etc-link is a directory (followed), so it sorts with the directories.
	if got := strings.Join(names, ","); got != "Adir,etc-link,zdir,A.txt,b.txt" {
		t.Fatalf("order %s", got)
	}
	entries, _, _, _ = s.List(".", true)
	if len(entries) != 6 {
		t.Fatalf("hidden: %d", len(entries))
	}
}

func TestOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	s, ws := newService(t, &Owner{UID: 1000, GID: 1000})
	if _, _, err := s.Write("new/dir/f", "x", false, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Upload("up/u.bin", strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	staged, _, err := s.Stage(strings.NewReader("staged"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(staged, "st/s.bin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create("c/c.sh", "#!/bin/sh", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"new", "new/dir", "new/dir/f", "up", "up/u.bin", "st/s.bin", "c/c.sh"} {
		fi, err := os.Lstat(filepath.Join(ws, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("%s owned by %d:%d", p, st.Uid, st.Gid)
		}
	}
	if fi, _ := os.Stat(ws + "/c/c.sh"); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	if _, err := os.Stat(staged); !errors.Is(err, os.ErrNotExist) {
		t.Error("staged file left behind")
	}
	left, _ := filepath.Glob(ws + "/**/.ship-upload-*")
	if len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestEditResultBounded: replacing a short string everywhere by a long one
// must not build a result beyond the read limit in memory.
func TestEditResultBounded(t *testing.T) {
	s, _ := newService(t, nil) // read limit 1000 bytes
	if _, _, err := s.Write("f.txt", strings.Repeat("a", 500), false, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		old, new   string
		replaceAll bool
		wantErr    error
	}{
		{"grows past the limit", "a", "bbb", true, ErrTooLarge},
		{"one replacement past the limit", strings.Repeat("a", 500), strings.Repeat("b", 1100), false, ErrTooLarge},
		{"grows within the limit", "a", "bb", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, size, err := s.Edit("f.txt", tt.old, tt.new, tt.replaceAll, "")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err == nil && size > 1000 {
				t.Errorf("size %d", size)
			}
		})
	}
}
