package bay_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/shipyard/shipyard/internal/bay/app"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/test/baytest"
)

// clock is an injected, movable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now().UTC()} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func gcRun(t *testing.T, b *baytest.Bay, tasks ...string) map[string]any {
	t.Helper()
	return b.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/admin/gc/run", Body: map[string]any{"tasks": tasks}})
}

func cleaned(res map[string]any) float64 { return res["total_cleaned"].(float64) }

func TestIdleReclaimKeepsFilesAndRebuilds(t *testing.T) {
	baytest.Skip(t)
	clk := newClock()
	b := baytest.Start(t, baytest.Options{App: app.Options{Now: clk.Now}})
	id := b.CreateSandbox(t, nil)
	b.Python(t, id, "v = 7")
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files", Body: map[string]any{"path": "f.txt", "content": "stay"}})
	if res := gcRun(t, b, "idle_session"); cleaned(res) != 0 {
		t.Fatalf("reclaimed a fresh session: %v", res)
	}
	clk.Add(31 * time.Minute)
	if res := gcRun(t, b, "idle_session"); cleaned(res) != 1 {
		t.Fatalf("idle gc: %v", res)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 0 {
		t.Fatalf("%d containers after idle reclaim", n)
	}
	if got := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id}); got["status"] != "idle" || got["idle_expires_at"] != nil {
		t.Fatalf("after reclaim: %v", got)
	}
	if f := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id + "/filesystem/files?path=f.txt"}); f["content"] != "stay" {
		t.Fatalf("file lost: %v", f)
	}
	if r := b.Python(t, id, "'v' in globals()"); r["output"] != "False" {
		t.Fatalf("rebuilt session kept state? %v", r)
	}
}

func TestExpiredSandboxTakesManagedCargoOnly(t *testing.T) {
	baytest.Skip(t)
	clk := newClock()
	b := baytest.Start(t, baytest.Options{App: app.Options{Now: clk.Now}})
	managed := b.CreateSandbox(t, map[string]any{"ttl": 60})
	ext := b.Must(t, 201, baytest.Req{Method: "POST", Path: "/v1/cargos", Body: map[string]any{}})["id"].(string)
	external := b.CreateSandbox(t, map[string]any{"ttl": 60, "cargo_id": ext})
	b.Python(t, managed, "1")
	mcargo := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + managed})["cargo_id"].(string)
	clk.Add(2 * time.Minute)
	if res := gcRun(t, b, "expired_sandbox"); cleaned(res) != 2 {
		t.Fatalf("expired gc: %v", res)
	}
	for _, id := range []string{managed, external} {
		if r := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id}); r.Status != 404 {
			t.Fatalf("%s still visible: %d", id, r.Status)
		}
	}
	if volumeExists(t, "bay-cargo-"+mcargo) {
		t.Fatal("managed volume survived expiry")
	}
	if !volumeExists(t, "bay-cargo-"+ext) {
		t.Fatal("external volume removed with an expired sandbox")
	}
	if n := len(containersOf(t, "bay.sandbox_id="+managed)); n != 0 {
		t.Fatalf("%d containers survived expiry", n)
	}
}

func TestOrphanContainerRules(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	cli := baytest.Docker(t)
	ctx := context.Background()
	mk := func(name string, labels map[string]string) string {
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: baytest.Image, Labels: labels, Entrypoint: []string{"sleep", "300"}},
			&container.HostConfig{}, &network.NetworkingConfig{}, nil, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) })
		if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	suffix := model.NewID("x")
	orphan := mk("bay-session-sess-orphan-"+suffix, map[string]string{"bay.managed": "true", "bay.instance_id": b.InstanceID,
		"bay.session_id": "sess-000000000000", "bay.sandbox_id": "sandbox-000000000000", "bay.cargo_id": "ws-000000000000"})
	stranger := mk("not-bay-"+suffix, map[string]string{"app": "other"})
	otherBay := mk("bay-session-sess-other-"+suffix, map[string]string{"bay.managed": "true", "bay.instance_id": "someone-else",
		"bay.session_id": "sess-000000000001", "bay.sandbox_id": "sandbox-000000000001", "bay.cargo_id": "ws-000000000001"})
	id := b.CreateSandbox(t, nil)
	b.Python(t, id, "1") // a live session must survive
	if res := gcRun(t, b, "orphan_container"); cleaned(res) != 1 {
		t.Fatalf("orphan gc: %v", res)
	}
	if _, err := cli.ContainerInspect(ctx, orphan); err == nil {
		t.Fatal("orphan container kept")
	}
	for _, keep := range []string{stranger, otherBay} {
		if _, err := cli.ContainerInspect(ctx, keep); err != nil {
			t.Fatalf("gc touched a container that is not ours: %v", err)
		}
	}
	if r := b.Python(t, id, "2+2"); r["output"] != "4" {
		t.Fatalf("live session hurt: %v", r)
	}
}

func TestRunningSandboxSurvivesBayRestart(t *testing.T) {
	baytest.Skip(t)
	dir := t.TempDir()
	inst := model.NewID("test")
	b1 := baytest.Start(t, baytest.Options{DataDir: dir, InstanceID: inst})
	id := b1.CreateSandbox(t, nil)
	b1.Python(t, id, "kept = 'yes'")
	b1.Stop()
	b2 := baytest.Start(t, baytest.Options{DataDir: dir, InstanceID: inst})
	if r := b2.Python(t, id, "kept"); r["output"] != "'yes'" {
		t.Fatalf("variables lost across restart: %v", r)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 1 {
		t.Fatalf("%d containers after restart", n)
	}
}

func TestGCRacingExecsLosesNone(t *testing.T) {
	baytest.Skip(t)
	clk := newClock()
	b := baytest.Start(t, baytest.Options{App: app.Options{Now: clk.Now}})
	id := b.CreateSandbox(t, nil)
	b.Python(t, id, "n = 0")
	var failed atomic.Int32
	var wg sync.WaitGroup
	stop := make(chan struct{})
	gcDone := make(chan int)
	go func() { // GC keeps trying to reclaim while calls run; time keeps jumping past idle
		passes := 0
		defer func() { gcDone <- passes }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			clk.Add(40 * time.Minute)
			if _, err := doQuiet(b, "POST", "/v1/admin/gc/run", `{"tasks":["idle_session"]}`, map[string]string{"Authorization": "Bearer " + baytest.APIKey}); err == nil {
				passes++
			}
		}
	}()
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "import time; time.sleep(0.05); 1"}})
			if r.Status != 200 || r.JSON()["success"] != true {
				failed.Add(1)
				t.Logf("exec: %d %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if passes := <-gcDone; passes == 0 {
		t.Fatal("no GC pass ran during the calls")
	}
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of 50 calls lost to GC", n)
	}
}

func TestWarmPoolClaims(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{
		ConfigYAML: "profiles:\n  - id: python-default\n    image: ship:latest\n    warm_pool_size: 3\n    warm_rotate_ttl: 3600\n",
		Env: map[string]string{"BAY_WARM_POOL__ENABLED": "true", "BAY_WARM_POOL__INTERVAL_SECONDS": "3600",
			"BAY_SECURITY__ALLOW_ANONYMOUS": "true"}, // claims below are anonymous with X-Owner
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		avail, err := b.App.Store.WarmSandboxes(context.Background(), "python-default", model.WarmAvailable)
		if err != nil {
			t.Fatal(err)
		}
		if len(avail) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool filled to %d of 3", len(avail))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if items := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes"})["items"].([]any); len(items) != 0 {
		t.Fatalf("warm sandboxes listed: %v", items)
	}
	var wg sync.WaitGroup
	results := make([]map[string]any, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = b.Must(t, 201, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"ttl": 600},
				NoAuth: true, Headers: map[string]string{"X-Owner": "claimer"}})
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	ready := 0
	for _, r := range results {
		id := r["id"].(string)
		if seen[id] {
			t.Fatalf("sandbox %s handed out twice", id)
		}
		seen[id] = true
		if r["status"] == "ready" {
			ready++
		}
		if r["expires_at"] == nil {
			t.Fatalf("caller's TTL not applied: %v", r)
		}
	}
	if ready != 3 {
		t.Fatalf("%d warm claims, want 3 (and 7 normal creates)", ready)
	}
	for _, r := range results {
		if r["status"] == "ready" {
			id := r["id"].(string)
			out := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Body: map[string]any{"code": "1+1"},
				NoAuth: true, Headers: map[string]string{"X-Owner": "claimer"}})
			if out.Status != 200 || out.JSON()["output"] != "2" {
				t.Fatalf("claimed sandbox: %d %s", out.Status, out.Body)
			}
			if b.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id, Key: baytest.APIKey}).Status != 404 {
				t.Fatal("claimed sandbox still visible to its old owner")
			}
		}
	}
}
