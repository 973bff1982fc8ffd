package bay_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipyard/shipyard/internal/bay/mcp"
	"github.com/shipyard/shipyard/test/baytest"
)

// bearer adds an Authorization header to every request.
type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.key != "" {
		r.Header.Set("Authorization", "Bearer "+b.key)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func mcpHTTP(t *testing.T, b *baytest.Bay, key string) (*sdk.ClientSession, error) {
	tr := &sdk.StreamableClientTransport{Endpoint: b.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer{key}},
		DisableStandaloneSSE: true, MaxRetries: -1}
	return sdk.NewClient(&sdk.Implementation{Name: "e2e"}, nil).Connect(context.Background(), tr, nil)
}

// buildMCP builds cmd/shipyard-mcp once per test.
func buildMCP(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shipyard-mcp")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/shipyard/shipyard/cmd/shipyard-mcp").CombinedOutput()
	if err != nil {
		t.Fatalf("build shipyard-mcp: %v\n%s", err, out)
	}
	return bin
}

func mcpStdio(t *testing.T, bin, url, key, dir string) *sdk.ClientSession {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SHIPYARD_ENDPOINT_URL="+url, "SHIPYARD_ACCESS_TOKEN="+key, "SHIPYARD_MAX_TOOL_TEXT_CHARS=5000")
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "e2e"}, nil).Connect(context.Background(), &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("stdio connect: %v", err)
	}
	return cs
}

type mcpCall struct {
	t  *testing.T
	cs *sdk.ClientSession
}

// ok calls a tool that must succeed and returns its text and result.
func (c mcpCall) ok(name string, args map[string]any, want ...string) (string, *sdk.CallToolResult) {
	c.t.Helper()
	txt, res := c.call(name, args)
	if res.IsError {
		c.t.Fatalf("%s: tool error: %s", name, txt)
	}
	for _, w := range want {
		if !strings.Contains(txt, w) {
			c.t.Fatalf("%s: text lacks %q:\n%s", name, w, txt)
		}
	}
	return txt, res
}

// fails calls a tool that must answer a tool error containing want.
func (c mcpCall) fails(name string, args map[string]any, want string) {
	c.t.Helper()
	txt, res := c.call(name, args)
	if !res.IsError || !strings.Contains(txt, want) {
		c.t.Fatalf("%s: IsError=%v, want a tool error with %q: %s", name, res.IsError, want, txt)
	}
}

func (c mcpCall) call(name string, args map[string]any) (string, *sdk.CallToolResult) {
	c.t.Helper()
	res, err := c.cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		c.t.Fatalf("%s: protocol error: %v", name, err)
	}
	var parts []string
	for _, ct := range res.Content {
		if tc, ok := ct.(*sdk.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n"), res
}

func find(t *testing.T, re, s string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s not in:\n%s", re, s)
	}
	return m[1]
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// TestMCP drives the MCP tools with the Go SDK's client over both transports
// (Bay's /mcp and the stdio command) against a real Bay and real containers.
func TestMCP(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})

	t.Run("http refuses a wrong or missing key", func(t *testing.T) {
		for _, key := range []string{"sk-bay-wrong", ""} {
			if cs, err := mcpHTTP(t, b, key); err == nil {
				cs.Close()
				t.Fatalf("key %q: connected", key)
			}
		}
		r := b.Do(t, baytest.Req{Method: "POST", Path: "/mcp", Key: "sk-bay-wrong", Body: map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
			Headers: map[string]string{"Accept": "application/json, text/event-stream"}})
		if r.Status != http.StatusUnauthorized || r.Code() != "unauthorized" {
			t.Fatalf("POST /mcp with a wrong key: %d %s", r.Status, r.Body)
		}
	})

	t.Run("http", func(t *testing.T) {
		cs, err := mcpHTTP(t, b, baytest.APIKey)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		mcpScenario(t, b, mcpCall{t, cs}, "")
	})

	bin := buildMCP(t)
	t.Run("stdio", func(t *testing.T) {
		dir := t.TempDir()
		cs := mcpStdio(t, bin, b.URL, baytest.APIKey, dir)
		defer cs.Close()
		mcpScenario(t, b, mcpCall{t, cs}, dir)
	})

	t.Run("stdio with a wrong key answers tool errors", func(t *testing.T) {
		cs := mcpStdio(t, bin, b.URL, "sk-bay-wrong", t.TempDir())
		defer cs.Close()
		mcpCall{t, cs}.fails("create_sandbox", nil, "**API Error:** [unauthorized] Invalid API key")
	})
}

// mcpScenario: local is the stdio server's working directory ("" over HTTP,
// where files travel inside the messages).
func mcpScenario(t *testing.T, b *baytest.Bay, c mcpCall, local string) {
	ctx := context.Background()
	tools, err := c.cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	want := mcp.ToolNames()
	slices.Sort(names)
	slices.Sort(want)
	if len(names) != 27 || !slices.Equal(names, want) {
		t.Fatalf("tools %v", names)
	}

	c.ok("list_profiles", nil, "**python-default**")
	txt, _ := c.ok("create_sandbox", map[string]any{"ttl": 600}, "Sandbox created successfully.", "**TTL:** 600 seconds")
	id := find(t, "\\*\\*Sandbox ID:\\*\\* `(sandbox-[0-9a-f]{12})`", txt)
	sb := func(m map[string]any) map[string]any { m["sandbox_id"] = id; return m }

	// Bad arguments are tool errors; the session goes on.
	c.fails("execute_python", sb(map[string]any{}), "code")
	c.fails("execute_python", sb(map[string]any{"code": "1", "timeout": 0}), "timeout")
	c.fails("read_file", sb(map[string]any{"path": "/etc/passwd"}), "absolute paths are not allowed")
	c.fails("execute_browser", sb(map[string]any{"cmd": "open https://example.com"}), "has no browser capability")
	c.fails("execute_browser_batch", sb(map[string]any{"commands": []string{"snapshot"}}), "has no browser capability")

	// Python keeps state and returns images.
	c.ok("execute_python", sb(map[string]any{"code": "x = 41", "tags": "mcp,e2e", "description": "set x"}), "**Execution successful**")
	txt, _ = c.ok("execute_python", sb(map[string]any{"code": "print(x + 1)"}), "**Execution successful**\n\n```\n42\n```")
	pyExec := find(t, `execution_id: (exec-[0-9a-f]{12})`, txt)
	_, res := c.ok("execute_python", sb(map[string]any{"code": "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()", "timeout": 120}))
	var img *sdk.ImageContent
	for _, ct := range res.Content {
		if ic, ok := ct.(*sdk.ImageContent); ok {
			img = ic
		}
	}
	if img == nil || img.MIMEType != "image/png" || !bytes.HasPrefix(img.Data, pngMagic) {
		t.Fatalf("matplotlib: no PNG image content in %d parts", len(res.Content))
	}
	c.ok("execute_python", sb(map[string]any{"code": "1/0"}), "**Execution failed**", "ZeroDivisionError")
	c.ok("execute_python", sb(map[string]any{"code": "print('a' * 20000)"}), "...[truncated ")

	// Shell.
	c.ok("execute_shell", sb(map[string]any{"command": "mkdir -p d && echo hi > d/f.txt && cat d/f.txt && id -u"}),
		"**Command successful** (exit code: 0)", "hi\n1000")
	c.ok("execute_shell", sb(map[string]any{"command": "pwd", "cwd": "d"}), "/workspace/d")
	c.ok("execute_shell", sb(map[string]any{"command": "echo oops >&2; exit 3"}), "**Command failed** (exit code: 3)", "oops")

	// Files.
	c.ok("write_file", sb(map[string]any{"path": "notes/a.txt", "content": "héllo"}), "File `notes/a.txt` written successfully (5 bytes).")
	c.ok("read_file", sb(map[string]any{"path": "notes/a.txt"}), "**File: notes/a.txt**\n\n```\nhéllo\n```")
	c.ok("list_files", sb(map[string]any{"path": "notes"}), "**Directory: notes**", "📄 a.txt (6 bytes)")
	c.ok("list_files", sb(map[string]any{}), "📁 notes/")
	blob := append(append([]byte{}, pngMagic...), 0, 1, 2, 255)
	if local == "" {
		c.ok("upload_file", sb(map[string]any{"sandbox_path": "bin/b.dat", "content_base64": base64.StdEncoding.EncodeToString(blob)}),
			"File uploaded successfully.", "**Size:** 12 bytes")
		c.fails("upload_file", sb(map[string]any{"local_path": "/etc/passwd"}), "local_path is not available")
		_, res = c.ok("download_file", sb(map[string]any{"sandbox_path": "bin/b.dat"}), "**Size:** 12 bytes")
		var got []byte
		for _, ct := range res.Content {
			switch v := ct.(type) {
			case *sdk.ImageContent:
				got = v.Data
			case *sdk.EmbeddedResource:
				got = v.Resource.Blob
			}
		}
		if !bytes.Equal(got, blob) {
			t.Fatalf("download_file content %q, want %q", got, blob)
		}
	} else {
		if err := os.WriteFile(filepath.Join(local, "b.dat"), blob, 0o600); err != nil {
			t.Fatal(err)
		}
		c.ok("upload_file", sb(map[string]any{"local_path": "b.dat", "sandbox_path": "bin/b.dat"}), "**Size:** 12 bytes")
		c.ok("download_file", sb(map[string]any{"sandbox_path": "bin/b.dat", "local_path": "out/c.dat"}), "File downloaded successfully.")
		if got, err := os.ReadFile(filepath.Join(local, "out", "c.dat")); err != nil || !bytes.Equal(got, blob) {
			t.Fatalf("downloaded %q, %v", got, err)
		}
	}
	c.ok("delete_file", sb(map[string]any{"path": "notes"}), "Deleted `notes` successfully.")
	c.fails("read_file", sb(map[string]any{"path": "notes/a.txt"}), "**API Error:**")

	// History.
	c.ok("get_execution_history", sb(map[string]any{"exec_type": "python", "tags": "e2e"}), "Total: 1", "| python | success=True |", "tags: e2e,mcp")
	c.ok("get_execution", sb(map[string]any{"execution_id": pyExec}), "execution_id: "+pyExec, "code:\nprint(x + 1)", "output:\n42")
	c.ok("get_last_execution", sb(map[string]any{"exec_type": "shell"}), "type: shell", "code:\necho oops >&2; exit 3")
	c.ok("annotate_execution", sb(map[string]any{"execution_id": pyExec, "notes": "the answer"}), "Updated execution "+pyExec, "notes: the answer")
	c.fails("get_execution", sb(map[string]any{"execution_id": "exec-000000000000"}), "[not_found]")

	mcpSkills(t, b, c, pyExec)

	c.ok("delete_sandbox", sb(map[string]any{}), "Sandbox `"+id+"` deleted successfully.")
	c.fails("execute_python", sb(map[string]any{"code": "1"}), "[not_found]")
}

// mcpSkills runs the skills flow through the tools when Bay has the routes.
func mcpSkills(t *testing.T, b *baytest.Bay, c mcpCall, execID string) {
	if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/skills/payloads", Body: map[string]any{"payload": map[string]any{}}}); r.Status == http.StatusNotFound {
		c.fails("create_skill_payload", map[string]any{"payload": map[string]any{"commands": []string{"x"}}}, "does not serve the skills API")
		t.Log("skills flow skipped: POST /v1/skills/payloads answers 404 (the skills API is not in this Bay yet)")
		return
	}
	txt, _ := c.ok("create_skill_payload", map[string]any{"payload": map[string]any{"commands": []string{"open https://example.com"}}}, "Created skill payload blob:")
	ref := find(t, `Created skill payload (blob:\S+)`, txt)
	c.ok("get_skill_payload", map[string]any{"payload_ref": ref}, "payload_ref: "+ref, "kind: generic", `"commands"`)
	key := "mcp-e2e-" + strings.TrimPrefix(execID, "exec-")
	txt, _ = c.ok("create_skill_candidate", map[string]any{"skill_key": key, "source_execution_ids": []string{execID}, "payload_ref": ref,
		"summary": "prints 42"}, "skill_key: "+key, "status: draft", "source_execution_ids: "+execID)
	cand := find(t, `Created skill candidate (\S+)`, txt)
	c.fails("promote_skill_candidate", map[string]any{"candidate_id": cand}, "[conflict]")
	c.ok("evaluate_skill_candidate", map[string]any{"candidate_id": cand, "passed": true, "score": 0.9}, "passed: True", "score: 0.9")
	txt, _ = c.ok("promote_skill_candidate", map[string]any{"candidate_id": cand, "stage": "stable"}, "version: 1", "stage: stable", "active: True")
	rel := find(t, `release_id: (\S+)`, txt)
	c.ok("list_skill_candidates", map[string]any{"skill_key": key}, "Total: 1", cand)
	c.ok("list_skill_releases", map[string]any{"skill_key": key, "active_only": true}, "Total: 1", key+" v1 | stage=stable | active=True")
	c.fails("rollback_skill_release", map[string]any{"release_id": rel}, "[conflict]")
	c.fails("promote_skill_candidate", map[string]any{"candidate_id": cand, "stage": "beta"}, "stage")
	c.ok("delete_skill_release", map[string]any{"release_id": rel, "reason": "e2e"}, "Skill release deleted: "+rel, "delete_reason: e2e")
	c.ok("delete_skill_candidate", map[string]any{"candidate_id": cand}, "Skill candidate deleted: "+cand)
	c.ok("list_skill_candidates", map[string]any{"skill_key": key}, "No skill candidates found.")
}
