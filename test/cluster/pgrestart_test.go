package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// privatePG is a PostgreSQL server of the test's own (initdb in a temp dir,
// a loopback port), so that restarting it disturbs no other test.
type privatePG struct {
	bin, data, sock string
	port            int
	runAs           []string // prefix running a command as the server's user
}

func pgBinDir(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	t.Skip("PostgreSQL server binaries not found (scripts/pg.sh installs them)")
	return ""
}

func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	pg := &privatePG{bin: pgBinDir(t), port: freePort(t)}
	dir, err := os.MkdirTemp("", "bay-cluster-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg.data, pg.sock = filepath.Join(dir, "data"), filepath.Join(dir, "run")
	if err := os.MkdirAll(pg.sock, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 { // initdb and postgres refuse to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root and there is no postgres user to run a server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{dir, pg.sock} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		pg.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	pg.run(t, filepath.Join(pg.bin, "initdb"), "-D", pg.data, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
		"--auth=trust")
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"+
		"max_connections = 200\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n", pg.port, pg.sock)
	pg.run(t, "sh", "-c", fmt.Sprintf("cat >> %s/postgresql.conf <<'EOF'%sEOF", pg.data, conf))
	pg.ctl(t, "start")
	t.Cleanup(func() { pg.ctlQuiet("stop", "-m", "immediate") })
	return pg
}

func (pg *privatePG) command(name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, pg.runAs...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	return cmd
}

func (pg *privatePG) run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := pg.command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func (pg *privatePG) ctl(t *testing.T, action string, args ...string) {
	t.Helper()
	pg.run(t, filepath.Join(pg.bin, "pg_ctl"), append([]string{"-D", pg.data, "-l", filepath.Join(pg.data, "server.log"),
		"-w", "-t", "60", action}, args...)...)
}

func (pg *privatePG) ctlQuiet(action string, args ...string) {
	_ = pg.command(filepath.Join(pg.bin, "pg_ctl"), append([]string{"-D", pg.data, "-w", "-t", "60", action}, args...)...).Run()
}

func (pg *privatePG) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// TestPostgresRestartUnderLoad: the database goes away for a few seconds
// while three replicas serve creates and execs. Every answer is a success or a
// 503 with Retry-After and a JSON error naming the database; none hangs; the
// replicas serve fully once it is back, and every create that succeeded (with
// its idempotency key retried through the outage) made exactly one sandbox.
func TestPostgresRestartUnderLoad(t *testing.T) {
	skip(t)
	pg := startPrivatePG(t)
	c := newCluster(t, pg.dsn(), 3)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	defer func() {
		if t.Failed() {
			c.dumpLogs()
		}
	}()

	ids := make([]string, 3)
	for i := range ids {
		res := c.createSandbox(ctx, i, "")
		if res.status != http.StatusCreated {
			t.Fatalf("create: %s", res)
		}
		ids[i], _ = res.json()["id"].(string)
		if res := c.python(ctx, i, ids[i], "x = 1"); res.status != http.StatusOK {
			t.Fatalf("warm-up exec: %s", res)
		}
	}

	type sample struct {
		at   time.Time
		what string
		res  result
	}
	var (
		mu      sync.Mutex
		samples []sample
		created = map[string]string{} // idempotency key → sandbox id
	)
	record := func(what string, res result) {
		mu.Lock()
		samples = append(samples, sample{time.Now(), what, res})
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				via := w + n
				if w%3 == 0 {
					// A create, retried with its key until it succeeds.
					key := fmt.Sprintf("pg-%d-%d", w, n)
					for {
						res := c.createSandbox(ctx, via, key)
						record("create", res)
						if res.status == http.StatusCreated {
							id, _ := res.json()["id"].(string)
							mu.Lock()
							created[key] = id
							mu.Unlock()
							time.Sleep(100 * time.Millisecond) // creates make volumes: keep their number small
							break
						}
						if ctx.Err() != nil {
							return
						}
						time.Sleep(200 * time.Millisecond)
						via++
					}
					continue
				}
				record("exec", c.python(ctx, via, ids[(w+n)%len(ids)], "x += 1; print(x)"))
				record("get", c.balanced(ctx, via, "GET", "/v1/sandboxes/"+ids[n%len(ids)], nil, nil))
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}

	time.Sleep(2 * time.Second)
	down := time.Now()
	pg.ctl(t, "stop", "-m", "fast")
	t.Logf("PostgreSQL stopped")
	time.Sleep(4 * time.Second)
	pg.ctl(t, "start")
	up := time.Now()
	t.Logf("PostgreSQL started again after %s", up.Sub(down).Round(time.Millisecond))
	// Full service within a few seconds of its return, then some more load.
	time.Sleep(8 * time.Second)
	close(stop)
	wg.Wait()

	const recovery = 5 * time.Second
	var ok, unavailable, during int
	for _, s := range samples {
		r := s.res
		switch {
		case r.err != nil:
			t.Errorf("%s at %s: %v", s.what, s.at.Sub(down).Round(time.Millisecond), r.err)
		case r.status < 300:
			ok++
		case r.status == http.StatusServiceUnavailable:
			unavailable++
			if s.at.Before(down) || s.at.After(up.Add(recovery)) {
				t.Errorf("%s answered 503 outside the outage (at %s from the stop): %s", s.what, s.at.Sub(down).Round(time.Millisecond), r)
			}
			if r.header.Get("Retry-After") == "" {
				t.Errorf("%s: 503 without Retry-After: %s", s.what, r)
			}
			if code := r.code(); code != "database_unavailable" && code != "session_not_ready" {
				t.Errorf("%s: 503 with code %q: %s", s.what, code, r)
			}
			if strings.Contains(string(r.body), "SQLSTATE") || strings.Contains(string(r.body), "dial") {
				t.Errorf("%s: 503 leaks a driver message: %s", s.what, r)
			}
		default:
			t.Errorf("%s at %s from the stop: %s", s.what, s.at.Sub(down).Round(time.Millisecond), r)
		}
		if r.took > 10*time.Second {
			t.Errorf("%s took %s", s.what, r.took)
		}
		if s.at.After(down) && s.at.Before(up) {
			during++
		}
	}
	t.Logf("%d answers: %d ok, %d 503 (%d sent while the database was down)", len(samples), ok, unavailable, during)
	if unavailable == 0 {
		t.Error("no 503 at all: the outage was not observed")
	}
	var tail []sample
	for _, s := range samples {
		if s.at.After(up.Add(recovery)) {
			tail = append(tail, s)
		}
	}
	if len(tail) < 10 {
		t.Errorf("only %d calls after recovery", len(tail))
	}

	// Row counts: one sandbox per successful key, no duplicates, nothing lost.
	seen := map[string]string{}
	for key, id := range created {
		if other, dup := seen[id]; dup {
			t.Errorf("keys %s and %s made the same sandbox", key, other)
		}
		seen[id] = key
	}
	// One window stays: a create whose COMMIT the server cut while shutting
	// down may have committed without saying so; the client's retry with its
	// key then creates again (the key was released with the failure). Each such
	// extra sandbox must match a create that failed at its commit.
	ambiguous := c.ambiguousCreateCommits()
	got, want := c.count(t, `SELECT COUNT(*) FROM sandboxes WHERE deleted_at IS NULL`), len(ids)+len(created)
	if got < want || got > want+ambiguous {
		t.Errorf("%d live sandboxes, want %d (%d before + %d created; %d creates failed at their commit)",
			got, want, len(ids), len(created), ambiguous)
	}
	t.Logf("%d sandboxes created through the outage, %d extra from creates cut at their commit", len(created), got-want)
	if n := c.count(t, `SELECT COUNT(*) FROM idempotency_keys WHERE status_code = 201`); n != len(created) {
		t.Errorf("%d completed idempotency keys, want %d", n, len(created))
	}
	if n := c.count(t, `SELECT COUNT(*) FROM sandboxes sb WHERE NOT EXISTS (SELECT 1 FROM cargos c WHERE c.id = sb.cargo_id)`); n != 0 {
		t.Errorf("%d sandboxes without their cargo row", n)
	}
	for _, id := range ids {
		if res := c.python(ctx, 0, id, "print('alive')"); res.status != http.StatusOK {
			t.Errorf("exec after recovery: %s", res)
		}
	}
}

// ambiguousCreateCommits counts the POST /v1/sandboxes requests, on every
// replica, that failed at their transaction's COMMIT.
func (c *cluster) ambiguousCreateCommits() int {
	n := 0
	for _, r := range c.reps {
		failed := map[string]bool{}
		for _, line := range r.logLines(`store: commit:`) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil {
				if id, _ := m["request_id"].(string); id != "" {
					failed[id] = true
				}
			}
		}
		for _, line := range r.logLines(`"path":"/v1/sandboxes"`) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "request" && m["method"] == "POST" {
				if id, _ := m["request_id"].(string); failed[id] {
					n++
				}
			}
		}
	}
	return n
}
