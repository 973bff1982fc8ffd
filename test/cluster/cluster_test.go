// Package cluster runs several real `bay serve` processes on one PostgreSQL
// database and the real Docker Engine, and checks that they behave as one
// system: concurrent first calls start one container per sandbox, an
// idempotency key holds across replicas, a replica killed mid-load loses
// nothing the others cannot finish or clean up, and a PostgreSQL restart
// costs only 503s while it is down.
//
// Gated by SHIPYARD_E2E=1 and SHIPYARD_TEST_PG_DSN (make test sets both).
// SHIPYARD_BAY_BIN names a bay binary to use instead of building one.
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" for database/sql

	"github.com/shipyard/shipyard/internal/bay/store/storetest"
	"github.com/shipyard/shipyard/test/baytest"
)

// apiKey is the configured key of every replica (the default owner's, admin).
const apiKey = baytest.APIKey

func skip(t *testing.T) string {
	t.Helper()
	baytest.Skip(t)
	dsn := strings.TrimSpace(os.Getenv("SHIPYARD_TEST_PG_DSN"))
	if dsn == "" {
		t.Skip("cluster test: set SHIPYARD_TEST_PG_DSN (scripts/pg.sh prints one)")
	}
	return dsn
}

// TestMain removes the bay binary the tests built, if they built one.
func TestMain(m *testing.M) {
	code := m.Run()
	if bayBin != "" {
		os.RemoveAll(filepath.Dir(bayBin))
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	bayBin    string
	buildErr  error
)

// bay returns the bay binary: $SHIPYARD_BAY_BIN, else one built once into a temp dir.
func bay(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SHIPYARD_BAY_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bay-cluster-bin-")
		if err != nil {
			buildErr = err
			return
		}
		bayBin = filepath.Join(dir, "bay")
		// The flags of `make bay`, so that its build cache serves this one too.
		cmd := exec.Command("go", "build", "-trimpath", "-o", bayBin, "github.com/shipyard/shipyard/cmd/bay")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build bay: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bayBin
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// cluster is N bay processes sharing one database and one instance id.
type cluster struct {
	t        *testing.T
	dsn      string
	instance string
	dir      string
	reps     []*replica
	extraEnv []string
	db       *sql.DB
	http     *http.Client
}

type replica struct {
	id   string
	url  string
	port int
	log  string

	mu   sync.Mutex // a replica may be restarted while requests look at it
	cmd  *exec.Cmd
	done chan struct{}
}

// proc returns the replica's current process and the channel closed when it exits.
func (r *replica) proc() (*exec.Cmd, chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd, r.done
}

// newCluster starts n replicas; env adds BAY_* settings (KEY=value) shared by all.
func newCluster(t *testing.T, dsn string, n int, env ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dsn: dsn, instance: "cluster-" + randHex(4), dir: t.TempDir(), extraEnv: env,
		http: &http.Client{Timeout: 2 * time.Minute}}
	t.Cleanup(func() {
		for _, r := range c.reps {
			r.stop()
		}
		baytest.Sweep(t, c.instance)
	})
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c.db = db
	for i := 0; i < n; i++ {
		port := freePort(t)
		c.reps = append(c.reps, &replica{id: fmt.Sprintf("r%d", i), port: port,
			url: fmt.Sprintf("http://127.0.0.1:%d", port), log: filepath.Join(c.dir, fmt.Sprintf("r%d.log", i))})
	}
	// Start them together: several replicas on an empty database migrate it once.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, r := range c.reps {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.start(r) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.dumpLogs()
		t.Fatal(err)
	}
	return c
}

// env is the configuration every replica shares, plus its own id and port.
func (c *cluster) env(r *replica) []string {
	cfg := filepath.Join(c.dir, "config.yaml")
	_ = os.WriteFile(cfg, nil, 0o600)
	return append(append(os.Environ(),
		"BAY_CONFIG_FILE="+cfg,
		"BAY_DATA_DIR="+c.dir,
		"BAY_API_KEY="+apiKey,
		"BAY_DATABASE__URL="+c.dsn,
		"BAY_SERVER__HOST=127.0.0.1",
		fmt.Sprintf("BAY_SERVER__PORT=%d", r.port),
		"BAY_GC__INSTANCE_ID="+c.instance,
		"BAY_REPLICA__ID="+r.id,
		// Short leases so a killed replica's claims and duties lapse within the test.
		"BAY_REPLICA__HEARTBEAT_INTERVAL_SECONDS=1",
		"BAY_REPLICA__LEASE_SECONDS=3",
		"BAY_GC__ENABLED=true",
		"BAY_GC__INTERVAL_SECONDS=5",
		"BAY_GC__ORPHAN_CONTAINER__ENABLED=true",
		"BAY_WARM_POOL__ENABLED=false",
		"BAY_SESSION__READY_TIMEOUT_SECONDS=60",
		"BAY_LOG__LEVEL=info",
	), c.extraEnv...)
}

func (c *cluster) start(r *replica) error {
	f, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bay(c.t), "serve")
	cmd.Env = c.env(r)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("replica %s exited at start (log %s)", r.id, r.log)
		default:
		}
		if resp, err := c.http.Get(r.url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("replica %s not healthy within 60s", r.id)
}

// kill SIGKILLs the replica (no shutdown of any kind).
func (r *replica) kill() {
	if cmd, done := r.proc(); cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill()
		<-done
	}
}

// stop shuts the replica down gracefully (SIGTERM), then kills it.
func (r *replica) stop() {
	cmd, done := r.proc()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		r.kill()
	}
}

func (r *replica) alive() bool {
	_, done := r.proc()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func (c *cluster) dumpLogs() {
	keep := os.Getenv("SHIPYARD_CLUSTER_LOGS") // a directory to copy the replicas' logs to
	for _, r := range c.reps {
		if r.log == "" {
			continue
		}
		data, _ := os.ReadFile(r.log)
		if keep != "" {
			_ = os.MkdirAll(keep, 0o755)
			_ = os.WriteFile(filepath.Join(keep, r.id+".log"), data, 0o644)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		c.t.Logf("---- %s (last lines) ----\n%s", r.id, strings.Join(lines, "\n"))
	}
}

// logLines returns the replica's log lines containing s.
func (r *replica) logLines(s string) []string {
	f, err := os.Open(r.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// result is one HTTP exchange.
type result struct {
	status int
	header http.Header
	body   []byte
	err    error // transport error (a killed replica, a refused connection)
	took   time.Duration
}

func (r result) json() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.body, &m)
	return m
}

func (r result) code() string {
	e, _ := r.json()["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r result) String() string {
	if r.err != nil {
		return "transport error: " + r.err.Error()
	}
	b := r.body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("%d %s", r.status, b)
}

func (c *cluster) do(ctx context.Context, r *replica, method, path string, body any, hdr map[string]string) result {
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, rd)
	if err != nil {
		return result{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return result{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: data, took: time.Since(start)}
}

// balanced sends the request like a load balancer would: to replica `first`,
// and on a transport error (the replica died) to the next live one.
func (c *cluster) balanced(ctx context.Context, first int, method, path string, body any, hdr map[string]string) result {
	var res result
	for i := 0; i < 2*len(c.reps); i++ {
		r := c.reps[(first+i)%len(c.reps)]
		if !r.alive() {
			continue
		}
		res = c.do(ctx, r, method, path, body, hdr)
		if res.err == nil || ctx.Err() != nil {
			return res
		}
	}
	return res
}

func (c *cluster) createSandbox(ctx context.Context, via int, key string) result {
	hdr := map[string]string{}
	if key != "" {
		hdr["Idempotency-Key"] = key
	}
	return c.balanced(ctx, via, "POST", "/v1/sandboxes", map[string]any{"profile": "python-default"}, hdr)
}

func (c *cluster) python(ctx context.Context, via int, id, code string) result {
	return c.balanced(ctx, via, "POST", "/v1/sandboxes/"+id+"/python/exec", map[string]any{"code": code}, nil)
}

// dockerState counts what the engine has for the cluster's instance id.
type dockerState struct {
	containers map[string][]string // sandbox id → container ids
	sessions   map[string]string   // container id → session id
	volumes    map[string]bool     // volume names
}

func (c *cluster) docker(t *testing.T) dockerState {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.ContainerList(t.Context(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "bay.instance_id="+c.instance))})
	if err != nil {
		t.Fatal(err)
	}
	st := dockerState{containers: map[string][]string{}, sessions: map[string]string{}, volumes: map[string]bool{}}
	for _, ct := range list {
		sb := ct.Labels["bay.sandbox_id"]
		st.containers[sb] = append(st.containers[sb], ct.ID)
		st.sessions[ct.ID] = ct.Labels["bay.session_id"]
	}
	vols, err := cli.VolumeList(t.Context(), volume.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", "bay.instance_id="+c.instance))})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols.Volumes {
		st.volumes[v.Name] = true
	}
	return st
}

func (c *cluster) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := c.db.QueryRowContext(t.Context(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (c *cluster) strings(t *testing.T, q string, args ...any) []string {
	t.Helper()
	rows, err := c.db.QueryContext(t.Context(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// gcPass runs one GC pass through the admin route of a live replica, retrying
// while another replica holds the lease (423).
func (c *cluster) gcPass(t *testing.T, ctx context.Context) {
	t.Helper()
	for {
		for i, r := range c.reps {
			if !r.alive() {
				continue
			}
			res := c.do(ctx, r, "POST", "/v1/admin/gc/run", map[string]any{}, nil)
			if res.status == http.StatusOK {
				return
			}
			if res.status != http.StatusLocked {
				t.Fatalf("gc run on replica %d: %s", i, res)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("no GC pass could run: the lease stayed held")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkConsistent asserts that records and engine objects match: every
// container has its session row and every live session its container, every
// volume its cargo row and every cargo of a started sandbox its volume, and
// no session is left pending or starting.
func (c *cluster) checkConsistent(t *testing.T) {
	t.Helper()
	ds := c.docker(t)
	sessions := map[string]string{} // session id → state
	rows, err := c.db.QueryContext(t.Context(), `SELECT id, observed_state FROM sessions`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			t.Fatal(err)
		}
		sessions[id] = st
	}
	rows.Close()
	for ctr, sid := range ds.sessions {
		if _, ok := sessions[sid]; !ok {
			t.Errorf("container %.12s of session %s has no session row", ctr, sid)
		}
	}
	byContainerSession := map[string]bool{}
	for _, sid := range ds.sessions {
		byContainerSession[sid] = true
	}
	for sid, st := range sessions {
		switch st {
		case "pending", "starting":
			t.Errorf("session %s is still %s after the lease expired and a GC pass", sid, st)
		case "running":
			if !byContainerSession[sid] {
				t.Errorf("running session %s has no container", sid)
			}
		}
	}
	refs := map[string]bool{}
	for _, ref := range c.strings(t, `SELECT driver_ref FROM cargos`) {
		refs[ref] = true
	}
	for v := range ds.volumes {
		if !refs[v] {
			t.Errorf("volume %s has no cargo record", v)
		}
	}
	// A cargo recorded by a create killed before its volume existed is legal
	// (Docker makes the volume at first mount); a started sandbox's is not.
	for _, ref := range c.strings(t, `SELECT c.driver_ref FROM cargos c JOIN sandboxes sb ON sb.cargo_id = c.id
		WHERE sb.deleted_at IS NULL AND sb.current_session_id IS NOT NULL AND sb.current_session_id <> ''`) {
		if !ds.volumes[ref] {
			t.Errorf("cargo volume %s of a started sandbox is missing", ref)
		}
	}
	if n := c.count(t, `SELECT COUNT(*) FROM sessions ss WHERE NOT EXISTS (
		SELECT 1 FROM sandboxes sb WHERE sb.id = ss.sandbox_id AND sb.deleted_at IS NULL)`); n != 0 {
		t.Errorf("%d sessions of deleted or missing sandboxes", n)
	}
}

// TestReplicasAsOneSystem: three replicas, one database, the real engine.
func TestReplicasAsOneSystem(t *testing.T) {
	base := skip(t)
	c := newCluster(t, storetest.FreshDatabase(t, base, "cluster").String(), 3)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	defer func() {
		if t.Failed() {
			c.dumpLogs()
		}
	}()

	// Every replica says who it is.
	for _, r := range c.reps {
		h := c.do(ctx, r, "GET", "/health", nil, nil).json()
		if h["replica_id"] != r.id || h["instance_id"] != c.instance {
			t.Fatalf("/health of %s: %v", r.id, h)
		}
	}

	t.Run("concurrent first calls start one container per sandbox", func(t *testing.T) {
		const sandboxes, calls = 10, 100
		ids := make([]string, sandboxes)
		for i := range ids {
			res := c.createSandbox(ctx, i, "")
			if res.status != http.StatusCreated {
				t.Fatalf("create: %s", res)
			}
			ids[i], _ = res.json()["id"].(string)
		}
		results := make([]result, calls)
		var wg sync.WaitGroup
		startGate := make(chan struct{})
		for i := 0; i < calls; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-startGate
				results[i] = c.python(ctx, i%len(c.reps), ids[i%sandboxes], "print(6*7)")
			}()
		}
		begin := time.Now()
		close(startGate)
		wg.Wait()
		t.Logf("100 first calls over 10 sandboxes on 3 replicas: %s", time.Since(begin).Round(time.Millisecond))
		for i, res := range results {
			if res.status != http.StatusOK || !strings.Contains(string(res.body), "42") {
				t.Errorf("call %d (replica %d, sandbox %d): %s", i, i%3, i%sandboxes, res)
			}
		}
		ds := c.docker(t)
		for _, id := range ids {
			if n := len(ds.containers[id]); n != 1 {
				t.Errorf("sandbox %s has %d containers, want 1", id, n)
			}
		}
		if n := c.count(t, `SELECT COUNT(*) FROM sessions`); n != sandboxes {
			t.Errorf("%d session rows, want %d", n, sandboxes)
		}
		// The waiting replicas used the session another one started.
		waited := 0
		for _, r := range c.reps {
			waited += len(r.logLines(`"msg":"taking over a lapsed session start"`))
		}
		if waited != 0 {
			t.Errorf("%d lapsed-start takeovers while every replica lived", waited)
		}
	})

	t.Run("idempotency key across replicas", func(t *testing.T) {
		first := c.createSandbox(ctx, 0, "cluster-key-1")
		if first.status != http.StatusCreated {
			t.Fatalf("create: %s", first)
		}
		replay := c.createSandbox(ctx, 1, "cluster-key-1")
		if replay.status != http.StatusCreated || replay.json()["id"] != first.json()["id"] {
			t.Fatalf("replay on another replica: %s, want the first answer %s", replay, first)
		}
		// Six requests with one new key, two per replica, at once: one sandbox.
		res := make([]result, 6)
		var wg sync.WaitGroup
		for i := range res {
			wg.Add(1)
			go func() { defer wg.Done(); res[i] = c.createSandbox(ctx, i, "cluster-key-2") }()
		}
		wg.Wait()
		id := res[0].json()["id"]
		for i, r := range res {
			if r.status != http.StatusCreated || r.json()["id"] != id {
				t.Errorf("racing create %d: %s (first: %v)", i, r, id)
			}
		}
		before := c.count(t, `SELECT COUNT(*) FROM sandboxes`)
		_ = c.createSandbox(ctx, 2, "cluster-key-2")
		if after := c.count(t, `SELECT COUNT(*) FROM sandboxes`); after != before {
			t.Errorf("a replayed key made a sandbox: %d → %d", before, after)
		}
	})

	t.Run("a replica killed mid-load", func(t *testing.T) {
		// Workers create sandboxes (each with its own idempotency key, retried on
		// another replica when theirs dies, as a client would) and run code in
		// them; replica 2 is SIGKILLed while they run.
		const workers, rounds = 8, 2
		type outcome struct {
			ids     []string
			deleted []string
			errs    []string
		}
		outs := make([]outcome, workers)
		var wg sync.WaitGroup
		killAt := make(chan struct{})
		var once sync.Once
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := &outs[w]
				for round := 0; round < rounds; round++ {
					key := fmt.Sprintf("kill-%d-%d", w, round)
					var res result
					for attempt := 0; attempt < 60; attempt++ {
						res = c.createSandbox(ctx, w+attempt, key)
						if res.status == http.StatusCreated {
							break
						}
						time.Sleep(250 * time.Millisecond) // 503 / 409 in progress: retry
					}
					if res.status != http.StatusCreated {
						o.errs = append(o.errs, "create: "+res.String())
						continue
					}
					id, _ := res.json()["id"].(string)
					o.ids = append(o.ids, id)
					if w == 0 && round == 0 {
						once.Do(func() { close(killAt) })
					}
					for attempt := 0; attempt < 60; attempt++ {
						res = c.python(ctx, w+round+attempt, id, "print(sum(range(10)))")
						if res.status == http.StatusOK {
							break
						}
						time.Sleep(250 * time.Millisecond)
					}
					if res.status != http.StatusOK || !strings.Contains(string(res.body), "45") {
						o.errs = append(o.errs, "exec: "+res.String())
					}
					if (w+round)%2 == 1 {
						continue
					}
					// Half of them are deleted, deletes cut by the kill included: a
					// retry may find the sandbox already gone (404).
					for attempt := 0; attempt < 60; attempt++ {
						res = c.balanced(ctx, w+round+attempt, "DELETE", "/v1/sandboxes/"+id, nil, nil)
						if res.status == http.StatusNoContent || (attempt > 0 && res.status == http.StatusNotFound) {
							break
						}
						time.Sleep(250 * time.Millisecond)
					}
					if res.status != http.StatusNoContent && res.status != http.StatusNotFound {
						o.errs = append(o.errs, "delete: "+res.String())
						continue
					}
					o.deleted = append(o.deleted, id)
				}
			}()
		}
		<-killAt
		time.Sleep(300 * time.Millisecond) // creates and starts in flight everywhere
		c.reps[2].kill()
		t.Logf("replica r2 SIGKILLed")
		wg.Wait()
		seen := map[string]bool{}
		for w, o := range outs {
			for _, e := range o.errs {
				t.Errorf("worker %d: %s", w, e)
			}
			for _, id := range o.ids {
				if seen[id] {
					t.Errorf("two creates with different keys returned sandbox %s", id)
				}
				seen[id] = true
			}
		}
		takeovers := 0
		for _, r := range c.reps[:2] {
			takeovers += len(r.logLines(`taking over a lapsed session start`))
		}
		t.Logf("%d sandboxes created and run; %d starts of the killed replica taken over", len(seen), takeovers)
		if len(seen) != workers*rounds {
			t.Errorf("%d sandboxes created, want %d", len(seen), workers*rounds)
		}
		// Each of them runs in exactly one container.
		deleted := map[string]bool{}
		for _, o := range outs {
			for _, id := range o.deleted {
				deleted[id] = true
			}
		}
		ds := c.docker(t)
		for id := range seen {
			if n := len(ds.containers[id]); !deleted[id] && n != 1 {
				t.Errorf("sandbox %s has %d containers, want 1", id, n)
			}
		}

		// After the killed replica's lease expired, a GC pass on a survivor
		// leaves no container, volume or record without its counterpart.
		time.Sleep(3500 * time.Millisecond)
		c.gcPass(t, ctx)
		c.checkConsistent(t)
		ds = c.docker(t)
		for id := range deleted {
			if n := len(ds.containers[id]); n != 0 {
				t.Errorf("deleted sandbox %s has %d containers", id, n)
			}
		}
		if n := c.count(t, `SELECT COUNT(*) FROM sandboxes WHERE deleted_at IS NULL AND id = ANY($1)`, keys(deleted)); n != 0 {
			t.Errorf("%d deleted sandboxes are not marked deleted", n)
		}
		if n := c.count(t, `SELECT COUNT(*) FROM idempotency_keys WHERE status_code = 0`); n != 0 {
			t.Errorf("%d idempotency keys still pending", n)
		}
		if live := c.strings(t, `SELECT id FROM replicas WHERE expires_at >= $1 ORDER BY id`, time.Now().UnixMicro()); strings.Join(live, ",") != "r0,r1" {
			t.Errorf("live replicas %v, want r0,r1", live)
		}

		// The killed replica comes back (same replica id): its start-up
		// reconcile undoes nothing the others serve. Kernels keep their
		// variables, containers stay the same ones.
		var some []string
		for id := range seen {
			if len(some) < 4 && !deleted[id] {
				some = append(some, id)
			}
		}
		before := c.docker(t)
		for i, id := range some {
			if res := c.python(ctx, i, id, "kept = 7"); res.status != http.StatusOK {
				t.Fatalf("set a variable: %s", res)
			}
		}
		if err := c.start(c.reps[2]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // its reconcile runs right after start-up
		after := c.docker(t)
		for i, id := range some {
			if res := c.python(ctx, i+2, id, "print(kept * 6)"); res.status != http.StatusOK || !strings.Contains(string(res.body), "42") {
				t.Errorf("sandbox %s after a replica restarted: %s", id, res)
			}
			if strings.Join(before.containers[id], ",") != strings.Join(after.containers[id], ",") {
				t.Errorf("sandbox %s: containers %v before the restart, %v after", id, before.containers[id], after.containers[id])
			}
		}
		if n := len(c.reps[2].logLines(`reconcile: dropping session`)); n != 0 {
			t.Errorf("the restarted replica's reconcile dropped %d sessions", n)
		}
	})
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
