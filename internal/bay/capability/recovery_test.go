package capability_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/capability"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/keylock"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/session/sessiontest"
	"github.com/shipyard/shipyard/internal/bay/store"
)

const owner = "o"

type env struct {
	svc *capability.Service
	drv *sessiontest.Driver
	st  *store.Store
	id  string
}

// newEnv wires a capability service over a real SQLite store, a fake driver
// whose containers are fake Ships, and the real runtime client.
func newEnv(t *testing.T, handle func(w http.ResponseWriter, r *http.Request) bool) *env {
	t.Helper()
	return newEnvWith(t, handle, runtime.Config{MaxResponseBytes: 4 << 20, MaxFileResponseBytes: 1 << 20})
}

func newEnvWith(t *testing.T, handle func(w http.ResponseWriter, r *http.Request) bool, rc runtime.Config) *env {
	t.Helper()
	st := sessiontest.Store(t)
	drv := sessiontest.NewDriver()
	drv.Handle = handle
	t.Cleanup(drv.Close)
	rt := runtime.New(rc)
	t.Cleanup(rt.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sm := session.New(st, drv, rt, keylock.New(), session.Config{
		InstanceID: "test", ReadyTimeout: 5 * time.Second, HealthTimeout: 100 * time.Millisecond,
		ProbeInterval: time.Minute, SingleInstance: true,
	}, log, session.Hooks{})
	cfg := config.Default()
	profiles := map[string]*session.Profile{"python-default": sessiontest.Profile("python-default", sessiontest.ShipSpec)}
	sb := sessiontest.Sandbox(t, st, owner, "python-default")
	svc := &capability.Service{Store: st, Sessions: sm, Runtime: rt, Config: cfg, Profiles: profiles, Log: log,
		WatchInterval: 100 * time.Millisecond}
	return &env{svc: svc, drv: drv, st: st, id: sb.ID}
}

func (e *env) python(t *testing.T) (*capability.PythonResult, error) {
	t.Helper()
	return e.svc.Python(context.Background(), owner, e.id, "1+1", 30, capability.Meta{}, time.Now().UTC())
}

func (e *env) mustPython(t *testing.T) *capability.PythonResult {
	t.Helper()
	r, err := e.python(t)
	if err != nil || !r.Success {
		t.Fatalf("python: %+v %v", r, err)
	}
	return r
}

func (e *env) container(t *testing.T) string {
	t.Helper()
	sb, err := e.st.SandboxByID(context.Background(), e.id)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := e.st.GetSession(context.Background(), sb.CurrentSessionID)
	if err != nil {
		t.Fatal(err)
	}
	return ss.ContainerID
}

func detail(status int, msg string) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/fs/read_file" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"detail": msg})
		return true
	}
}

// Finding 7: Ship's answers to a caller's mistake are the caller's 4xx and
// never put the (healthy) session in doubt: no re-check, no restart.
func TestShipClientErrorsAreClientErrors(t *testing.T) {
	huge := func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/fs/read_file" {
			return false
		}
		_, _ = w.Write([]byte(`{"content":"` + strings.Repeat("x", 2<<20) + `"}`))
		return true
	}
	cases := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request) bool
		want   errs.Code
	}{
		{"symlink out of the workspace", detail(403, "Access denied: path must be within workspace /workspace"), errs.Forbidden},
		{"directory read as a file", detail(400, "Path is not a file: d"), errs.Validation},
		{"non-utf-8 content", detail(400, "File is not valid utf-8 text: b"), errs.Validation},
		{"missing", detail(404, "File not found: m"), errs.FileNotFound},
		{"too large", detail(413, "File too large"), errs.TooLarge},
		{"runtime failure answers too", detail(500, "Failed to read file: EIO"), errs.ShipError},
		{"answer over the cap", huge, errs.ShipError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.handle)
			e.mustPython(t)
			probes := e.drv.Statuses.Load()
			_, err := e.svc.ReadFile(context.Background(), owner, e.id, "f", time.Now().UTC())
			if !errs.Is(err, tc.want) {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
			e.mustPython(t)
			if n := e.drv.Statuses.Load() - probes; n != 0 {
				t.Fatalf("the session was re-checked %d times after an answer from Ship", n)
			}
			if n := e.drv.Creates.Load(); n != 1 {
				t.Fatalf("%d containers created", n)
			}
		})
	}
}

func TestNamesNoFileSystemHoldsAreInvalidPaths(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range []string{strings.Repeat("n", 5000), "d/" + strings.Repeat("n", 256), strings.Repeat("d/", 2100)} {
		_, err := e.svc.ReadFile(context.Background(), owner, e.id, p, time.Now().UTC())
		if !errs.Is(err, errs.InvalidPath) {
			t.Fatalf("%d-byte path: %v", len(p), err)
		}
	}
	if n := e.drv.Creates.Load(); n != 0 {
		t.Fatalf("a session was started for a path no file system holds (%d)", n)
	}
}

// Finding 6: a runtime that stops answering (kill -STOP) while a call runs is
// noticed by the /health watchdog and replaced; the next call works.
func TestSIGSTOPpedRuntimeIsReplaced(t *testing.T) {
	e := newEnv(t, nil)
	e.mustPython(t)
	old := e.container(t)
	e.drv.Ship(old).Stop()
	start := time.Now()
	_, err := e.python(t)
	if !errs.Is(err, errs.ShipError) || !strings.Contains(err.Error(), "stopped responding") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("noticed after %v", d)
	}
	if e.container(t) == old || e.drv.Ship(old) != nil {
		t.Fatal("the wedged container was kept")
	}
	e.mustPython(t)
}

// A long call to a runtime that answers /health is left alone.
func TestLongCallIsNotMistakenForAWedge(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/ipython/exec" {
			time.Sleep(time.Second) // ten watchdog ticks
		}
		return false
	})
	e.mustPython(t)
	if n := e.drv.Creates.Load(); n != 1 {
		t.Fatalf("%d containers created", n)
	}
}

// Finding 9: a call right after the container died (within the probe
// interval, so the session is still trusted) rebuilds at once and succeeds;
// so does opening a terminal.
func TestDeadContainerIsRebuiltByTheNextCall(t *testing.T) {
	t.Run("python", func(t *testing.T) {
		e := newEnv(t, nil)
		e.mustPython(t)
		old := e.container(t)
		e.drv.Kill(old)
		// A killed container's connections close at once; do not race the
		// transport noticing (a POST on a connection closing under it is
		// not repeated: it may have reached Ship).
		e.svc.Runtime.Close()
		start := time.Now()
		e.mustPython(t)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v", d)
		}
		if e.container(t) == old {
			t.Fatal("not replaced")
		}
	})
	t.Run("terminal", func(t *testing.T) {
		e := newEnv(t, nil)
		e.mustPython(t)
		old := e.container(t)
		e.drv.Kill(old)
		tg, err := e.svc.Terminal(context.Background(), owner, e.id, time.Now().UTC())
		if err != nil {
			t.Fatal(err)
		}
		if e.container(t) == old || tg.Endpoint != e.drv.Ship(e.container(t)).URL() {
			t.Fatalf("terminal target %s is not the new session", tg.Endpoint)
		}
	})
	t.Run("terminal, wedged", func(t *testing.T) {
		e := newEnv(t, nil)
		e.mustPython(t)
		old := e.container(t)
		e.drv.Ship(old).Stop()
		tg, err := e.svc.Terminal(context.Background(), owner, e.id, time.Now().UTC())
		if err != nil {
			t.Fatal(err)
		}
		if e.container(t) == old || tg.Endpoint != e.drv.Ship(e.container(t)).URL() {
			t.Fatalf("terminal target %s is not the new session", tg.Endpoint)
		}
	})
}

// Finding 9: a container that vanished leaves a connection pending (its
// address no longer answers); Bay asks the engine after a short grace instead
// of waiting out the connect timeout, rebuilds, and runs the call.
func TestPendingConnectAsksTheEngine(t *testing.T) {
	var mu sync.Mutex
	dead := map[string]bool{}
	release := make(chan struct{})
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		d := dead[addr]
		mu.Unlock()
		if d { // a host that never answers the SYN (announced as net.Dialer does)
			if tr := httptrace.ContextClientTrace(ctx); tr != nil && tr.ConnectStart != nil {
				tr.ConnectStart(network, addr)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-release:
				return nil, errors.New("unreachable")
			}
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	e := newEnvWith(t, nil, runtime.Config{ConnectTimeout: time.Minute, DialContext: dial})
	t.Cleanup(func() { close(release) })
	e.mustPython(t)
	old := e.container(t)
	mu.Lock()
	dead[strings.TrimPrefix(e.drv.Ship(old).URL(), "http://")] = true
	mu.Unlock()
	e.drv.Kill(old)
	e.svc.Runtime.Close()             // no pooled connection to the old address
	e.svc.WatchInterval = time.Minute // only the connect grace can notice
	start := time.Now()
	e.mustPython(t)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	if e.container(t) == old {
		t.Fatal("not replaced")
	}
}

// Finding 5: history rows are capped; the caller still gets the whole output.
func TestHistoryRowsAreCapped(t *testing.T) {
	big := strings.Repeat("y", 900<<10) // twice under the runtime cap (4 MiB here), over a 512 KiB history cap
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/ipython/exec" {
			return false
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "execution_count": 1,
			"output": map[string]any{"text": big}, "error": big})
		return true
	})
	e.svc.MaxHistoryBytes = 512 << 10
	r, err := e.python(t)
	if err != nil {
		t.Fatal(err)
	}
	if r.Output != big {
		t.Fatalf("the response was cut: %d bytes", len(r.Output))
	}
	x, err := e.st.GetExecution(context.Background(), e.id, r.ExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]*string{"output": x.Output, "error": x.Error} {
		if f == nil || len(*f) > 512<<10+100 || !strings.Contains(*f, "[truncated in history: 524288 of 921600 bytes kept]") {
			n := -1
			if f != nil {
				n = len(*f)
			}
			t.Fatalf("history %s: %d bytes", name, n)
		}
	}
}

// The sandbox row a call read serves the next calls' checks for a moment; it
// must never let through a call that a fresh read refuses. A sandbox deleted
// right after a call: the next call is 404 (the session lookup reads the row).
// A sandbox whose TTL ran out between two calls: 409. A TTL extended just
// before the old deadline: the call after that deadline goes through.
func TestRememberedSandboxRowRefusesWhatTheDatabaseRefuses(t *testing.T) {
	ctx := context.Background()
	t.Run("deleted", func(t *testing.T) {
		e := newEnv(t, nil)
		e.mustPython(t)
		unlock, err := e.svc.Sessions.Lock(ctx, e.id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.SoftDeleteSandbox(ctx, e.id, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		unlock()
		if err := e.svc.Sessions.DestroyAll(ctx, e.id); err != nil {
			t.Fatal(err)
		}
		_, err = e.python(t)
		if ee, ok := errs.As(err); !ok || ee.Code != errs.NotFound {
			t.Fatalf("call after delete: %v, want not_found", err)
		}
	})
	t.Run("expired, then extended", func(t *testing.T) {
		e := newEnv(t, nil)
		now := time.Now().UTC()
		soon := now.Add(300 * time.Millisecond)
		if err := e.st.SetExpiresAt(ctx, e.id, &soon); err != nil {
			t.Fatal(err)
		}
		e.mustPython(t)
		call := func(at time.Time) error {
			_, err := e.svc.Python(ctx, owner, e.id, "1+1", 30, capability.Meta{}, at)
			return err
		}
		later := soon.Add(100 * time.Millisecond) // past the remembered deadline
		if err := call(later); err == nil {
			t.Fatal("a call after the TTL ran out went through")
		} else if ee, ok := errs.As(err); !ok || ee.Code != errs.SandboxExpired {
			t.Fatalf("call after the TTL: %v, want sandbox_expired", err)
		}
		extended := soon.Add(time.Hour)
		if err := e.st.SetExpiresAt(ctx, e.id, &extended); err != nil {
			t.Fatal(err)
		}
		if err := call(later); err != nil {
			t.Fatalf("call after the extension: %v", err)
		}
	})
}
