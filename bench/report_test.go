package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/shipyard/shipyard/internal/bay/store"
)

// run is the state of one report run.
type run struct {
	t         *testing.T
	ctx       context.Context
	cli       *client.Client
	bin       string
	quick     bool
	rows      map[int][]Row
	notes     []string
	main      *bayProc
	mainStore *store.Store
	sandboxes []string      // started sandboxes of the main Bay
	ships     []*shipTarget // their Ships, same order
}

func (r *run) n(full, quick int) int {
	if r.quick {
		return quick
	}
	return full
}

func (r *run) add(fig int, row Row) { r.rows[fig] = append(r.rows[fig], row) }

func (r *run) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// TestReport runs every benchmark and writes REPORT.md (make bench).
// SHIPYARD_BENCH_QUICK=1 takes few samples (for working on the bench itself)
// and writes its report to the temp dir instead;
// SHIPYARD_BENCH_BAY names a prebuilt bin/bay (else it is built here).
func TestReport(t *testing.T) {
	if os.Getenv("SHIPYARD_BENCH") == "" {
		t.Skip("benchmark report: set SHIPYARD_BENCH=1 (make bench does)")
	}
	begin := time.Now()
	// Everything runs under one deadline, so that a hang fails the run with its
	// cleanups done rather than hitting the test binary's timeout (which skips them).
	deadline := begin.Add(11 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Add(-30*time.Second).Before(deadline) {
		deadline = d.Add(-30 * time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	cli, err := newDocker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatalf("docker: %v (make docker starts it)", err)
	}
	if _, err := cli.ImageInspect(ctx, shipImage); err != nil {
		t.Fatalf("%s: %v (make image builds it)", shipImage, err)
	}
	if n, err := sweepBench(ctx, cli); err != nil {
		t.Fatalf("sweep: %v", err)
	} else if n > 0 {
		t.Logf("removed %d leftovers of an earlier run", n)
	}
	// Safety net (the cleanup phase below normally leaves nothing to do).
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer scancel()
		_, _ = sweepBench(sctx, cli)
	})
	r := &run{t: t, ctx: ctx, cli: cli, quick: os.Getenv("SHIPYARD_BENCH_QUICK") != "", rows: map[int][]Row{}}
	rep := &Report{Date: begin}
	load0 := loadAvg()
	phase := func(name string, fn func()) {
		t0 := time.Now()
		fn()
		d := time.Since(t0).Round(100 * time.Millisecond)
		rep.Phases = append(rep.Phases, KV{name, d.String()})
		t.Logf("%s: %s", name, d)
	}
	phase("build bin/bay", func() { r.bin = buildBay(t) })
	phase("GC passes (6)", r.gcFigure)
	phase("Bay start ×N, idle RSS (4, 5)", r.startFigure)
	phase("Bay with 50 idle sandboxes (5)", r.idleSandboxesFigure)
	phase("main Bay start, warm pool fill", r.startMain)
	phase("create → first 1+1 (1)", r.createFigure)
	phase("round trips (2)", r.roundTrips)
	phase("MCP vs /v1 (7)", func() { r.mcpFigure(r.sandboxes[0]) })
	phase("port preview (8)", func() { r.previewFigure(r.sandboxes[0]) })
	phase("gVisor vs runc (9)", r.gvisorFigure)
	phase("streamed output (11)", func() { r.streamFigure(r.sandboxes[0]) })
	phase("Go SDK vs raw HTTP (13)", func() { r.sdkFigure(r.sandboxes[0]) })
	if _, err := cli.ImageInspect(ctx, gullImage); err == nil {
		phase("browser (12)", r.browserFigure)
	} else {
		r.note("Figure 12 (browser) not measured: %s is not built (make image builds it).", gullImage)
	}
	phase("round-trip attribution, in-process Bay (2)", r.attribution)
	phase("throughput, RSS under load (3, 5)", r.throughput)
	phase("cleanup", func() {
		r.main.stop(t)
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer scancel()
		n, err := sweepBench(sctx, cli)
		if err != nil {
			t.Errorf("sweep: %v", err)
		}
		left := leftovers(sctx, cli)
		r.note("Cleanup: Bay stopped gracefully (warm pool drained) and its instance swept; the final sweep removed %d more object(s); %s.", n, left)
	})

	rep.Took = time.Since(begin)
	rep.Machine = machine(context.WithoutCancel(ctx), cli)
	rep.Machine = append(rep.Machine, KV{"Load average (1/5/15 min) at start / end", load0 + " / " + loadAvg()})
	figs := make([]int, 0, len(r.rows))
	for f := range r.rows {
		figs = append(figs, f)
	}
	sort.Ints(figs)
	for _, f := range figs {
		rep.Rows = append(rep.Rows, r.rows[f]...)
	}
	rep.Notes = r.notes
	rep.Method = append(method, mcpMethod, previewMethod, browserMethod, sdkMethod)
	if r.quick {
		rep.Notes = append([]string{"**Quick run (SHIPYARD_BENCH_QUICK=1): few samples, not a report to keep.**"}, rep.Notes...)
	}
	md := rep.Markdown()
	fmt.Println(rep.Goals())
	fmt.Println(rep.Table())
	for _, n := range rep.Notes {
		fmt.Println("- " + n)
	}
	path := "REPORT.md"
	if r.quick { // never in place of the real report
		path = filepath.Join(os.TempDir(), "shipyard-bench-REPORT-quick.md")
	}
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (run took %s)", path, rep.Took.Round(time.Second))
	if rep.Took > 10*time.Minute {
		t.Errorf("the report took %s, over its 10-minute budget", rep.Took.Round(time.Second))
	}
}

var method = []string{
	"Bay runs as its own process (`bin/bay`, built with the Makefile's flags) on a fresh SQLite data dir, JSON logs at info level to a file, as deployed; RSS is VmRSS from /proc/<pid>/status. The main Bay has two profiles of `ship:latest` (1 CPU, 1 GiB): `python-default` (no pool) and `python-warm` (warm_pool_size 2); its background GC is off (figure 6 measures a pass alone).",
	"1: each round runs, in rotating order, a cold create (`POST /v1/sandboxes`, then `python/exec` `1+1`), a warm create (the pool's claim, then `1+1`), the floor — `docker run -d` of `ship:latest` with the flags Bay's driver uses (`--network bay-sandbox --user 1000:1000 --cap-drop ALL --security-opt no-new-privileges --pids-limit 256 -m 1g --cpus 1`, port on 127.0.0.1, `SHIP_TOKEN`, a named volume at /workspace), polling Ship's /health every 5 ms, then `POST /ipython/exec` — the same floor through the Engine API (volume, create, start, inspect), i.e. without the docker CLI's own start-up, and the CLI floor on Docker's default bridge instead of Bay's sandbox network (on a user-defined network Docker sets up its embedded DNS in each container it starts; earlier reports used this as the floor); and the same pair for `echo hi` (a cold create, then `shell/exec`; the CLI floor, then Ship's `/shell/exec`), which needs Ship's process up but not its kernel. Before each, the pool is full and idle; after each, the sandbox/container is deleted (not timed). Kernel start: after each cold `1+1`, the `took` of Ship's \"kernel started\" log line in that container (Ship spawning the kernel → the kernel's first answer), and `python3 -c pass` timed there by bash's `time` as the interpreter's floor (run after the start, so its files are cached).",
	"2: one started sandbox; each round calls `1+1` via Bay, straight to its Ship (port and token read with docker inspect; also on the container's bridge IP, which skips the docker-proxy process that serves 127.0.0.1-published ports) and straight to a kernel (the `internal/ship/kernel` Manager in this process driving the host's Debian ipykernel), in rotating order; the same for `echo hi` with Ship's `internal/ship/process` runner in-process as the innermost baseline. One keep-alive HTTP client for all. 10 warm-up rounds are not counted.",
	"2, where Bay's share goes: a second Bay run in-process (test/baytest: real store, real Docker driver) with one started sandbox; each round calls `1+1` through its HTTP API, its capability service directly, its Ship client directly, and our client straight to the same Ship, in rotating order. The differences are the cost of each layer.",
	"3: 16 started sandboxes; with 1, 4 and 16 of them, one worker per sandbox calls `1+1` back to back, via Bay and straight to the same Ships, alternating; after 0.5 s of warm-up, completions are counted in 0.5 s windows over 3 s — p50/p90 are over those windows.",
	"4: exec of `bin/bay` to the first 200 of /health (which checks the database and Docker), polled every 1 ms, default config, fresh data dir; against the same for a minimal Go HTTP server (this test binary in a helper mode), interleaved.",
	"5: Bay idle = 1 s after each start of figure 4; 50 idle sandboxes = 50 lazy creates on one fresh Bay, read before and after; under load = sampled every 100 ms during the 16-sandbox runs via Bay. Ship = VmRSS of the process named `ship` read with `docker exec` (kernel and tini excluded): idle after start and one `1+1`, under load at the end of each 16-sandbox run while the load continues.",
	"6: a real Bay wired by `app.New` (store on a SQLite file, the Docker driver, all four tasks on, an instance id nothing carries) with 10,000 resp. 100 live sandboxes with managed cargos; `GC.Run(ctx, nil)` timed, interleaved, after one uncounted pass each; each pass is checked to have run all four tasks and cleaned nothing.",
}

// buildBay builds bin/bay as the Makefile does (static, -trimpath), or takes
// SHIPYARD_BENCH_BAY.
func buildBay(t *testing.T) string {
	if p := os.Getenv("SHIPYARD_BENCH_BAY"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	out := filepath.Join(t.TempDir(), "bay")
	goBin := "go"
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", out, "./cmd/bay")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build bay: %v\n%s", err, b)
	}
	return out
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// machine describes where the report was measured.
func machine(ctx context.Context, cli *client.Client) []KV {
	var out []KV
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	out = append(out, KV{"CPU", fmt.Sprintf("%s, %d cores", cpu, runtime.NumCPU())})
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int
				fmt.Sscan(v, &kb)
				out = append(out, KV{"RAM", fmt.Sprintf("%.1f GiB", float64(kb)/1024/1024)})
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		out = append(out, KV{"Kernel", "Linux " + strings.TrimSpace(string(b))})
	}
	if v, err := cli.ServerVersion(ctx); err == nil {
		out = append(out, KV{"Docker Engine", fmt.Sprintf("%s (API %s, %s)", v.Version, v.APIVersion, v.Os+"/"+v.Arch)})
	}
	if info, err := cli.Info(ctx); err == nil {
		out = append(out, KV{"Docker storage, cgroups", fmt.Sprintf("%s; cgroup v%s (%s)", info.Driver,
			info.CgroupVersion, info.CgroupDriver)})
	}
	if img, err := cli.ImageInspect(ctx, shipImage); err == nil {
		id := img.ID
		if len(id) > 19 {
			id = id[:19]
		}
		out = append(out, KV{"Ship image", fmt.Sprintf("%s %s, %.0f MB", shipImage, id, float64(img.Size)/1e6)})
	}
	out = append(out, KV{"Go", runtime.Version()})
	if b, err := exec.Command("git", "-C", "..", "describe", "--always", "--dirty").Output(); err == nil {
		out = append(out, KV{"Commit", strings.TrimSpace(string(b))})
	}
	out = append(out, KV{"Date", time.Now().UTC().Format(time.RFC3339)})
	return out
}

// leftovers counts what this run might have left (should be nothing).
func leftovers(ctx context.Context, cli *client.Client) string {
	n, err := sweepBench(ctx, cli)
	if err != nil {
		return "final check failed: " + err.Error()
	}
	if n > 0 {
		return fmt.Sprintf("**%d object(s) were still there at the final check**", n)
	}
	return "no container, volume or network of the run is left; temp dirs go with the test"
}
