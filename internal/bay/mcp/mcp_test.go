package mcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// png1x1 is a valid 1×1 PNG.
var png1x1, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

// fakeBay answers the /v1 routes the tools use, recording requests.
type fakeBay struct {
	mu    sync.Mutex
	seen  []string // "METHOD path?query"
	auth  []string // Authorization of each request
	files map[string][]byte
}

func (f *fakeBay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, r.Method+" "+r.URL.RequestURI())
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer good" {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"code":"unauthorized","message":"Invalid API key","request_id":"r1"}}`)
		return
	}
	js := func(v any) { w.Header().Set("Content-Type", "application/json"); json.NewEncoder(w).Encode(v) }
	id := r.PathValue("id")
	switch r.Method + " " + r.URL.Path {
	case "POST /v1/sandboxes":
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		w.WriteHeader(201)
		js(map[string]any{"id": "sandbox-aaaaaaaaaaaa", "status": "idle", "profile": body["profile"], "capabilities": []string{"python", "shell", "filesystem"}})
	case "GET /v1/sandboxes/sandbox-aaaaaaaaaaaa":
		js(map[string]any{"id": "sandbox-aaaaaaaaaaaa", "status": "ready", "profile": "python-default", "capabilities": []string{"python", "shell", "filesystem"}})
	case "POST /v1/sandboxes/sandbox-aaaaaaaaaaaa/python/exec":
		var body struct{ Code string }
		json.NewDecoder(r.Body).Decode(&body)
		switch body.Code {
		case "fail":
			js(map[string]any{"success": false, "output": "", "error": "\x1b[31mNameError\x1b[0m: x", "execution_id": "exec-1"})
		case "long":
			js(map[string]any{"success": true, "output": strings.Repeat("é", 50), "execution_id": "exec-2"})
		default:
			js(map[string]any{"success": true, "output": "2", "execution_id": "exec-3", "execution_time_ms": 7,
				"data": map[string]any{"output": map[string]any{"text": "2", "images": []map[string]string{{"image/png": base64.StdEncoding.EncodeToString(png1x1)}}}}})
		}
	case "POST /v1/sandboxes/sandbox-aaaaaaaaaaaa/shell/exec":
		js(map[string]any{"success": false, "output": "out", "error": "boom", "exit_code": 3, "execution_id": "exec-4", "execution_time_ms": 5})
	case "POST /v1/sandboxes/sandbox-aaaaaaaaaaaa/filesystem/upload":
		file, _, err := r.FormFile("file")
		if err != nil {
			w.WriteHeader(422)
			return
		}
		b, _ := io.ReadAll(file)
		f.mu.Lock()
		f.files[r.FormValue("path")] = b
		f.mu.Unlock()
		js(map[string]any{"status": "ok", "path": r.FormValue("path"), "size": len(b)})
	case "GET /v1/sandboxes/sandbox-aaaaaaaaaaaa/filesystem/download":
		f.mu.Lock()
		b, ok := f.files[r.URL.Query().Get("path")]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(404)
			js(map[string]any{"error": map[string]any{"code": "file_not_found", "message": "File not found: x"}})
			return
		}
		w.Write(b)
	case "GET /v1/sandboxes/sandbox-aaaaaaaaaaaa/history":
		js(map[string]any{"total": 1, "entries": []map[string]any{{"id": "exec-3", "exec_type": "python", "success": true, "execution_time_ms": 7, "tags": "a,b"}}})
	case "GET /v1/profiles":
		js(map[string]any{"items": []map[string]any{{"id": "python-default", "capabilities": []string{"python"}, "idle_timeout": 1800,
			"containers": []map[string]any{{"name": "ship", "runtime_type": "ship", "capabilities": []string{"python"}}}}}})
	default:
		_ = id
		w.WriteHeader(404)
		io.WriteString(w, `{"detail":"Not Found"}`)
	}
}

// session connects an SDK client to a server over in-memory transports.
func session(t *testing.T, bay *shipyard.Client, opts Options) *sdk.ClientSession {
	t.Helper()
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := NewServer(bay, opts)
	st, ct := sdk.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Wait() })
	return cs
}

func newFake(t *testing.T, token string) (*fakeBay, *shipyard.Client) {
	f := &fakeBay{files: map[string][]byte{}}
	hs := httptest.NewServer(f)
	t.Cleanup(hs.Close)
	c, err := shipyard.New(hs.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func call(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) *sdk.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error: %v", name, err)
	}
	return res
}

func textOf(r *sdk.CallToolResult) string {
	var parts []string
	for _, c := range r.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func TestToolList(t *testing.T) {
	_, bay := newFake(t, "good")
	cs := session(t, bay, DefaultOptions())
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if tool.Description == "" {
			t.Errorf("%s: no description", tool.Name)
		}
		b, _ := json.Marshal(tool.InputSchema)
		if strings.Contains(string(b), `"null"`) {
			t.Errorf("%s: schema has null types: %s", tool.Name, b)
		}
	}
	want := ToolNames()
	slices.Sort(names)
	slices.Sort(want)
	if len(want) != 27 || !slices.Equal(names, want) {
		t.Fatalf("tools = %v (%d), want the 27 %v", names, len(names), want)
	}
	for _, tool := range res.Tools {
		if tool.Name != "execute_python" {
			continue
		}
		b, _ := json.Marshal(tool.InputSchema)
		for _, s := range []string{`"required":["sandbox_id","code"]`, `"maximum":300`, `"default":30`, `"minLength":1`} {
			if !strings.Contains(string(b), s) {
				t.Errorf("execute_python schema lacks %s: %s", s, b)
			}
		}
	}
}

func TestTools(t *testing.T) {
	fake, bay := newFake(t, "good")
	opts := DefaultOptions()
	opts.MaxToolTextChars = 20
	cs := session(t, bay, opts)
	sb := "sandbox-aaaaaaaaaaaa"
	tests := []struct {
		name    string
		tool    string
		args    map[string]any
		isError bool
		want    []string
	}{
		{"create", "create_sandbox", map[string]any{"ttl": 0}, false,
			[]string{"Sandbox created successfully.", "**Sandbox ID:** `sandbox-aaaaaaaaaaaa`", "**Profile:** python-default", "**TTL:** 0 seconds"}},
		{"python ok", "execute_python", map[string]any{"sandbox_id": sb, "code": "1+1"}, false,
			[]string{"**Execution successful**\n\n```\n2\n```\n\nexecution_id: exec-3\nexecution_time_ms: 7"}},
		{"python fail strips ansi", "execute_python", map[string]any{"sandbox_id": sb, "code": "fail"}, false,
			[]string{"**Execution failed**\n\n```\nNameError: x\n```\n\nexecution_id: exec-1"}},
		{"python truncated", "execute_python", map[string]any{"sandbox_id": sb, "code": "long"}, false,
			[]string{strings.Repeat("é", 20) + "\n\n...[truncated 30 chars; original=50]"}},
		{"shell failed", "execute_shell", map[string]any{"sandbox_id": sb, "command": "x"}, false,
			[]string{"**Command failed** (exit code: 3)", "out\nboom"}},
		{"history", "get_execution_history", map[string]any{"sandbox_id": sb}, false,
			[]string{"Total: 1\n- exec-3 | \n\n...[truncated 39 chars; original=59]"}}, // whole text cut at 20
		{"profiles", "list_profiles", nil, false,
			[]string{"**Available Profiles** (1)", "- **python-default**: capabilities=[python], idle_timeout=1800s", "    └ ship (ship): [python]"}},
		{"missing arg", "execute_python", map[string]any{"sandbox_id": sb}, true, []string{"code"}},
		{"wrong type", "execute_python", map[string]any{"sandbox_id": sb, "code": 5}, true, nil},
		{"out of bounds", "execute_python", map[string]any{"sandbox_id": sb, "code": "1", "timeout": 301}, true, nil},
		{"blank code", "execute_python", map[string]any{"sandbox_id": sb, "code": "   "}, true, []string{"**Validation Error:** missing required field: code"}},
		{"bad id", "delete_sandbox", map[string]any{"sandbox_id": "a/b"}, true, []string{"invalid sandbox_id format"}},
		{"traversal", "read_file", map[string]any{"sandbox_id": sb, "path": "../etc/passwd"}, true, []string{"path traversal"}},
		{"bad exec_type", "get_last_execution", map[string]any{"sandbox_id": sb, "exec_type": "ruby"}, true, nil},
		{"api error", "read_file", map[string]any{"sandbox_id": "sandbox-bbbbbbbbbbbb", "path": "a"}, true, []string{"**API Error:** [http_404] Not Found"}},
		{"skills absent", "create_skill_payload", map[string]any{"payload": map[string]any{"a": 1}}, true, []string{"does not serve the skills API"}},
		{"payload not object", "create_skill_payload", map[string]any{"payload": 3}, true, nil},
		{"browser capability", "execute_browser", map[string]any{"sandbox_id": sb, "cmd": "open x"}, true,
			[]string{"profile python-default has no browser capability"}},
		{"upload base64", "upload_file", map[string]any{"sandbox_id": sb, "sandbox_path": "p.png", "content_base64": base64.StdEncoding.EncodeToString(png1x1)}, false,
			[]string{"**Sandbox:** `p.png`", fmtSize(len(png1x1))}},
		{"local files off", "upload_file", map[string]any{"sandbox_id": sb, "local_path": "/etc/passwd"}, true, []string{"local_path is not available"}},
		{"download inline", "download_file", map[string]any{"sandbox_id": sb, "sandbox_path": "p.png"}, false, []string{"File downloaded successfully."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, cs, tc.tool, tc.args)
			got := textOf(res)
			if res.IsError != tc.isError {
				t.Fatalf("IsError = %v, want %v: %s", res.IsError, tc.isError, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("text lacks %q:\n%s", w, got)
				}
			}
		})
	}
	// Images: python's PNG and the downloaded PNG come back as image content.
	for _, args := range []struct {
		tool string
		args map[string]any
	}{{"execute_python", map[string]any{"sandbox_id": sb, "code": "1+1"}}, {"download_file", map[string]any{"sandbox_id": sb, "sandbox_path": "p.png"}}} {
		res := call(t, cs, args.tool, args.args)
		if len(res.Content) != 2 {
			t.Fatalf("%s: content = %d parts, want text + image", args.tool, len(res.Content))
		}
		img, ok := res.Content[1].(*sdk.ImageContent)
		if !ok || img.MIMEType != "image/png" || string(img.Data) != string(png1x1) {
			t.Fatalf("%s: second part = %#v, want the PNG", args.tool, res.Content[1])
		}
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if !slices.Contains(fake.seen, "POST /v1/sandboxes") {
		t.Errorf("requests: %v", fake.seen)
	}
}

func fmtSize(n int) string { return fmt.Sprintf("**Size:** %d bytes", n) }

func TestLocalFiles(t *testing.T) {
	_, bay := newFake(t, "good")
	opts := DefaultOptions()
	opts.LocalFiles = true
	cs := session(t, bay, opts)
	dir := t.TempDir()
	src := filepath.Join(dir, "in.bin")
	if err := os.WriteFile(src, []byte("hello\x00world"), 0o600); err != nil {
		t.Fatal(err)
	}
	sb := "sandbox-aaaaaaaaaaaa"
	res := call(t, cs, "upload_file", map[string]any{"sandbox_id": sb, "local_path": src, "sandbox_path": "d/x.bin"})
	if res.IsError || !strings.Contains(textOf(res), "**Sandbox:** `d/x.bin`") {
		t.Fatalf("upload: %s", textOf(res))
	}
	dst := filepath.Join(dir, "sub", "out.bin")
	res = call(t, cs, "download_file", map[string]any{"sandbox_id": sb, "sandbox_path": "d/x.bin", "local_path": dst})
	if res.IsError {
		t.Fatalf("download: %s", textOf(res))
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "hello\x00world" {
		t.Fatalf("downloaded %q, %v", b, err)
	}
	res = call(t, cs, "upload_file", map[string]any{"sandbox_id": sb, "local_path": filepath.Join(dir, "missing")})
	if !res.IsError || !strings.Contains(textOf(res), "local file not found") {
		t.Fatalf("missing file: %s", textOf(res))
	}
	res = call(t, cs, "download_file", map[string]any{"sandbox_id": sb, "sandbox_path": "nope", "local_path": filepath.Join(dir, "n")})
	if !res.IsError || !strings.Contains(textOf(res), "[file_not_found]") {
		t.Fatalf("missing remote file: %s", textOf(res))
	}
}

// TestHTTPHandler: /mcp replays the caller's Authorization on the in-process
// /v1 calls (the fake Bay sees it), and the same server answers.
func TestHTTPHandler(t *testing.T) {
	fake := &fakeBay{files: map[string][]byte{}}
	opts := DefaultOptions()
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	hs := httptest.NewServer(NewHTTPHandler(fake, opts))
	defer hs.Close()
	for _, tc := range []struct {
		token   string
		isError bool
	}{{"good", false}, {"bad", true}} {
		hc := &http.Client{Transport: headerRT{"Bearer " + tc.token}}
		cs, err := sdk.NewClient(&sdk.Implementation{Name: "t"}, nil).Connect(context.Background(),
			&sdk.StreamableClientTransport{Endpoint: hs.URL, HTTPClient: hc, DisableStandaloneSSE: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		res := call(t, cs, "execute_python", map[string]any{"sandbox_id": "sandbox-aaaaaaaaaaaa", "code": "1+1"})
		if res.IsError != tc.isError {
			t.Errorf("token %s: IsError=%v: %s", tc.token, res.IsError, textOf(res))
		}
		cs.Close()
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if !slices.Equal(fake.auth, []string{"Bearer good", "Bearer bad"}) {
		t.Fatalf("Bay saw Authorization %v", fake.auth)
	}
}

type headerRT struct{ auth string }

func (h headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", h.auth)
	return http.DefaultTransport.RoundTrip(r)
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "abc\n\n...[truncated 1 chars; original=4]"},
		{"ééé", 2, "éé\n\n...[truncated 1 chars; original=3]"},
		{"", 0, ""},
	} {
		if got := truncate(tc.in, tc.limit); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{"SHIPYARD_DEFAULT_TTL": "0", "SHIPYARD_MAX_TOOL_TEXT_CHARS": "-5", "SHIPYARD_SDK_CALL_TIMEOUT": "7",
		"BAY_ENDPOINT": "http://b", "SHIPYARD_ACCESS_TOKEN": "k"}
	o := FromEnv(func(k string) string { return env[k] })
	if o.DefaultTTL != 0 || o.MaxToolTextChars != 12000 || o.CallTimeout.Seconds() != 7 || o.DefaultProfile != "python-default" {
		t.Fatalf("options %+v", o)
	}
	if e, k := Endpoint(func(k string) string { return env[k] }); e != "http://b" || k != "k" {
		t.Fatalf("endpoint %q %q", e, k)
	}
}
