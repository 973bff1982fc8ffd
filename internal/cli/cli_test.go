package cli

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBay answers a few routes the way Bay does.
func fakeBay(t *testing.T) *httptest.Server {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":"unauthorized","message":"Invalid API key","request_id":"r0"}}`)
			return
		}
		switch r.Method + " " + r.URL.Path {
		case "GET /v1/sandboxes":
			io.WriteString(w, `{"items":[{"id":"sandbox-a","status":"ready","profile":"python-default","cargo_id":"ws-1","capabilities":[],"created_at":"2026-01-01T00:00:00","expires_at":null,"idle_expires_at":null,"containers":[]}],"next_cursor":null}`)
		case "POST /v1/sandboxes/sandbox-a/shell/exec":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: stdout\ndata: {\"text\":\"out\\n\"}\n\nevent: stderr\ndata: {\"text\":\"err\\n\"}\n\n")
			io.WriteString(w, "event: result\ndata: {\"success\":false,\"output\":\"out\\n\",\"exit_code\":7,\"execution_id\":\"e\",\"execution_time_ms\":1,\"timed_out\":false}\n\n")
		default:
			w.Header().Set("X-Request-Id", "rq-9")
			w.WriteHeader(404)
			io.WriteString(w, `{"error":{"code":"not_found","message":"Sandbox not found","request_id":"rq-9"}}`)
		}
	}))
	t.Cleanup(hs.Close)
	return hs
}

func runCLI(t *testing.T, env map[string]string, configDir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := Run(context.Background(), args, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return env[k] }, ConfigDir: configDir})
	return code, out.String(), errOut.String()
}

func TestCommands(t *testing.T) {
	hs := fakeBay(t)
	env := map[string]string{"SHIPYARD_ENDPOINT_URL": hs.URL, "SHIPYARD_ACCESS_TOKEN": "tok"}
	cases := []struct {
		name     string
		args     []string
		code     int
		out, err string // substrings
	}{
		{"table", []string{"ls"}, 0, "ID         STATUS  PROFILE         CARGO  CREATED              EXPIRES\nsandbox-a  ready   python-default  ws-1", ""},
		{"json", []string{"ls", "--json"}, 0, `"id": "sandbox-a"`, ""},
		{"global json", []string{"--json", "ls"}, 0, `"cargo_id": "ws-1"`, ""},
		{"exec streams and exits with the command's code", []string{"exec", "sandbox-a", "--", "echo", "out"}, 7, "out\n", "err\n"},
		{"not found", []string{"get", "sandbox-x"}, ExitNotFound, "", "Sandbox not found (not_found, request id rq-9)"},
		{"bad token flag wins over env", []string{"--token", "bad", "ls"}, ExitAuth, "", "unauthorized"},
		{"usage", []string{"ttl", "sandbox-a"}, ExitUsage, "", "want <id> <seconds>"},
		{"usage ttl", []string{"ttl", "sandbox-a", "-5"}, ExitUsage, "", ""},
		{"unknown command", []string{"frobnicate"}, ExitUsage, "", `unknown command "frobnicate"`},
		{"unknown flag", []string{"ls", "--nope"}, ExitUsage, "", "flag provided but not defined"},
		{"cp needs one remote side", []string{"cp", "a", "b"}, ExitUsage, "", "exactly one side"},
		{"exec without command", []string{"exec", "sandbox-a"}, ExitUsage, "", "no command"},
		{"help", []string{"help"}, 0, "Usage: shipyard", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, env, "", tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
				t.Fatalf("code %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, tc.code, out, tc.out, errOut, tc.err)
			}
		})
	}
}

// Endpoint and token: flags, then the environment, then the config file.
func TestConfigFile(t *testing.T) {
	hs := fakeBay(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("endpoint: "+hs.URL+"\ntoken: tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, nil, dir, "ls"); code != 0 || !strings.Contains(out, "sandbox-a") {
		t.Fatalf("yaml config: %d %q %q", code, out, errOut)
	}
	// The environment overrides the file.
	if code, _, _ := runCLI(t, map[string]string{"SHIPYARD_ACCESS_TOKEN": "bad"}, dir, "ls"); code != ExitAuth {
		t.Fatalf("env token did not win: %d", code)
	}
	js := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(js, []byte(`{"endpoint":"`+hs.URL+`","token":"tok"}`), 0o600)
	if code, out, _ := runCLI(t, nil, "", "--config", js, "ls"); code != 0 || !strings.Contains(out, "sandbox-a") {
		t.Fatalf("json config: %d %q", code, out)
	}
	// A default config place that is a file, not a directory, holds no config
	// (regression: it was an error, e.g. beside a binary named shipyard).
	notDir := filepath.Join(t.TempDir(), "shipyard")
	os.WriteFile(notDir, nil, 0o755)
	if code, _, errOut := runCLI(t, map[string]string{"SHIPYARD_ENDPOINT_URL": hs.URL, "SHIPYARD_ACCESS_TOKEN": "tok"}, notDir, "ls"); code != 0 {
		t.Fatalf("config dir is a file: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "", "--config", filepath.Join(dir, "missing.yaml"), "ls"); code != ExitUsage || !strings.Contains(errOut, "missing.yaml") {
		t.Fatalf("missing config: %d %q", code, errOut)
	}
}

func TestRemote(t *testing.T) {
	for _, tc := range []struct {
		in, id, path string
		ok           bool
	}{
		{"sandbox-a:data/x.txt", "sandbox-a", "data/x.txt", true},
		{"sandbox-a:", "sandbox-a", "", true},
		{"./a:b", "", "", false},
		{"/tmp/x:y", "", "", false},
		{"plain.txt", "", "", false},
		{":x", "", "", false},
	} {
		id, path, ok := remote(tc.in)
		if id != tc.id || path != tc.path || ok != tc.ok {
			t.Errorf("remote(%q) = %q %q %v", tc.in, id, path, ok)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	a := &app{}
	fs := a.flags("x")
	f := fs.Bool("f", false, "")
	pos, rest, err := parse(fs, []string{"id", "-f", "proc", "--", "ls", "-la"})
	if err != nil || !*f || strings.Join(pos, ",") != "id,proc" || strings.Join(rest, ",") != "ls,-la" {
		t.Fatalf("parse = %v %v %v %v", pos, rest, err, *f)
	}
}
