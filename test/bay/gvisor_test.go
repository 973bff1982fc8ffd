package bay_test

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/shipyard/shipyard/test/baytest"
)

// TestGVisorProfile: the default python-secure profile runs Ship under gVisor
// (runsc, ptrace platform), and everything a sandbox offers works there:
// python with state and numpy, shell as uid 1000, files, upload/download, the
// terminal, and a stop/rebuild that keeps the workspace.
func TestGVisorProfile(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})

	profiles := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/profiles"})
	var secure map[string]any
	for _, p := range profiles["items"].([]any) {
		if m := p.(map[string]any); m["id"] == "python-secure" {
			secure = m
		}
	}
	if secure == nil || secure["runtime"] != "runsc" || secure["available"] != true {
		t.Fatalf("python-secure in /v1/profiles = %v (make docker registers runsc)", secure)
	}

	id := b.CreateSandbox(t, map[string]any{"profile": "python-secure"})
	sb := "/v1/sandboxes/" + id
	b.Python(t, id, "x = 21")
	if r := b.Python(t, id, "import numpy\nprint(x * 2, int(numpy.arange(10).sum()))"); strings.TrimSpace(r["output"].(string)) != "42 45" {
		t.Fatalf("python under gVisor: %v", r)
	}

	// The container really runs on runsc, and the kernel it sees is gVisor's.
	cs := containersOf(t, "bay.sandbox_id="+id)
	if len(cs) != 1 {
		t.Fatalf("%d containers", len(cs))
	}
	info, err := baytest.Docker(t).ContainerInspect(t.Context(), cs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.HostConfig.Runtime != "runsc" {
		t.Fatalf("container runtime = %q, want runsc", info.HostConfig.Runtime)
	}
	dockerInfo, err := baytest.Docker(t).Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if args := dockerInfo.Runtimes["runsc"].Args; !strings.Contains(strings.Join(args, " "), "--platform=ptrace") {
		t.Fatalf("runsc args %v: the platform used here is ptrace", args)
	}
	sh := b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/shell/exec",
		Body: map[string]any{"command": "id -u && dmesg | head -n 1"}})
	if out, _ := sh["output"].(string); !strings.HasPrefix(out, "1000\n") || !strings.Contains(out, "gVisor") {
		t.Fatalf("shell under gVisor: %v", sh)
	}

	b.Must(t, 200, baytest.Req{Method: "PUT", Path: sb + "/filesystem/files", Body: map[string]any{"path": "g/a.txt", "content": "secure"}})
	if f := b.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/filesystem/files?path=g/a.txt"}); f["content"] != "secure" {
		t.Fatalf("read: %v", f)
	}
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	body, ctype := multipartBody(t, "g/blob.bin", data)
	b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/filesystem/upload", Body: body, Headers: map[string]string{"Content-Type": ctype}})
	if dl := b.Do(t, baytest.Req{Method: "GET", Path: sb + "/filesystem/download?path=g/blob.bin"}); dl.Status != 200 || !bytes.Equal(dl.Body, data) {
		t.Fatalf("download: %d, %d bytes", dl.Status, len(dl.Body))
	}

	b.TerminalRoundTrip(t, id, "echo gv-$((6*7))\n", "gv-42")

	b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/stop"})
	if r := b.Python(t, id, "print(open('g/a.txt').read())"); strings.TrimSpace(r["output"].(string)) != "secure" {
		t.Fatalf("after a rebuild under gVisor: %v", r)
	}
}

// TestProfileWithMissingRuntime: a profile whose OCI runtime the engine lacks is
// listed as unavailable with the reason, refuses creates with a clear 503, and
// does not keep Bay or the other profiles from working.
func TestProfileWithMissingRuntime(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{ConfigYAML: `
profiles:
  - id: python-default
    image: ship:latest
  - id: exotic
    image: ship:latest
    runtime: bay-no-such-runtime
`})
	profiles := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/profiles"})
	byID := map[string]map[string]any{}
	for _, p := range profiles["items"].([]any) {
		m := p.(map[string]any)
		byID[m["id"].(string)] = m
	}
	if p := byID["exotic"]; p["available"] != false || !strings.Contains(p["unavailable_reason"].(string), "bay-no-such-runtime") {
		t.Fatalf("exotic = %v", p)
	}
	if p := byID["python-default"]; p["available"] != true || p["unavailable_reason"] != nil {
		t.Fatalf("python-default = %v", p)
	}
	r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"profile": "exotic"}})
	if r.Status != 503 || r.Code() != "profile_unavailable" || r.Header.Get("Retry-After") != "" ||
		!strings.Contains(string(r.Body), "bay-no-such-runtime") {
		t.Fatalf("create on exotic: %d %s (Retry-After %q)", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	id := b.CreateSandbox(t, map[string]any{"profile": "python-default"})
	if out := b.Python(t, id, "1+1"); out["output"] != "2" {
		t.Fatalf("python-default: %v", out)
	}
}
