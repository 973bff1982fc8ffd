package workspace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layout builds a workspace with links that stay inside and links that escape.
func layout(t testing.TB) (*Root, string) {
	t.Helper()
	base := t.TempDir()
	ws := filepath.Join(base, "ws")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{ws, outside, filepath.Join(ws, "sub", "deep")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		filepath.Join(ws, "a.txt"):       "a",
		filepath.Join(outside, "secret"): "s",
	} {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		filepath.Join(ws, "in-rel"):    "sub",
		filepath.Join(ws, "in-abs"):    filepath.Join(ws, "sub"),
		filepath.Join(ws, "out-abs"):   outside,
		filepath.Join(ws, "out-rel"):   "../outside",
		filepath.Join(ws, "etc"):       "/etc",
		filepath.Join(ws, "dangling"):  filepath.Join(outside, "nope"),
		filepath.Join(ws, "loop1"):     "loop2",
		filepath.Join(ws, "loop2"):     "loop1",
		filepath.Join(ws, "sub", "up"): "..",
	}
	for name, target := range links {
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
	}
	r, err := New(ws)
	if err != nil {
		t.Fatal(err)
	}
	return r, r.Dir()
}

func TestResolve(t *testing.T) {
	r, ws := layout(t)
	tests := []struct {
		name, in, want string
		err            error
	}{
		{"empty is root", "", ws, nil},
		{"dot", ".", ws, nil},
		{"relative file", "a.txt", ws + "/a.txt", nil},
		{"absolute inside", ws + "/a.txt", ws + "/a.txt", nil},
		{"missing tail", "new/dir/f.txt", ws + "/new/dir/f.txt", nil},
		{"dotdot inside", "sub/../a.txt", ws + "/a.txt", nil},
		{"relative link inside", "in-rel/deep", ws + "/sub/deep", nil},
		{"absolute link inside", "in-abs/x", ws + "/sub/x", nil},
		{"link to parent inside", "sub/up/a.txt", ws + "/a.txt", nil},
		{"traversal", "../../etc/passwd", "", ErrOutside},
		{"absolute outside", "/etc/passwd", "", ErrOutside},
		{"link to /etc", "etc/passwd", "", ErrOutside},
		{"link to /etc itself", "etc", "", ErrOutside},
		{"abs link outside", "out-abs/secret", "", ErrOutside},
		{"rel link outside", "out-rel/secret", "", ErrOutside},
		{"dangling link outside", "dangling", "", ErrOutside},
		{"link then dotdot escapes", "in-rel/../../x", "", ErrOutside},
		{"missing then dotdot escapes", "nope/../../x", "", ErrOutside},
		{"missing then dotdot into an escaping link", "nope/../etc/passwd", "", ErrOutside},
		{"missing then dotdot inside", "nope/deeper/../../a.txt", ws + "/a.txt", nil},
		{"nul", "a\x00b", "", ErrInvalid},
		{"loop", "loop1/x", "", ErrInvalid},
		{"root parent", "..", "", ErrOutside},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Resolve(%q) = %q, %v; want error %v", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestResolveParent(t *testing.T) {
	r, ws := layout(t)
	tests := []struct {
		name, in, want string
		err            error
	}{
		{"link itself not followed", "etc", ws + "/etc", nil},
		{"dangling link itself", "dangling", ws + "/dangling", nil},
		{"file", "sub/deep", ws + "/sub/deep", nil},
		{"through inside link", "in-rel/deep", ws + "/sub/deep", nil},
		{"through escaping link", "etc/passwd", "", ErrOutside},
		{"root", ".", ws, nil},
		{"trailing slash", "sub/", ws + "/sub", nil},
		{"outside", "/tmp/x", "", ErrOutside},
		{"dotdot last", "sub/..", ws, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.ResolveParent(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ResolveParent(%q) = %q, %v; want error %v", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ResolveParent(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzResolve: whatever the input, a successful resolution names a path under
// the root, and if that path exists, the kernel's own resolution of it is under
// the root too.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"", "a.txt", "../../etc/passwd", "/etc/passwd", "etc/passwd",
		"in-rel/../../x", "sub/up/up/up", "dangling", "loop1", "out-rel/secret", "//a//b/./c/..", "\x00"} {
		f.Add(s)
	}
	r, ws := layout(f)
	f.Fuzz(func(t *testing.T, p string) {
		for _, fn := range []func(string) (string, error){r.Resolve, r.ResolveParent} {
			got, err := fn(p)
			if err != nil {
				if !errors.Is(err, ErrOutside) && !errors.Is(err, ErrInvalid) {
					// I/O errors (e.g. name too long) are fine but must not leak a path.
					if got != "" {
						t.Fatalf("error %v with path %q", err, got)
					}
				}
				continue
			}
			if got != ws && !strings.HasPrefix(got, ws+"/") {
				t.Fatalf("resolve(%q) = %q escapes %q", p, got, ws)
			}
			if filepath.Clean(got) != got {
				t.Fatalf("resolve(%q) = %q not clean", p, got)
			}
			if real, err := filepath.EvalSymlinks(got); err == nil {
				// ResolveParent keeps a final symlink; only the fully resolved form must stay inside.
				if fi, lerr := os.Lstat(got); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
					continue
				}
				if real != ws && !strings.HasPrefix(real, ws+"/") {
					t.Fatalf("resolve(%q) = %q really is %q outside", p, got, real)
				}
			}
		}
	})
}
