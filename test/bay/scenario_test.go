package bay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"mime/multipart"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/shipyard/shipyard/internal/bay/app"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
	"github.com/shipyard/shipyard/test/baytest"
)

func containersOf(t *testing.T, label string) []container.Summary {
	t.Helper()
	cli := baytest.Docker(t)
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func volumeExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := baytest.Docker(t).VolumeInspect(context.Background(), name)
	return err == nil
}

func multipartBody(t *testing.T, path string, data []byte) (io.Reader, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("path", path)
	fw, _ := mw.CreateFormFile("file", "upload")
	_, _ = fw.Write(data)
	_ = mw.Close()
	return &buf, mw.FormDataContentType()
}

// TestClientScenario walks the whole life of a sandbox as the upstream SDK would.
func TestClientScenario(t *testing.T) {
	baytest.Skip(t)
	clientScenario(t, baytest.Start(t, baytest.Options{ValidateSpec: true}))
}

// TestClientScenarioOnPostgres runs the same scenario with PostgreSQL as the store.
func TestClientScenarioOnPostgres(t *testing.T) {
	baytest.Skip(t)
	if storetest.PostgresDSN() == "" {
		t.Skip("set SHIPYARD_TEST_PG_DSN (make test does, from scripts/pg.sh)")
	}
	clientScenario(t, baytest.Start(t, baytest.Options{ValidateSpec: true, Postgres: storetest.FreshDSN(t, store.Postgres)}))
}

func clientScenario(t *testing.T, b *baytest.Bay) {
	id := b.CreateSandbox(t, map[string]any{"ttl": 3600})
	sb := "/v1/sandboxes/" + id

	r := b.Python(t, id, "x = 41\nprint('hi')")
	if r["success"] != true || r["output"] != "hi" {
		t.Fatalf("python: %v", r)
	}
	if !strings.HasPrefix(r["execution_id"].(string), "exec-") {
		t.Fatalf("execution id: %v", r["execution_id"])
	}
	r = b.Python(t, id, "x + 1")
	if r["output"] != "42" {
		t.Fatalf("state not kept: %v", r)
	}
	got := b.Must(t, 200, baytest.Req{Method: "GET", Path: sb})
	if got["status"] != "ready" || got["containers"] == nil {
		t.Fatalf("get: %v", got)
	}
	sh := b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{"command": "id -u && pwd"}})
	if sh["output"] != "1000\n/workspace" || sh["exit_code"] != float64(0) {
		t.Fatalf("shell: %v", sh)
	}
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: sb + "/filesystem/files", Body: map[string]any{"path": "dir/a.txt", "content": "hello"}})
	f := b.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/filesystem/files?path=dir/a.txt"})
	if f["content"] != "hello" {
		t.Fatalf("read: %v", f)
	}
	l := b.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/filesystem/directories?path=dir"})
	if es := l["entries"].([]any); len(es) != 1 || es[0].(map[string]any)["name"] != "a.txt" {
		t.Fatalf("list: %v", l)
	}
	b.Must(t, 200, baytest.Req{Method: "DELETE", Path: sb + "/filesystem/files?path=dir/a.txt"})
	if r := b.Do(t, baytest.Req{Method: "GET", Path: sb + "/filesystem/files?path=dir/a.txt"}); r.Status != 404 || r.Code() != "file_not_found" {
		t.Fatalf("missing file: %d %s", r.Status, r.Body)
	}

	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	body, ctype := multipartBody(t, "up/blob.bin", data)
	up := b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/filesystem/upload", Body: body,
		Headers: map[string]string{"Content-Type": ctype}})
	if up["path"] != "up/blob.bin" || up["size"] != float64(len(data)) {
		t.Fatalf("upload: %v", up)
	}
	dl := b.Do(t, baytest.Req{Method: "GET", Path: sb + "/filesystem/download?path=up/blob.bin"})
	if dl.Status != 200 || sha256.Sum256(dl.Body) != sha256.Sum256(data) {
		t.Fatalf("download: %d, %d bytes", dl.Status, len(dl.Body))
	}
	if cd := dl.Header.Get("Content-Disposition"); !strings.Contains(cd, "blob.bin") {
		t.Fatalf("content-disposition %q", cd)
	}

	h := b.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/history"})
	if h["total"].(float64) < 3 {
		t.Fatalf("history: %v", h)
	}
	b.Must(t, 200, baytest.Req{Method: "GET", Path: sb + "/history/last?exec_type=shell"})

	b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/stop"})
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("stop left %d containers", n)
	}
	got = b.Must(t, 200, baytest.Req{Method: "GET", Path: sb})
	if got["status"] != "idle" {
		t.Fatalf("after stop: %v", got)
	}
	r = b.Python(t, id, "'x' in globals()")
	if r["output"] != "False" {
		t.Fatalf("variables survived a stop: %v", r)
	}
	sh = b.Must(t, 200, baytest.Req{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{"command": "wc -c < up/blob.bin"}})
	if strings.TrimSpace(sh["output"].(string)) != "3145728" {
		t.Fatalf("files lost across stop: %v", sh)
	}
	cargo := got["cargo_id"].(string)
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: sb})
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: sb}) // idempotent
	if r := b.Do(t, baytest.Req{Method: "GET", Path: sb}); r.Status != 404 {
		t.Fatalf("deleted sandbox: %d", r.Status)
	}
	if volumeExists(t, "bay-cargo-"+cargo) {
		t.Fatal("managed volume survived delete")
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("delete left %d containers", n)
	}
}

func TestIdempotentCreate(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	req := baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"ttl": 60},
		Headers: map[string]string{"Idempotency-Key": "k-1"}}
	first := b.Must(t, 201, req)
	again := b.Must(t, 201, req)
	if first["id"] != again["id"] {
		t.Fatalf("replay made a new sandbox: %v vs %v", first["id"], again["id"])
	}
	req.Body = map[string]any{"ttl": 61}
	if r := b.Do(t, req); r.Status != 409 || r.Code() != "conflict" {
		t.Fatalf("different body: %d %s", r.Status, r.Body)
	}
	req.Headers["Idempotency-Key"] = "bad key!"
	if r := b.Do(t, req); r.Status != 409 {
		t.Fatalf("bad key: %d", r.Status)
	}
	// Concurrent first requests with one key: exactly one sandbox.
	var wg sync.WaitGroup
	ids := make([]string, 10)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{},
				Headers: map[string]string{"Idempotency-Key": "race"}})
			if r.Status == 201 {
				ids[i] = r.JSON()["id"].(string)
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent creates with one key: %v", ids)
		}
	}
}

func TestParallelFirstCallsStartOneContainer(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "1+1"}})
			if r.Status != 200 || r.JSON()["output"] != "2" {
				errs <- string(r.Body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("call failed: %s", e)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 1 {
		t.Fatalf("%d containers started, want 1", n)
	}
}

func TestFailedStartLeavesNoContainer(t *testing.T) {
	baytest.Skip(t)
	var fail sync.Map
	b := baytest.Start(t, baytest.Options{App: app.Options{Hooks: session.Hooks{
		BeforeStart: func(ctx context.Context, ss *model.Session) error {
			if _, ok := fail.Load(ss.SandboxID); ok {
				return io.ErrUnexpectedEOF
			}
			return nil
		},
	}}})
	id := b.CreateSandbox(t, nil)
	fail.Store(id, true)
	r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "1"}})
	if r.Status != 500 || r.Code() != "internal_error" || r.JSON()["error"].(map[string]any)["request_id"] == "" {
		t.Fatalf("injected failure: %d %s", r.Status, r.Body)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("failed start left %d containers", n)
	}
	if got := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id}); got["status"] != "failed" {
		t.Fatalf("status after failed start: %v", got["status"])
	}
	fail.Delete(id)
	if out := b.Python(t, id, "1+1"); out["output"] != "2" {
		t.Fatalf("retry after failure: %v", out)
	}
}

func TestContainerIsLockedDown(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	b.Python(t, id, "1")
	list := containersOf(t, "bay.sandbox_id="+id)
	if len(list) != 1 {
		t.Fatalf("%d containers", len(list))
	}
	in, err := baytest.Docker(t).ContainerInspect(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if in.Config.User != "1000:1000" {
		t.Errorf("user %q", in.Config.User)
	}
	if len(in.HostConfig.CapDrop) != 1 || strings.ToUpper(in.HostConfig.CapDrop[0]) != "ALL" {
		t.Errorf("capdrop %v", in.HostConfig.CapDrop)
	}
	if !strings.Contains(strings.Join(in.HostConfig.SecurityOpt, ","), "no-new-privileges") {
		t.Errorf("securityopt %v", in.HostConfig.SecurityOpt)
	}
	for port, binds := range in.NetworkSettings.Ports {
		for _, bnd := range binds {
			if bnd.HostIP != "127.0.0.1" {
				t.Errorf("port %s bound on %q", port, bnd.HostIP)
			}
		}
	}
	if in.Config.Labels["bay.owner"] != "default" || in.Config.Labels["bay.managed"] != "true" ||
		in.Config.Labels["bay.instance_id"] != b.InstanceID {
		t.Errorf("labels %v", in.Config.Labels)
	}
	if !strings.HasPrefix(in.Name, "/bay-session-sess-") {
		t.Errorf("name %q", in.Name)
	}
	if in.HostConfig.PidsLimit == nil || *in.HostConfig.PidsLimit <= 0 || in.HostConfig.Memory <= 0 {
		t.Errorf("limits: pids %v mem %d", in.HostConfig.PidsLimit, in.HostConfig.Memory)
	}
}

func TestExpiredSandboxRefusesCalls(t *testing.T) {
	baytest.Skip(t)
	var mu sync.Mutex
	now := time.Now().UTC()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := baytest.Start(t, baytest.Options{App: app.Options{Now: clock}})
	inf := b.CreateSandbox(t, nil)
	if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + inf + "/extend_ttl", Body: map[string]any{"extend_by": 10}}); r.Status != 409 || r.Code() != "sandbox_ttl_infinite" {
		t.Fatalf("infinite: %d %s", r.Status, r.Body)
	}
	id := b.CreateSandbox(t, map[string]any{"ttl": 60})
	ext := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/extend_ttl", Body: map[string]any{"extend_by": 60}})
	exp, _ := time.Parse("2006-01-02T15:04:05.999999", ext["expires_at"].(string))
	if d := exp.Sub(now); d < 119*time.Second || d > 121*time.Second {
		t.Fatalf("extend: expires in %v", d)
	}
	for _, bad := range []any{0, -5} {
		if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/extend_ttl", Body: map[string]any{"extend_by": bad}}); r.Status != 400 {
			t.Fatalf("extend_by %v: %d", bad, r.Status)
		}
	}
	if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/extend_ttl", Body: map[string]any{}}); r.Status != 422 {
		t.Fatalf("extend_by missing: %d", r.Status)
	}
	mu.Lock()
	now = now.Add(3 * time.Minute)
	mu.Unlock()
	if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/extend_ttl", Body: map[string]any{"extend_by": 60}}); r.Status != 409 || r.Code() != "sandbox_expired" {
		t.Fatalf("expired extend: %d %s", r.Status, r.Body)
	}
	if got := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id}); got["status"] != "expired" {
		t.Fatalf("status %v", got["status"])
	}
	if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "1"}}); r.Status != 409 || r.Code() != "sandbox_expired" {
		t.Fatalf("exec on expired: %d %s", r.Status, r.Body)
	}
}

func TestWrongKeyAndValidation(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	if r := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes", Key: "sk-bay-wrong"}); r.Status != 401 || r.Code() != "unauthorized" {
		t.Fatalf("wrong key: %d %s", r.Status, r.Body)
	}
	if r := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/profiles", NoAuth: true}); r.Status != 200 {
		t.Fatalf("profiles: %d", r.Status)
	}
	if r := b.Do(t, baytest.Req{Method: "GET", Path: "/health", NoAuth: true}); r.Status != 200 || r.JSON()["version"] == nil {
		t.Fatalf("health: %d %s", r.Status, r.Body)
	}
	id := b.CreateSandbox(t, nil)
	sb := "/v1/sandboxes/" + id
	cases := []struct {
		name   string
		req    baytest.Req
		status int
		reason string
	}{
		{"traversal", baytest.Req{Method: "GET", Path: sb + "/filesystem/files?path=../../etc/passwd"}, 400, "path_traversal"},
		{"absolute", baytest.Req{Method: "GET", Path: sb + "/filesystem/files?path=/etc/passwd"}, 400, "absolute_path"},
		{"nul", baytest.Req{Method: "GET", Path: sb + "/filesystem/files?path=a%00b"}, 400, "null_byte"},
		{"write traversal", baytest.Req{Method: "PUT", Path: sb + "/filesystem/files", Body: map[string]any{"path": "../x", "content": ""}}, 400, "path_traversal"},
		{"cwd absolute", baytest.Req{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{"command": "ls", "cwd": "/etc"}}, 400, "absolute_path"},
		{"missing path", baytest.Req{Method: "GET", Path: sb + "/filesystem/files"}, 422, ""},
		{"missing code", baytest.Req{Method: "POST", Path: sb + "/python/exec", Body: map[string]any{}}, 422, ""},
		{"bad timeout", baytest.Req{Method: "POST", Path: sb + "/python/exec", Body: map[string]any{"code": "1", "timeout": 0}}, 422, ""},
		{"bad json", baytest.Req{Method: "POST", Path: sb + "/python/exec", Body: []byte("{nope")}, 422, ""},
		{"bad profile", baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"profile": "nope"}}, 400, ""},
		{"unknown cargo", baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"cargo_id": "ws-000000000000"}}, 404, ""},
		{"unknown route", baytest.Req{Method: "GET", Path: "/v1/nope"}, 404, ""},
		{"wrong method", baytest.Req{Method: "PATCH", Path: "/v1/sandboxes"}, 405, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := b.Do(t, c.req)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			if c.reason != "" {
				e := r.JSON()["error"].(map[string]any)
				if e["code"] != "invalid_path" || e["details"].(map[string]any)["reason"] != c.reason {
					t.Fatalf("body %s", r.Body)
				}
			}
			if r.Header.Get("X-Request-Id") == "" {
				t.Fatal("no X-Request-Id")
			}
		})
	}
	// None of that started compute.
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("validation failures started %d containers", n)
	}
}

func TestOwnersAreIsolated(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{Env: map[string]string{"BAY_SECURITY__ALLOW_ANONYMOUS": "true"}})
	as := func(owner string, r baytest.Req) *baytest.Response {
		r.NoAuth = true
		r.Headers = map[string]string{"X-Owner": owner}
		return b.Do(t, r)
	}
	r := as("alice", baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{}})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := r.JSON()["id"].(string)
	r = as("alice", baytest.Req{Method: "POST", Path: "/v1/cargos", Body: map[string]any{}})
	if r.Status != 201 {
		t.Fatalf("cargo: %d %s", r.Status, r.Body)
	}
	cargo := r.JSON()["id"].(string)
	if r := as("alice", baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec", Body: map[string]any{"command": "true"}}); r.Status != 200 {
		t.Fatalf("alice exec: %d %s", r.Status, r.Body)
	}
	exec := as("alice", baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id + "/history/last"}).JSON()["id"].(string)
	sb := "/v1/sandboxes/" + id
	routes := []baytest.Req{
		{Method: "GET", Path: sb},
		{Method: "DELETE", Path: sb},
		{Method: "POST", Path: sb + "/extend_ttl", Body: map[string]any{"extend_by": 5}},
		{Method: "POST", Path: sb + "/keepalive"},
		{Method: "POST", Path: sb + "/stop"},
		{Method: "POST", Path: sb + "/python/exec", Body: map[string]any{"code": "1"}},
		{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{"command": "true"}},
		{Method: "GET", Path: sb + "/filesystem/files?path=a"},
		{Method: "PUT", Path: sb + "/filesystem/files", Body: map[string]any{"path": "a", "content": "x"}},
		{Method: "DELETE", Path: sb + "/filesystem/files?path=a"},
		{Method: "GET", Path: sb + "/filesystem/directories"},
		{Method: "GET", Path: sb + "/filesystem/download?path=a"},
		{Method: "GET", Path: sb + "/history"},
		{Method: "GET", Path: sb + "/history/last"},
		{Method: "GET", Path: sb + "/history/" + exec},
		{Method: "PATCH", Path: sb + "/history/" + exec, Body: map[string]any{"notes": "x"}},
		{Method: "GET", Path: "/v1/cargos/" + cargo},
		{Method: "DELETE", Path: "/v1/cargos/" + cargo},
		{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"cargo_id": cargo}},
	}
	for _, rq := range routes {
		if r := as("bob", rq); r.Status != 404 {
			t.Errorf("bob %s %s: %d %s", rq.Method, rq.Path, r.Status, r.Body)
		}
	}
	if items := as("bob", baytest.Req{Method: "GET", Path: "/v1/sandboxes"}).JSON()["items"].([]any); len(items) != 0 {
		t.Errorf("bob lists %d sandboxes", len(items))
	}
	if items := as("bob", baytest.Req{Method: "GET", Path: "/v1/cargos"}).JSON()["items"].([]any); len(items) != 0 {
		t.Errorf("bob lists %d cargos", len(items))
	}
	if r := as("alice", baytest.Req{Method: "GET", Path: sb}); r.Status != 200 {
		t.Fatalf("alice lost her sandbox: %d", r.Status)
	}
	list := containersOf(t, "bay.sandbox_id="+id)
	if len(list) != 1 || list[0].Labels["bay.owner"] != "alice" {
		t.Fatalf("owner label: %v", list)
	}
}

func TestProfileCapabilities(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{ConfigYAML: `
profiles:
  - id: python-only
    image: ship:latest
    capabilities: [python]
  - id: python-default
    image: ship:latest
`})
	id := b.CreateSandbox(t, map[string]any{"profile": "python-only"})
	sb := "/v1/sandboxes/" + id
	for _, rq := range []baytest.Req{
		{Method: "POST", Path: sb + "/shell/exec", Body: map[string]any{"command": "true"}},
		{Method: "GET", Path: sb + "/filesystem/files?path=a"},
		{Method: "GET", Path: sb + "/filesystem/directories"},
	} {
		r := b.Do(t, rq)
		if r.Status != 400 || r.Code() != "capability_not_supported" {
			t.Errorf("%s %s: %d %s", rq.Method, rq.Path, r.Status, r.Body)
		}
	}
	if out := b.Python(t, id, "6*7"); out["output"] != "42" {
		t.Fatalf("python: %v", out)
	}
}

func TestCargoRules(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	c := b.Must(t, 201, baytest.Req{Method: "POST", Path: "/v1/cargos"}) // no body, as the SDK sends
	cid := c["id"].(string)
	if !strings.HasPrefix(cid, "ws-") || c["managed"] != false || c["size_limit_mb"] != float64(1024) || c["size_limit_enforced"] != false {
		t.Fatalf("cargo: %v", c)
	}
	if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/cargos", Body: map[string]any{"size_limit_mb": 0}}); r.Status != 422 {
		t.Fatalf("size 0: %d", r.Status)
	}
	id := b.CreateSandbox(t, map[string]any{"cargo_id": cid})
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files", Body: map[string]any{"path": "keep.txt", "content": "kept"}})
	if r := b.Do(t, baytest.Req{Method: "DELETE", Path: "/v1/cargos/" + cid}); r.Status != 409 {
		t.Fatalf("delete in-use cargo: %d", r.Status)
	}
	managed := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/cargos?managed=true"})
	_ = managed
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: "/v1/sandboxes/" + id})
	if !volumeExists(t, "bay-cargo-"+cid) {
		t.Fatal("external cargo removed with its sandbox")
	}
	id2 := b.CreateSandbox(t, map[string]any{"cargo_id": cid})
	if f := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id2 + "/filesystem/files?path=keep.txt"}); f["content"] != "kept" {
		t.Fatalf("external cargo content: %v", f)
	}
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: "/v1/sandboxes/" + id2})
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: "/v1/cargos/" + cid})
	if volumeExists(t, "bay-cargo-"+cid) {
		t.Fatal("cargo volume survived its delete")
	}
}
