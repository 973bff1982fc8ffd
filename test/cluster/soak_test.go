package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

// TestSoak is the issue-9 soak (make soak; skipped otherwise): mixed load
// (create, exec, files, delete) over three replicas for SHIPYARD_SOAK_DURATION
// (10m), with replica r1 or r2 SIGKILLed and restarted every minute (r0 runs
// throughout, so its memory and goroutines show a whole run). It reports
// requests served, errors by class, p50/p99 latency per operation, RSS and
// goroutines of each replica process at its start and end, and what is left
// in the engine after everything is deleted and GC ran. With
// SHIPYARD_SOAK_REPORT set, the report is also written to that file.
func TestSoak(t *testing.T) {
	if os.Getenv("SHIPYARD_SOAK") == "" {
		t.Skip("soak: set SHIPYARD_SOAK=1 (make soak)")
	}
	base := skip(t)
	dur := 10 * time.Minute
	if v := os.Getenv("SHIPYARD_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
	c := newCluster(t, storetest.FreshDatabase(t, base, "cluster").String(), 3)
	ctx, cancel := context.WithTimeout(t.Context(), dur+5*time.Minute)
	defer cancel()
	defer func() {
		if t.Failed() {
			c.dumpLogs()
		}
	}()

	type proc struct {
		replica                string
		pid                    int
		startRSS, endRSS       int64 // KiB
		startGorout, endGorout int
		began, ended           time.Time
	}
	var (
		mu    sync.Mutex
		procs []*proc
		live  = map[string]*proc{}
	)
	sample := func(r *replica) (int64, int) {
		rss := int64(0)
		if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid(r))); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
					rss, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				}
			}
			f.Close()
		}
		g := 0
		if res := c.do(ctx, r, "GET", "/metrics", nil, nil); res.status == http.StatusOK {
			for _, line := range strings.Split(string(res.body), "\n") {
				if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
					g, _ = strconv.Atoi(strings.TrimSpace(v))
				}
			}
		}
		return rss, g
	}
	begin := func(r *replica) {
		rss, g := sample(r)
		p := &proc{replica: r.id, pid: pid(r), startRSS: rss, startGorout: g, began: time.Now()}
		mu.Lock()
		procs = append(procs, p)
		live[r.id] = p
		mu.Unlock()
	}
	end := func(r *replica) {
		rss, g := sample(r)
		mu.Lock()
		if p := live[r.id]; p != nil {
			p.endRSS, p.endGorout, p.ended = rss, g, time.Now()
		}
		mu.Unlock()
	}
	for _, r := range c.reps {
		begin(r)
	}

	type rec struct {
		op    string
		class string // ok | 503 <code> | transport | <status> <code>
		took  time.Duration
	}
	var (
		rmu  sync.Mutex
		recs []rec
	)
	record := func(op string, res result) result {
		class := "ok"
		switch {
		case res.err != nil:
			class = "transport"
		case res.status >= 300:
			class = fmt.Sprintf("%d %s", res.status, res.code())
		}
		rmu.Lock()
		recs = append(recs, rec{op, class, res.took})
		rmu.Unlock()
		return res
	}
	// call retries what a client of a load-balanced deployment retries: a
	// replica that died under it (the balancer's next one) and 503s (after
	// Retry-After). Every attempt is recorded.
	call := func(op string, via int, method, path string, body any, hdr map[string]string, want int) (result, bool) {
		var res result
		for attempt := 0; attempt < 30 && ctx.Err() == nil; attempt++ {
			r := c.reps[(via+attempt)%len(c.reps)]
			if !r.alive() {
				continue // the balancer knows it is down
			}
			res = record(op, c.do(ctx, r, method, path, body, hdr))
			if res.err != nil {
				continue // it died under the request: the next replica
			}
			if res.status == want {
				return res, true
			}
			if res.err == nil && res.status != http.StatusServiceUnavailable {
				return res, false
			}
			time.Sleep(500 * time.Millisecond)
		}
		return res, false
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures []string
	fail := func(s string) {
		rmu.Lock()
		if len(failures) < 20 {
			failures = append(failures, s)
		}
		rmu.Unlock()
	}
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
				res, ok := call("create", via, "POST", "/v1/sandboxes", map[string]any{"profile": "python-default"},
					map[string]string{"Idempotency-Key": fmt.Sprintf("soak-%d-%d", w, n)}, http.StatusCreated)
				if !ok {
					fail("create: " + res.String())
					continue
				}
				id, _ := res.json()["id"].(string)
				sb := "/v1/sandboxes/" + id
				if res, ok := call("file_write", via+1, "PUT", sb+"/filesystem/files", map[string]any{"path": "n.txt", "content": strconv.Itoa(n)}, nil, 200); !ok {
					fail("file_write: " + res.String())
				}
				for i := 0; i < 5; i++ {
					if res, ok := call("python", via+i, "POST", sb+"/python/exec", map[string]any{"code": fmt.Sprintf("print(int(open('n.txt').read()) + %d)", i)}, nil, 200); !ok || !strings.Contains(string(res.body), strconv.Itoa(n+i)) {
						fail("python: " + res.String())
					}
				}
				if res, ok := call("shell", via+2, "POST", sb+"/shell/exec", map[string]any{"command": "ls /workspace"}, nil, 200); !ok {
					fail("shell: " + res.String())
				}
				if res, ok := call("file_read", via+3, "GET", sb+"/filesystem/files?path=n.txt", nil, nil, 200); !ok {
					fail("file_read: " + res.String())
				}
				if res, ok := call("delete", via+4, "DELETE", sb, nil, nil, 204); !ok {
					fail("delete: " + res.String())
				}
			}
		}()
	}

	t0 := time.Now()
	kills := 0
	tick := time.NewTicker(time.Minute)
	for {
		select {
		case <-ctx.Done():
			t.Fatal("soak ran out of time")
		case <-tick.C:
		}
		if time.Since(t0) > dur-30*time.Second {
			break
		}
		r := c.reps[1+kills%2]
		end(r)
		r.kill()
		kills++
		time.Sleep(2 * time.Second)
		if err := c.start(r); err != nil {
			t.Fatalf("restart %s: %v", r.id, err)
		}
		begin(r)
	}
	tick.Stop()
	for time.Since(t0) < dur {
		time.Sleep(time.Second)
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(t0)
	for _, r := range c.reps {
		end(r)
	}

	// Everything deleted; after the lease and a GC pass nothing is left.
	list := c.do(ctx, c.reps[0], "GET", "/v1/sandboxes?limit=200", nil, nil)
	items, _ := list.json()["items"].([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			c.do(ctx, c.reps[0], "DELETE", "/v1/sandboxes/"+m["id"].(string), nil, nil)
		}
	}
	time.Sleep(3500 * time.Millisecond)
	c.gcPass(t, ctx)
	ds := c.docker(t)
	containers := 0
	for _, l := range ds.containers {
		containers += len(l)
	}
	c.checkConsistent(t)

	// The report.
	var b strings.Builder
	fmt.Fprintf(&b, "Soak: %s of mixed load (6 workers: create → file write → 5× python → shell → file read → delete) over 3 replicas on one PostgreSQL; r1/r2 SIGKILLed and restarted every minute (%d kills); r0 ran throughout.\n\n", elapsed.Round(time.Second), kills)
	byClass := map[string]int{}
	byOp := map[string][]time.Duration{}
	for _, r := range recs {
		byClass[r.class]++
		if r.class == "ok" {
			byOp[r.op] = append(byOp[r.op], r.took)
		}
	}
	fmt.Fprintf(&b, "Requests: %d answered, %d served (2xx).\n\n| Class | Count |\n|---|--:|\n", len(recs), byClass["ok"])
	classes := make([]string, 0, len(byClass))
	for k := range byClass {
		classes = append(classes, k)
	}
	sort.Strings(classes)
	for _, k := range classes {
		fmt.Fprintf(&b, "| %s | %d |\n", k, byClass[k])
	}
	fmt.Fprintf(&b, "\n| Operation | n | p50 | p99 |\n|---|--:|--:|--:|\n")
	ops := make([]string, 0, len(byOp))
	for k := range byOp {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	pct := func(d []time.Duration, p float64) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[min(len(d)-1, int(p*float64(len(d))))]
	}
	for _, op := range ops {
		d := byOp[op]
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", op, len(d), pct(d, 0.5).Round(100*time.Microsecond), pct(d, 0.99).Round(100*time.Microsecond))
	}
	fmt.Fprintf(&b, "\n| Replica process | ran | RSS start → end | goroutines start → end |\n|---|--:|--:|--:|\n")
	for _, p := range procs {
		fmt.Fprintf(&b, "| %s (pid %d) | %s | %.1f → %.1f MiB | %d → %d |\n", p.replica, p.pid, p.ended.Sub(p.began).Round(time.Second),
			float64(p.startRSS)/1024, float64(p.endRSS)/1024, p.startGorout, p.endGorout)
	}
	fmt.Fprintf(&b, "\nLeft after deleting everything, the lease and a GC pass: %d containers, %d volumes; %d unexpected failures.\n",
		containers, len(ds.volumes), len(failures))
	t.Log("\n" + b.String())
	if out := os.Getenv("SHIPYARD_SOAK_REPORT"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, f := range failures {
		t.Errorf("unexpected failure: %s", f)
	}
	for k, n := range byClass {
		if k != "ok" && k != "transport" && !strings.HasPrefix(k, "503 ") {
			t.Errorf("%d answers of class %q", n, k)
		}
	}
	if containers != 0 || len(ds.volumes) != 0 {
		t.Errorf("left: %d containers, %d volumes", containers, len(ds.volumes))
	}
}

func pid(r *replica) int {
	cmd, _ := r.proc()
	return cmd.Process.Pid
}
