package bay_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/test/baytest"
)

// engineProxy stands between Bay and the Docker Engine's socket, so that a test
// can take the engine away (listener closed, every connection cut, socket file
// gone: what Bay sees while dockerd restarts) and bring it back, without
// touching the real daemon other tests use.
type engineProxy struct {
	path, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
	wg           sync.WaitGroup
}

func newEngineProxy(t *testing.T) *engineProxy {
	t.Helper()
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		target = strings.TrimPrefix(h, "unix://")
	}
	dir, err := os.MkdirTemp("", "bay-engine-")
	if err != nil {
		t.Fatal(err)
	}
	p := &engineProxy{path: filepath.Join(dir, "docker.sock"), target: target, conns: map[net.Conn]bool{}}
	p.up(t)
	t.Cleanup(func() { p.down(); p.wg.Wait(); os.RemoveAll(dir) })
	return p
}

func (p *engineProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.pipe(c) }()
		}
	}()
}

func (p *engineProxy) pipe(c net.Conn) {
	e, err := net.Dial("unix", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[e] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(e, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, e); done <- struct{}{} }()
	<-done
	c.Close()
	e.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, e)
	p.mu.Unlock()
}

// down takes the engine away: no listener, no socket file, open connections cut.
func (p *engineProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	_ = os.Remove(p.path)
}

// The Docker Engine unreachable for a few seconds: calls that need it get a
// 503 with Retry-After and a JSON error naming the engine, promptly; calls to
// a running sandbox go on; everything works again once it is back.
func TestEngineUnreachableIsA503(t *testing.T) {
	baytest.Skip(t)
	p := newEngineProxy(t)
	b := baytest.Start(t, baytest.Options{Env: map[string]string{"BAY_DRIVER__DOCKER__SOCKET": "unix://" + p.path}})
	running := b.CreateSandbox(t, nil)
	b.Python(t, running, "x = 41")
	cold := b.CreateSandbox(t, nil) // never started

	p.down()
	unavailable := func(name string, r *baytest.Response, took time.Duration) {
		t.Helper()
		if r.Status != http.StatusServiceUnavailable || r.Code() != "driver_unavailable" || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s while the engine is away: %d %s (Retry-After %q)", name, r.Status, r.Body, r.Header.Get("Retry-After"))
		}
		if strings.Contains(string(r.Body), "docker.sock") || strings.Contains(string(r.Body), "dial") {
			t.Errorf("%s: the answer leaks the engine's address: %s", name, r.Body)
		}
		if took > 10*time.Second {
			t.Errorf("%s took %s", name, took)
		}
	}
	start := time.Now()
	r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{}})
	unavailable("create", r, time.Since(start))
	start = time.Now()
	r = b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + cold + "/python/exec", Body: map[string]any{"code": "1+1"}})
	unavailable("first call of a sandbox", r, time.Since(start))
	// A session already running needs no engine to serve a call.
	if r := b.Python(t, running, "x + 1"); r["output"] != "42" {
		t.Errorf("running sandbox while the engine is away: %v", r)
	}
	if h := b.Do(t, baytest.Req{Method: "GET", Path: "/health", NoAuth: true}); h.Status != http.StatusServiceUnavailable {
		t.Errorf("/health while the engine is away: %d %s", h.Status, h.Body)
	}

	p.up(t)
	// Back: everything works, with no manual step.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + cold + "/python/exec", Body: map[string]any{"code": "1+1"}})
		if r.Status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) || (r.Status != http.StatusServiceUnavailable) {
			t.Fatalf("first call after the engine came back: %d %s", r.Status, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.CreateSandbox(t, nil)
	if r := b.Python(t, running, "x + 1"); r["output"] != "42" {
		t.Errorf("running sandbox after the engine came back: %v", r)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+cold)); n != 1 {
		t.Errorf("%d containers of the sandbox whose first start failed, want 1", n)
	}
}

// A sandbox's container killed while a cell runs: the call ends promptly with
// a clear error (not a 500, not a hang), and the next call works on a new
// container with the workspace intact.
func TestContainerKilledMidExec(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files", Body: map[string]any{"path": "keep", "content": "k"}})
	b.Python(t, id, "1")
	list := containersOf(t, "bay.sandbox_id="+id)
	if len(list) != 1 {
		t.Fatalf("%d containers", len(list))
	}
	type answer struct {
		r    *baytest.Response
		took time.Duration
	}
	done := make(chan answer, 1)
	go func() {
		start := time.Now()
		r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec",
			Body: map[string]any{"code": "import time\nprint('started', flush=True)\ntime.sleep(30)\nprint('finished')"}})
		done <- answer{r, time.Since(start)}
	}()
	time.Sleep(1500 * time.Millisecond)
	if err := baytest.Docker(t).ContainerKill(context.Background(), list[0].ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	var a answer
	select {
	case a = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the call whose container was killed did not end")
	}
	body := string(a.r.Body)
	switch {
	case a.r.Status >= 500 && a.r.Status != http.StatusInternalServerError && a.r.Code() != "":
		// A clear error: Ship stopped answering mid-call.
	case a.r.Status == http.StatusOK && strings.Contains(body, `"success":false`):
		// The call's answer says it did not complete.
	default:
		t.Fatalf("call whose container was killed: %d %s", a.r.Status, body)
	}
	if strings.Contains(body, "finished") {
		t.Fatalf("the cell reports finishing in a killed container: %s", body)
	}
	t.Logf("killed mid-exec: %d %s after %s", a.r.Status, a.r.Code(), a.took.Round(time.Millisecond))
	if r := b.Python(t, id, "print(open('keep').read())"); !strings.Contains(r["output"].(string), "k") {
		t.Fatalf("next call: %v", r)
	}
	if n := len(containersOf(t, "bay.sandbox_id="+id)); n != 1 {
		t.Fatalf("%d containers after the next call", n)
	}
}
