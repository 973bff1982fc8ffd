package browser

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
)

func TestGlobRegexp(t *testing.T) {
	tests := []struct {
		glob, url string
		want      bool
	}{
		{"**/api/*", "http://web:8000/api/data", true},
		{"**/api/*", "http://web:8000/api/v1/data", false},
		{"**/api/**", "http://web:8000/api/v1/data", true},
		{"http://web:8000/a?c", "http://web:8000/abc", true},
		{"/api/data", "http://web:8000/api/data?x=1", true}, // no wildcard: substring
		{"/api/data", "http://web:8000/other", false},
		{"**/x.png", "http://h/x.png", true},
		{"**/x.png", "http://h/xxpng", false}, // the dot is literal
	}
	for _, tt := range tests {
		re, err := globRegexp(tt.glob)
		if err != nil {
			t.Fatal(err)
		}
		if got := re.MatchString(tt.url); got != tt.want {
			t.Errorf("%q ~ %q = %v, want %v", tt.glob, tt.url, got, tt.want)
		}
	}
}

func TestNormalizeURL(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"http://web:8000/", "http://web:8000/", ""},
		{"HTTPS://example.test", "HTTPS://example.test", ""},
		{"web:8000/login", "http://web:8000/login", ""},
		{"localhost/x", "http://localhost/x", ""},
		{"ship", "http://ship", ""},
		{"example.test/a", "https://example.test/a", ""},
		{"about:blank", "about:blank", ""},
		{"file:///etc/passwd", "", "file:// URLs are not opened"},
		{"ftp://x/", "", "unsupported URL scheme"},
		{"javascript://alert(1)", "", "unsupported URL scheme"},
	}
	for _, tt := range tests {
		got, err := normalizeURL(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestWorkspaceFiles(t *testing.T) {
	ws := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(ws, "escape")); err != nil {
		t.Fatal(err)
	}
	abs, err := writeWorkspaceFile(ws, "shots/a.png", []byte("x"))
	if err != nil || abs != filepath.Join(ws, "shots/a.png") {
		t.Fatalf("relative path: %q %v", abs, err)
	}
	if _, err := writeWorkspaceFile(ws, filepath.Join(ws, "b.png"), []byte("x")); err != nil {
		t.Errorf("absolute path in the workspace: %v", err)
	}
	for _, p := range []string{"../x", "/etc/x", ws + "/../x", "escape/x.png", "escape/../../x", ""} {
		if _, err := writeWorkspaceFile(ws, p, []byte("x")); err == nil {
			t.Errorf("write %q succeeded", p)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("a write escaped the workspace: %v", ents)
	}
	if _, err := readWorkspaceFile(ws, "escape/../../etc/passwd", 1<<20); err == nil {
		t.Error("read outside the workspace succeeded")
	}
	if _, err := existingPath(ws, "escape/"); err == nil {
		t.Error("existingPath through a symlink out of the workspace succeeded")
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := existingPath(ws, "escape/secret"); err == nil {
		t.Error("upload of a file outside the workspace through a symlink was allowed")
	}
	if p, err := existingPath(ws, "shots/a.png"); err != nil || p != filepath.Join(ws, "shots/a.png") {
		t.Errorf("existingPath: %q %v", p, err)
	}
	if _, err := readWorkspaceFile(ws, "shots/a.png", 0); err == nil {
		t.Error("the size limit was not enforced")
	}
}

func TestIsRef(t *testing.T) {
	for s, want := range map[string]bool{"@e1": true, "e12": true, "@e": false, "@x1": false, "#e1": false, "@e1a": false, "button": false} {
		if isRef(s) != want {
			t.Errorf("isRef(%q) = %v", s, !want)
		}
	}
}

// TestRender checks the snapshot text, ref numbering and -i filtering on a
// synthetic tree (the container tests check it against Chromium's).
func TestRender(t *testing.T) {
	tree := &axNode{role: "RootWebArea", children: []*axNode{
		{role: "heading", name: "Sign in", backend: 1, props: map[string]any{"level": 1.0}, children: []*axNode{{role: "text", name: "Sign in"}}},
		{role: "textbox", name: "Email", backend: 2, value: "a@b", props: map[string]any{"required": true}},
		{role: "checkbox", name: "Remember", backend: 3, props: map[string]any{"checked": "true"}},
		{role: "paragraph", backend: 4, children: []*axNode{{role: "text", name: "Hello   world"}}},
		{role: "button", name: "Log In", backend: 5, props: map[string]any{"disabled": true}},
	}}
	var refs refTable
	refs.reset("tab", "loader")
	full, _ := render(tree, snapshotOpts{}, nil, &refs)
	for _, want := range []string{`- @e1 [heading] "Sign in" (level=1)`, `- @e2 [textbox] "Email" (value="a@b", required)`,
		`- @e3 [checkbox] "Remember" (checked=true)`, `  - "Hello world"`, `- @e5 [button] "Log In" (disabled)`} {
		if !strings.Contains(full, want) {
			t.Errorf("full snapshot lacks %q:\n%s", want, full)
		}
	}
	if strings.Contains(full, `  - "Sign in"`) {
		t.Errorf("text equal to its parent's name is repeated:\n%s", full)
	}
	inter, items := render(tree, snapshotOpts{interactive: true}, nil, &refs)
	if strings.Contains(inter, "heading") || strings.Contains(inter, "Hello") || len(items) != 3 {
		t.Errorf("-i shows non-interactive elements:\n%s", inter)
	}
	// The same elements keep their refs in a later snapshot of the document.
	if !strings.Contains(inter, `- @e2 [textbox] "Email"`) || !strings.Contains(inter, `- @e5 [button] "Log In"`) {
		t.Errorf("refs changed between snapshots:\n%s", inter)
	}
	scoped, _ := render(tree, snapshotOpts{scope: cdp.BackendNodeID(4)}, nil, &refs)
	if !strings.Contains(scoped, "Hello world") || strings.Contains(scoped, "Email") {
		t.Errorf("scoped snapshot:\n%s", scoped)
	}
	clickable, _ := render(&axNode{role: "RootWebArea", children: []*axNode{{role: "generic", name: "Card", backend: 9}}},
		snapshotOpts{interactive: true}, map[cdp.BackendNodeID]bool{9: true}, &refs)
	if !strings.Contains(clickable, `[clickable] "Card"`) {
		t.Errorf("-C element missing:\n%s", clickable)
	}
}

func TestClip(t *testing.T) {
	if got := clip("a  b\n c", 100); got != "a b c" {
		t.Errorf("clip spaces: %q", got)
	}
	if got := clip(strings.Repeat("é", 10), 5); got != "éé…" {
		t.Errorf("clip cuts inside a rune: %q", got)
	}
}

// TestExecUsageErrors: a line that does not parse never starts the browser
// (the binary here does not exist) and answers exit 2, as JSON with --json.
func TestExecUsageErrors(t *testing.T) {
	m := New(Config{ExecPath: "/nonexistent/chromium", Workspace: t.TempDir()})
	r := m.Exec(t.Context(), `open "http://x`, "sbx", time.Second)
	if r.ExitCode != 2 || !strings.HasPrefix(r.Stderr, "Error: cannot split") {
		t.Errorf("unterminated quote: %+v", r)
	}
	r = m.Exec(t.Context(), `--json frobnicate`, "sbx", time.Second)
	var v struct {
		Success bool   `json:"success"`
		Error   string `json:"error"`
	}
	if r.ExitCode != 2 || json.Unmarshal([]byte(r.Stdout), &v) != nil || v.Success || !strings.Contains(v.Error, "unknown command") {
		t.Errorf("--json usage error: %+v", r)
	}
	if st := m.Status(); st.Active || st.Ready {
		t.Errorf("status with no browser binary: %+v", st)
	}
	// A real command with no browser binary fails with a clear error.
	r = m.Exec(t.Context(), "open http://127.0.0.1:1/", "sbx", 5*time.Second)
	if r.ExitCode != 1 || !strings.Contains(r.Stderr, "the browser could not start") {
		t.Errorf("no browser: %+v", r)
	}
}
