package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shipyard/shipyard/internal/bay/app"
	"github.com/shipyard/shipyard/internal/bay/capability"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver"
	dockerdriver "github.com/shipyard/shipyard/internal/bay/driver/docker"
	"github.com/shipyard/shipyard/internal/bay/gc"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/sandbox"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/ship/kernel"
	"github.com/shipyard/shipyard/internal/ship/process"
	"github.com/shipyard/shipyard/test/baytest"
)

const (
	mb       = 1e6 // goals say MB: checked in decimal megabytes, shown in MiB
	kib2MiB  = 1.0 / 1024
	warmSize = 2 // warm_pool_size of the warm profile
)

func metIf(b bool) *bool { return &b }

func mib(kib int) float64 { return float64(kib) * kib2MiB }

// ---- Figure 6: GC pass over 10,000 records with nothing to do ----------------

type gcRig struct {
	app  *app.App
	n    int
	took time.Duration // inserting the records
}

// gcSetup wires a real Bay (store on a fresh SQLite file, real Docker driver,
// all four GC tasks on, an instance id nothing else carries) without serving,
// and inserts n live sandboxes with managed cargos: none idle, none expired.
func (r *run) gcSetup(n int) *gcRig {
	t := r.t
	dir := t.TempDir()
	env := map[string]string{
		"BAY_DATA_DIR": dir, "BAY_API_KEY": baytest.APIKey,
		"BAY_DATABASE__URL":                 "sqlite:///" + filepath.Join(dir, "bay.db"),
		"BAY_GC__INSTANCE_ID":               "bench-gc-" + randHex(5),
		"BAY_GC__ENABLED":                   "false",
		"BAY_GC__ORPHAN_CONTAINER__ENABLED": "true",
		"BAY_WARM_POOL__ENABLED":            "false",
		"BAY_SERVER__HOST":                  "127.0.0.1",
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("gc config: %v", err)
	}
	a, err := app.New(r.ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{})
	if err != nil {
		t.Fatalf("gc app: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	for _, name := range gc.Order {
		if !a.GC.Config.Tasks[name] {
			t.Fatalf("gc task %s not enabled", name)
		}
	}
	now := time.Now().UTC()
	expires := now.Add(24 * time.Hour)
	idle := now.Add(time.Hour)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		sb := &model.Sandbox{ID: model.NewID("sandbox"), Owner: "bench", ProfileID: "python-default",
			CreatedAt: now, LastActiveAt: now, ExpiresAt: &expires, IdleExpiresAt: &idle}
		cg := sandbox.NewCargo("bench", 1024, now)
		cg.Managed, cg.ManagedBySandboxID, sb.CargoID = true, sb.ID, cg.ID
		if err := a.Store.CreateSandbox(r.ctx, sb, cg); err != nil {
			t.Fatalf("insert sandbox %d: %v", i, err)
		}
	}
	took := time.Since(t0)
	// A serving Bay reconciles once at start-up before its first pass (app.Run does).
	if err := a.GC.Reconcile(r.ctx); err != nil {
		t.Fatalf("gc reconcile: %v", err)
	}
	return &gcRig{app: a, n: n, took: took}
}

func (g *gcRig) pass(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	out, err := g.app.GC.Run(ctx, nil)
	d := time.Since(t0)
	if err != nil {
		return d, err
	}
	res, ok := out.(*gc.Result)
	if !ok {
		return d, fmt.Errorf("gc result %T", out)
	}
	if len(res.Results) != len(gc.Order) || res.TotalCleaned != 0 || res.TotalErrors != 0 {
		return d, fmt.Errorf("gc pass did something or skipped a task: %+v", res)
	}
	return d, nil
}

func (r *run) gcFigure() {
	small := r.gcSetup(100)
	big := r.gcSetup(10000)
	r.note("GC set-up: 10,000 sandboxes + cargos inserted one transaction each in %s (%.0f/s).",
		big.took.Round(time.Millisecond), float64(big.n)/big.took.Seconds())
	sb := &Series{Label: "GC pass, 10,000 sandboxes", Unit: "ms"}
	ss := &Series{Label: "GC pass, 100 sandboxes", Unit: "ms"}
	dk := &Series{Label: "Docker list calls of a pass", Unit: "ms"}
	oc := &Series{Label: "OrphanCargos query, 10,000", Unit: "ms"}
	for _, g := range []*gcRig{small, big} { // warm-up, not counted
		if _, err := g.pass(r.ctx); err != nil {
			r.t.Fatalf("gc pass: %v", err)
		}
	}
	labels := map[string]string{driver.LabelManaged: "true", driver.LabelInstanceID: big.app.Config.GC.InstanceID}
	for i := 0; i < r.n(11, 3); i++ {
		order := []*gcRig{big, small}
		if i%2 == 1 {
			order = []*gcRig{small, big}
		}
		for _, g := range order {
			d, err := g.pass(r.ctx)
			if err != nil {
				r.t.Fatalf("gc pass: %v", err)
			}
			if g == big {
				sb.AddDuration(d)
			} else {
				ss.AddDuration(d)
			}
		}
		t0 := time.Now()
		if _, err := big.app.Driver.ListSessions(r.ctx, labels); err != nil {
			r.t.Fatal(err)
		}
		if _, err := big.app.Driver.ListVolumes(r.ctx, labels); err != nil {
			r.t.Fatal(err)
		}
		dk.AddDuration(time.Since(t0))
		t0 = time.Now()
		if _, err := big.app.Store.OrphanCargos(r.ctx); err != nil {
			r.t.Fatal(err)
		}
		oc.AddDuration(time.Since(t0))
	}
	r.add(6, Row{Figure: "6 GC pass, nothing to do", Subject: sb, Base: ss, Delta: true,
		Goal: "10,000: < 200 ms", Met: metIf(sb.P(0.5) < 200)})
	r.note("GC: of a pass, the two Docker list calls (containers, volumes by this instance's labels) take %s p50; the rest is SQL, "+
		"and the part that grows with the records is orphan_cargo's query (every managed cargo checked against its sandbox): %s p50 at 10,000.",
		Format(dk.P(0.5), "ms"), Format(oc.P(0.5), "ms"))
}

// ---- Figure 4: Bay start to /health 200 (and idle RSS) -----------------------

// floorServer starts this test binary as a minimal Go HTTP server and returns
// the time from exec to its first 200.
func (r *run) floorServer() (time.Duration, error) {
	port := freePort(r.t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), floorServerEnv+"="+addr)
	exited := make(chan struct{})
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	return pollHealthy("http://"+addr+"/health", t0, 30*time.Second, time.Millisecond, exited)
}

func (r *run) startFigure() {
	bay := &Series{Label: "bin/bay, fresh SQLite data dir", Unit: "ms"}
	floor := &Series{Label: "minimal Go HTTP server binary", Unit: "ms"}
	idle := &Series{Label: "Bay RSS idle (fresh start, 1 s after healthy)", Unit: "MiB"}
	for i := 0; i < r.n(10, 3); i++ {
		runBay := func() {
			b := launchBay(r.t, r.bin, "", nil)
			d, err := b.waitHealthy(60 * time.Second)
			if err != nil {
				r.t.Fatalf("bay start: %v\n%s", err, b.logTail())
			}
			bay.AddDuration(d)
			time.Sleep(time.Second)
			rss, _, err := b.rss()
			if err != nil {
				r.t.Fatal(err)
			}
			idle.Add(mib(rss))
			b.stop(r.t)
		}
		runFloor := func() {
			d, err := r.floorServer()
			if err != nil {
				r.t.Fatalf("floor server: %v", err)
			}
			floor.AddDuration(d)
		}
		if i%2 == 0 {
			runBay()
			runFloor()
		} else {
			runFloor()
			runBay()
		}
	}
	r.add(4, Row{Figure: "4 Bay start → /health 200", Subject: bay, Base: floor, Delta: true,
		Goal: "Bay: < 100 ms", Met: metIf(bay.P(0.5) < 100)})
	r.add(5, Row{Figure: "5 RSS", Subject: idle, Goal: "< 30 MB", Met: metIf(idle.P(0.5)*1024*1024 < 30*mb)})
}

// ---- Figure 5 (part): Bay RSS with 50 idle sandboxes --------------------------

func (r *run) idleSandboxesFigure() {
	b := launchBay(r.t, r.bin, "", nil)
	if _, err := b.waitHealthy(60 * time.Second); err != nil {
		r.t.Fatalf("bay start: %v\n%s", err, b.logTail())
	}
	time.Sleep(time.Second)
	sample := func(s *Series) {
		for i := 0; i < 5; i++ {
			rss, _, err := b.rss()
			if err != nil {
				r.t.Fatal(err)
			}
			s.Add(mib(rss))
			time.Sleep(200 * time.Millisecond)
		}
	}
	before := &Series{Label: "same Bay before creating them", Unit: "MiB"}
	after := &Series{Label: "Bay RSS, 50 idle sandboxes (never started)", Unit: "MiB"}
	create := &Series{Label: "lazy create", Unit: "ms"}
	sample(before)
	for i := 0; i < 50; i++ {
		t0 := time.Now()
		if _, _, err := b.create(r.ctx, "python-default"); err != nil {
			r.t.Fatalf("create: %v", err)
		}
		create.AddDuration(time.Since(t0))
	}
	time.Sleep(time.Second)
	sample(after)
	r.add(5, Row{Figure: "5 RSS", Subject: after, Base: before, Delta: true})
	r.note("A lazy `POST /v1/sandboxes` (record + managed volume, no container) took %s p50, %s p90 (n=%d).",
		Format(create.P(0.5), "ms"), Format(create.P(0.9), "ms"), create.N())
	b.stop(r.t)
}

// ---- The main Bay: cold and warm creates, round trips, throughput ------------

const mainConfig = `profiles:
  - id: python-default
    image: ship:latest
  - id: python-warm
    image: ship:latest
    warm_pool_size: 2
    warm_rotate_ttl: 3600
  - id: python-secure
    image: ship:latest
    runtime: runsc
  - id: browser-python
    containers:
      - {name: ship, image: "ship:latest", runtime_type: ship, runtime_port: 8123, capabilities: [python, shell, filesystem], primary_for: [python, shell, filesystem]}
      - {name: browser, image: "gull:latest", runtime_type: gull, runtime_port: 8115, capabilities: [browser], primary_for: [browser]}
`

func (r *run) startMain() {
	b := launchBay(r.t, r.bin, mainConfig, map[string]string{
		"BAY_WARM_POOL__ENABLED":          "true",
		"BAY_WARM_POOL__INTERVAL_SECONDS": "3600", // refills on claims only
		"BAY_GC__ENABLED":                 "false",
		"BAY_DATABASE__URL":               "sqlite:///./bay.db", // in the data dir, the working directory
	})
	if _, err := b.waitHealthy(60 * time.Second); err != nil {
		r.t.Fatalf("main bay: %v\n%s", err, b.logTail())
	}
	st, err := store.Open(r.ctx, store.SQLite, filepath.Join(b.Dir, "bay.db"))
	if err != nil {
		r.t.Fatalf("open main bay's store: %v", err)
	}
	r.t.Cleanup(func() { _ = st.Close() })
	r.main, r.mainStore = b, st
	if err := r.waitWarm(3 * time.Minute); err != nil {
		r.t.Fatalf("%v\n%s", err, b.logTail())
	}
}

// waitWarm waits until the warm profile's pool is full and idle.
func (r *run) waitWarm(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		avail, err := r.mainStore.WarmSandboxes(r.ctx, "python-warm", model.WarmAvailable)
		if err != nil {
			return err
		}
		all, err := r.mainStore.WarmSandboxes(r.ctx, "python-warm")
		if err != nil {
			return err
		}
		if len(avail) >= warmSize && len(all) == len(avail) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm pool: %d of %d available after %v", len(avail), warmSize, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- Figure 1: create → first 1+1 --------------------------------------------

func (r *run) createFigure() {
	sandboxNet := dockerdriver.DefaultSandboxNetwork // the main Bay's (default config)
	cold := &Series{Label: "cold through Bay (create + python/exec)", Unit: "ms"}
	warm := &Series{Label: "warm through Bay (pool claim + python/exec)", Unit: "ms"}
	fcli := &Series{Label: "raw `docker run` → Ship /health → 1+1 (floor)", Unit: "ms"}
	fapi := &Series{Label: "Engine API create+start → Ship → 1+1", Unit: "ms"}
	fbridge := &Series{Label: "raw `docker run` on Docker's default bridge → Ship /health → 1+1", Unit: "ms"}
	coldEcho := &Series{Label: "cold through Bay (create + shell/exec)", Unit: "ms"}
	fcliEcho := &Series{Label: "raw `docker run` → Ship /health → `echo hi` (floor)", Unit: "ms"}
	kstart := &Series{Label: "kernel start in the sandbox container (Ship's log: spawn → first answer)", Unit: "ms"}
	pyPass := &Series{Label: "`python3 -c pass` in the same container (after the start)", Unit: "ms"}
	coldCreate := &Series{Unit: "ms"}
	warmCreate := &Series{Unit: "ms"}
	floorHealth := &Series{Unit: "ms"}
	apiCreate, apiStart, apiReady := &Series{Unit: "ms"}, &Series{Unit: "ms"}, &Series{Unit: "ms"}
	misses := 0
	bayRun := func(profile string, python bool, total, create *Series) {
		t0 := time.Now()
		id, status, err := r.main.create(r.ctx, profile)
		if err != nil {
			r.t.Fatalf("create: %v", err)
		}
		tc := time.Since(t0)
		if python {
			err = r.main.python(r.ctx, id, "1+1", "2")
		} else {
			err = r.main.shell(r.ctx, id, "echo hi", "hi")
		}
		if err != nil {
			r.t.Fatalf("first exec: %v\n%s", err, r.main.logTail())
		}
		d := time.Since(t0)
		if profile == "python-warm" && status != "ready" {
			misses++ // not a claim: the pool was empty; not counted
		} else {
			total.AddDuration(d)
			if create != nil {
				create.AddDuration(tc)
			}
		}
		if python && profile == "python-default" {
			r.kernelStart(id, kstart, pyPass)
		}
		if err := r.main.delete(r.ctx, id); err != nil {
			r.t.Fatalf("delete: %v", err)
		}
	}
	// The floors run on the network Bay's sandboxes get (Docker sets up its
	// embedded DNS in every container on a user-defined network), but for
	// one on Docker's default bridge, which shows what that network costs.
	floorRun := func(api bool, network string, first firstCall, total *Series) {
		var fr *floorRun
		var err error
		if api {
			fr, err = floorAPI(r.ctx, r.cli, network, first)
		} else {
			fr, err = floorCLI(r.ctx, r.cli, freePort(r.t), network, first)
		}
		if fr != nil {
			defer fr.remove(context.WithoutCancel(r.ctx))
		}
		if err != nil {
			r.t.Fatalf("floor: %v", err)
		}
		total.AddDuration(fr.total)
		switch {
		case api:
			apiCreate.AddDuration(fr.create)
			apiStart.AddDuration(fr.start)
			apiReady.AddDuration(fr.ready)
		case total == fcli:
			floorHealth.AddDuration(fr.health)
		}
	}
	steps := []func(){
		func() { bayRun("python-default", true, cold, coldCreate) },
		func() { bayRun("python-warm", true, warm, warmCreate) },
		func() { floorRun(false, sandboxNet, firstPython, fcli) },
		func() { floorRun(true, sandboxNet, firstPython, fapi) },
		func() { floorRun(false, "bridge", firstPython, fbridge) },
		func() { bayRun("python-default", false, coldEcho, nil) },
		func() { floorRun(false, sandboxNet, firstShell, fcliEcho) },
	}
	m0, merr := r.main.metrics(r.ctx) // for the breakdown; optional
	for i := 0; i < r.n(10, 2); i++ {
		for j := range steps {
			if err := r.waitWarm(2 * time.Minute); err != nil {
				r.t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // let the engine settle after the last removal
			steps[(i+j)%len(steps)]()
		}
	}
	m1, err := r.main.metrics(r.ctx)
	if merr == nil {
		merr = err
	}
	ratio := cold.P(0.5) / fcli.P(0.5)
	r.add(1, Row{Figure: "1 create → first 1+1", Subject: cold, Base: fcli, Delta: true,
		Goal: "≤ 1.0 s p50 and ≤ 1.1× floor", Met: metIf(cold.P(0.5) <= 1000 && ratio <= 1.1)})
	r.add(1, Row{Figure: "1 create → first 1+1", Subject: cold, Base: fapi, Delta: true})
	r.add(1, Row{Figure: "1 create → first 1+1", Subject: fcli, Base: fbridge, Delta: true,
		Goal: "(the sandbox network's share of the floor)"})
	r.add(1, Row{Figure: "1 create → first 1+1", Subject: warm, Base: cold, Delta: true,
		Goal: "warm p50 < 50 ms", Met: metIf(warm.P(0.5) < 50)})
	r.add(1, Row{Figure: "1 create → first `echo hi`", Subject: coldEcho, Base: fcliEcho, Delta: true,
		Goal: "≤ 1.15× floor", Met: metIf(coldEcho.P(0.5) <= 1.15*fcliEcho.P(0.5))})
	r.add(1, Row{Figure: "1 kernel start", Subject: kstart, Base: pyPass, Delta: true,
		Goal: "≤ 0.6 s p50", Met: metIf(kstart.P(0.5) <= 600)})
	r.note("Create → first 1+1: of the cold total, `POST /v1/sandboxes` took %s p50 and the first python/exec (container create, start, "+
		"readiness polling, kernel) the rest; of the warm total the claim took %s p50. The floor's first /health 200 came %s p50 after `docker run` began.",
		Format(coldCreate.P(0.5), "ms"), Format(warmCreate.P(0.5), "ms"), Format(floorHealth.P(0.5), "ms"))
	if merr != nil {
		r.note("No breakdown of the cold start: Bay's /metrics could not be read (%v).", merr)
	}
	startMean, starts := meanDelta(m0, m1, "bay_session_start_duration_seconds", "")
	createMean, _ := meanDelta(m0, m1, "bay_driver_call_duration_seconds", `{op="create"}`)
	startCall, _ := meanDelta(m0, m1, "bay_driver_call_duration_seconds", `{op="start"}`)
	if merr == nil {
		r.note("Where a cold start goes — Bay's own metrics over this figure's %d session starts (cold creates and pool refills alike; means): "+
			"session start %s = driver create %s + driver start (incl. inspect) %s + readiness wait and bookkeeping %s. The Engine API floor (p50): "+
			"create %s, start %s, start → first /health 200 %s.",
			starts, Format(startMean, "ms"), Format(createMean, "ms"), Format(startCall, "ms"),
			Format(startMean-createMean-startCall, "ms"),
			Format(apiCreate.P(0.5), "ms"), Format(apiStart.P(0.5), "ms"), Format(apiReady.P(0.5), "ms"))
	}
	if misses > 0 {
		r.note("%d warm create(s) found the pool empty and were not counted.", misses)
	}
}

// kernelStart adds the kernel start of a sandbox's container (from Ship's log)
// and the interpreter's floor there, `python3 -c pass`.
func (r *run) kernelStart(sandboxID string, start, floor *Series) {
	st, err := shipOfSandbox(r.ctx, r.cli, sandboxID)
	if err != nil {
		r.t.Fatalf("kernel start: %v", err)
	}
	d, err := kernelStart(r.ctx, r.cli, st.ContainerID)
	if err != nil {
		r.t.Fatalf("kernel start: %v", err)
	}
	start.AddDuration(d)
	if d, err = pythonPass(r.ctx, r.cli, st.ContainerID); err != nil {
		r.t.Fatalf("python3 -c pass: %v", err)
	}
	floor.AddDuration(d)
}

// ---- Figure 2: round trips ---------------------------------------------------

func (r *run) roundTrips() {
	id, _, err := r.main.create(r.ctx, "python-default")
	if err != nil {
		r.t.Fatal(err)
	}
	r.sandboxes = append(r.sandboxes, id)
	if err := r.main.python(r.ctx, id, "1+1", "2"); err != nil {
		r.t.Fatal(err)
	}
	ship, err := shipOfSandbox(r.ctx, r.cli, id)
	if err != nil {
		r.t.Fatal(err)
	}
	r.ships = append(r.ships, ship)

	kdir := r.t.TempDir()
	km := kernel.NewManager(kernel.Config{
		Argv: []string{"/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"},
		Dir:  kdir, RuntimeDir: r.t.TempDir(), InitCode: kernel.DefaultInitCode,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	r.t.Cleanup(func() { _ = km.Close() })
	sctx, cancel := context.WithTimeout(r.ctx, time.Minute)
	defer cancel()
	if err := km.Start(sctx); err != nil {
		r.t.Fatalf("host kernel (apt-get install python3-ipykernel): %v", err)
	}
	runner := process.New(process.Config{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + kdir, "LANG=C.UTF-8"}})
	r.t.Cleanup(func() { _ = runner.Shutdown(context.Background()) })

	kernelExec := func() error {
		res, err := km.Execute(r.ctx, kernel.Request{Code: "1+1", Timeout: 30 * time.Second})
		if err != nil {
			return err
		}
		if !res.Success || res.Text != "2" {
			return fmt.Errorf("kernel: %+v", res)
		}
		return nil
	}
	runnerExec := func() error {
		res, err := runner.Run(r.ctx, process.Spec{Command: "echo hi", Dir: kdir, Timeout: 30 * time.Second})
		if err != nil {
			return err
		}
		if res.ReturnCode != 0 || res.Stdout != "hi" {
			return fmt.Errorf("runner: %+v", res)
		}
		return nil
	}
	type side struct {
		s  *Series
		fn func() error
	}
	measure := func(n int, sides []side) {
		for i := 0; i < n+10; i++ {
			for j := range sides {
				sd := sides[(i+j)%len(sides)]
				t0 := time.Now()
				if err := sd.fn(); err != nil {
					r.t.Fatalf("%s: %v", sd.s.Label, err)
				}
				if i >= 10 { // the first 10 rounds warm up connections and caches
					sd.s.AddDuration(time.Since(t0))
				}
			}
		}
	}
	if ship.IPEndpoint == "" {
		r.t.Fatal("no bridge address for the sandbox's container")
	}
	shipIP := ship.viaIP()
	n := r.n(200, 30)
	pyBay := &Series{Label: "1+1 via Bay", Unit: "ms"}
	pyShip := &Series{Label: "1+1 straight to Ship (same container, published port)", Unit: "ms"}
	pyShipIP := &Series{Label: "1+1 straight to Ship on its bridge IP (Bay's endpoint; no docker-proxy)", Unit: "ms"}
	pyKernel := &Series{Label: "1+1 straight to the kernel (Go Manager in-process, host ipykernel)", Unit: "ms"}
	measure(n, []side{
		{pyBay, func() error { return r.main.python(r.ctx, id, "1+1", "2") }},
		{pyShip, func() error { return ship.python(r.ctx, "1+1", "2") }},
		{pyShipIP, func() error { return shipIP.python(r.ctx, "1+1", "2") }},
		{pyKernel, kernelExec},
	})
	shBay := &Series{Label: "`echo hi` via Bay", Unit: "ms"}
	shShip := &Series{Label: "`echo hi` straight to Ship (same container, published port)", Unit: "ms"}
	shShipIP := &Series{Label: "`echo hi` straight to Ship on its bridge IP (Bay's endpoint)", Unit: "ms"}
	shRunner := &Series{Label: "`echo hi` by Ship's process runner in-process (host bash -lc)", Unit: "ms"}
	measure(n, []side{
		{shBay, func() error { return r.main.shell(r.ctx, id, "echo hi", "hi") }},
		{shShip, func() error { return ship.shell(r.ctx, "echo hi", "hi") }},
		{shShipIP, func() error { return shipIP.shell(r.ctx, "echo hi", "hi") }},
		{shRunner, runnerExec},
	})
	// What `echo hi` costs inside the image before Ship has anything to do
	// with it: the start-up of a login shell (as Ship runs commands) and of a
	// plain one, timed in the container itself.
	if out, err := dockerExec(r.ctx, r.cli, ship.ContainerID, "bash", "-c",
		`s=$(date +%s%N); for i in $(seq 50); do bash -lc 'echo hi' >/dev/null; done; m=$(date +%s%N);`+
			`for i in $(seq 50); do bash -c 'echo hi' >/dev/null; done; e=$(date +%s%N); echo $(( (m-s)/50 )) $(( (e-m)/50 ))`); err == nil {
		var login, plain float64
		if _, err := fmt.Sscan(out, &login, &plain); err == nil {
			r.note("`echo hi` inside the sandbox container, timed there (50 runs each, no Ship involved): `bash -lc` %s, `bash -c` %s per run; "+
				"the host's `bash -lc` as the runner baseline runs it: %s p50. The gap between Ship and the host runner is the image's shell start-up, not Ship.",
				Format(login/1e6, "ms"), Format(plain/1e6, "ms"), Format(shRunner.P(0.5), "ms"))
		}
	}
	d := func(a, b *Series) float64 { return a.P(0.5) - b.P(0.5) }
	const fig = "2 round trip"
	// Bay reaches Ship on the container's bridge IP (auto mode, when routable),
	// so "Bay adds" compares with Ship at that same address.
	r.add(2, Row{Figure: fig, Subject: pyBay, Base: pyShipIP, Delta: true, Goal: "Bay adds < 1 ms p50", Met: metIf(d(pyBay, pyShipIP) < 1)})
	r.add(2, Row{Figure: fig, Subject: pyBay, Base: pyShip, Delta: true, Goal: "(vs a client on the published port)"})
	r.add(2, Row{Figure: fig, Subject: pyShip, Base: pyKernel, Delta: true, Goal: "Ship adds < 1 ms p50", Met: metIf(d(pyShip, pyKernel) < 1)})
	r.add(2, Row{Figure: fig, Subject: pyShipIP, Base: pyKernel, Delta: true, Goal: "(Ship itself) < 1 ms", Met: metIf(d(pyShipIP, pyKernel) < 1)})
	r.add(2, Row{Figure: fig, Subject: pyShip, Base: pyShipIP, Delta: true, Goal: "(the docker-proxy hop)"})
	r.add(2, Row{Figure: fig, Subject: shBay, Base: shShipIP, Delta: true, Goal: "Bay adds < 1 ms p50", Met: metIf(d(shBay, shShipIP) < 1)})
	r.add(2, Row{Figure: fig, Subject: shBay, Base: shShip, Delta: true, Goal: "(vs a client on the published port)"})
	r.add(2, Row{Figure: fig, Subject: shShip, Base: shRunner, Delta: true})
	r.add(2, Row{Figure: fig, Subject: shShipIP, Base: shRunner, Delta: true, Goal: "(Ship itself)"})
}

// attribution splits Bay's share of a `1+1` into its layers, on a Bay run
// in-process (test/baytest) so that each layer can be called on its own:
// the HTTP API, the capability service (lookups, session lock, history) and
// Bay's Ship client, next to our own client straight to the same Ship.
func (r *run) attribution() {
	b := baytest.Start(r.t, baytest.Options{InstanceID: "bench-" + randHex(5)})
	defer func() { b.Stop(); baytest.Sweep(r.t, b.InstanceID) }()
	id := b.CreateSandbox(r.t, nil)
	b.Python(r.t, id, "1+1")
	ship, err := shipOfSandbox(r.ctx, r.cli, id)
	if err != nil {
		r.t.Fatal(err)
	}
	hc := newHTTPClient()
	tgt := runtime.Target{Endpoint: ship.Endpoint, Token: ship.Token}
	check := func(ok bool, out string) error {
		if !ok || out != "2" {
			return fmt.Errorf("1+1 gave success=%v %q", ok, out)
		}
		return nil
	}
	viaHTTP := &Series{Label: "in-process Bay: `POST …/python/exec`", Unit: "ms"}
	viaCaps := &Series{Label: "its capability service (`Caps.Python`, no HTTP)", Unit: "ms"}
	viaRT := &Series{Label: "its Ship client (`Runtime.Python`)", Unit: "ms"}
	direct := &Series{Label: "straight to the same Ship (our client)", Unit: "ms"}
	sides := []struct {
		s  *Series
		fn func() error
	}{
		{viaHTTP, func() error {
			var out struct {
				Success bool   `json:"success"`
				Output  string `json:"output"`
			}
			if err := doJSON(r.ctx, hc, "POST", b.URL+"/v1/sandboxes/"+id+"/python/exec", baytest.APIKey, map[string]any{"code": "1+1"}, &out); err != nil {
				return err
			}
			return check(out.Success, out.Output)
		}},
		{viaCaps, func() error {
			res, err := b.App.Caps.Python(r.ctx, "default", id, "1+1", 30, capability.Meta{}, b.App.Now())
			if err != nil {
				return err
			}
			return check(res.Success, res.Output)
		}},
		{viaRT, func() error {
			res, err := b.App.Runtime.Python(r.ctx, tgt, "1+1", 30)
			if err != nil {
				return err
			}
			return check(res.Success, res.Text())
		}},
		{direct, func() error { return ship.python(r.ctx, "1+1", "2") }},
	}
	n := r.n(150, 20)
	for i := 0; i < n+10; i++ {
		for j := range sides {
			sd := sides[(i+j)%len(sides)]
			t0 := time.Now()
			if err := sd.fn(); err != nil {
				r.t.Fatalf("%s: %v", sd.s.Label, err)
			}
			if i >= 10 {
				sd.s.AddDuration(time.Since(t0))
			}
		}
	}
	const fig = "2 where Bay's share goes"
	r.add(2, Row{Figure: fig, Subject: viaHTTP, Base: viaCaps, Delta: true, Goal: "(HTTP front: route, auth, JSON, logs, metrics)"})
	r.add(2, Row{Figure: fig, Subject: viaCaps, Base: viaRT, Delta: true, Goal: "(service: lookups, session lock, touch, history row)"})
	r.add(2, Row{Figure: fig, Subject: viaRT, Base: direct, Delta: true, Goal: "(Bay's Ship client vs ours)"})
}

// ---- Figure 3: throughput, and Figure 5: RSS under load ----------------------

type loadResult struct {
	rates   *Series // execs/s per window
	lat     *Series // ms per exec
	errs    int
	lastErr error
}

// load runs c workers, worker i calling fn(i) back to back, and counts the
// completions of a measured stretch in 500 ms windows (after a warm-up).
// during runs after the stretch while the load still goes on.
func (r *run) load(c int, fn func(ctx context.Context, i int) error, during func()) loadResult {
	warmup, dur, win := 500*time.Millisecond, 3*time.Second, 500*time.Millisecond
	if r.quick {
		dur = time.Second
	}
	type rec struct {
		end time.Time
		lat time.Duration
		err error
	}
	var stop atomic.Bool
	recs := make([][]rec, c)
	var wg sync.WaitGroup
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				t0 := time.Now()
				err := fn(r.ctx, i)
				now := time.Now()
				recs[i] = append(recs[i], rec{now, now.Sub(t0), err})
			}
		}()
	}
	time.Sleep(warmup)
	ws := time.Now()
	time.Sleep(dur)
	we := time.Now()
	if during != nil {
		during()
	}
	stop.Store(true)
	wg.Wait()
	nwin := int(dur / win)
	counts := make([]int, nwin)
	res := loadResult{rates: &Series{Unit: "execs/s"}, lat: &Series{Unit: "ms"}}
	for _, rs := range recs {
		for _, x := range rs {
			if x.end.Before(ws) || !x.end.Before(we) {
				continue
			}
			if x.err != nil {
				res.errs++
				res.lastErr = x.err
				continue
			}
			if k := int(x.end.Sub(ws) / win); k < nwin {
				counts[k]++
			}
			res.lat.AddDuration(x.lat)
		}
	}
	for _, n := range counts {
		res.rates.Add(float64(n) / win.Seconds())
	}
	return res
}

func (r *run) throughput() {
	const maxC = 16
	// 16 started sandboxes (the round-trip one is the first).
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	var firstErr error
	need := maxC - len(r.sandboxes)
	for k := 0; k < need; k++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id, _, err := r.main.create(r.ctx, "python-default")
			if err == nil {
				err = r.main.python(r.ctx, id, "1+1", "2")
			}
			var st *shipTarget
			if err == nil {
				st, err = shipOfSandbox(r.ctx, r.cli, id)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = err
				return
			}
			r.sandboxes = append(r.sandboxes, id)
			r.ships = append(r.ships, st)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		r.t.Fatalf("starting 16 sandboxes: %v\n%s", firstErr, r.main.logTail())
	}

	// Idle figures first: Ship after start-up and one 1+1; Bay with 16 running sessions.
	shipIdle := &Series{Label: "Ship RSS idle (after start and one 1+1)", Unit: "MiB"}
	for _, st := range r.ships[:r.n(8, 2)] {
		rss, _, err := shipRSS(r.ctx, r.cli, st.ContainerID)
		if err != nil {
			r.t.Fatalf("ship rss: %v", err)
		}
		shipIdle.Add(mib(rss))
	}
	bayIdle := &Series{Label: "same Bay idle before the load (16 sessions)", Unit: "MiB"}
	for i := 0; i < 5; i++ {
		rss, _, err := r.main.rss()
		if err != nil {
			r.t.Fatal(err)
		}
		bayIdle.Add(mib(rss))
		time.Sleep(100 * time.Millisecond)
	}

	bayLoad := &Series{Label: "Bay RSS under load (16 sandboxes executing)", Unit: "MiB"}
	shipLoad := &Series{Label: "Ship RSS under load (16 sandboxes executing)", Unit: "MiB"}
	sampleShips := func() {
		for _, st := range r.ships[:4] {
			if rss, _, err := shipRSS(r.ctx, r.cli, st.ContainerID); err == nil {
				shipLoad.Add(mib(rss))
			}
		}
	}
	levels := []int{1, 4, 16}
	bayTP := map[int]*Series{}
	shipTP := map[int]*Series{}
	bayLat := map[int]*Series{}
	shipLat := map[int]*Series{}
	for _, c := range levels {
		bayTP[c] = &Series{Label: fmt.Sprintf("execs/s via Bay, %d sandbox(es)", c), Unit: "execs/s"}
		shipTP[c] = &Series{Label: fmt.Sprintf("straight to Ship, %d", c), Unit: "execs/s"}
		bayLat[c], shipLat[c] = &Series{Unit: "ms"}, &Series{Unit: "ms"}
	}
	errCount := 0
	var lastErr error
	for round := 0; round < r.n(2, 1); round++ {
		for _, c := range levels {
			modes := []string{"bay", "ship"}
			if round%2 == 1 {
				modes = []string{"ship", "bay"}
			}
			for _, m := range modes {
				var during func()
				if c == maxC {
					during = sampleShips
				}
				var res loadResult
				if m == "bay" {
					stopRSS := r.sampleBayRSS(bayLoad, c == maxC)
					res = r.load(c, func(ctx context.Context, i int) error {
						return r.main.python(ctx, r.sandboxes[i], "1+1", "2")
					}, during)
					stopRSS()
					bayTP[c].Values = append(bayTP[c].Values, res.rates.Values...)
					bayLat[c].Values = append(bayLat[c].Values, res.lat.Values...)
				} else {
					res = r.load(c, func(ctx context.Context, i int) error {
						return r.ships[i].python(ctx, "1+1", "2")
					}, during)
					shipTP[c].Values = append(shipTP[c].Values, res.rates.Values...)
					shipLat[c].Values = append(shipLat[c].Values, res.lat.Values...)
				}
				errCount += res.errs
				if res.lastErr != nil {
					lastErr = res.lastErr
				}
			}
		}
	}
	for _, c := range levels {
		row := Row{Figure: "3 throughput, `1+1`", Subject: bayTP[c], Base: shipTP[c]}
		if c == 16 { // issue 14's goal is stated at 16 sandboxes
			row.Goal, row.Met = "≥ 0.9× at 16", metIf(row.Ratio() >= 0.9)
		}
		r.add(3, row)
	}
	r.note("Latency under load (p50 / p90): %s", func() string {
		s := ""
		for _, c := range levels {
			s += fmt.Sprintf("%d sandboxes: via Bay %s / %s, straight to Ship %s / %s; ", c,
				Format(bayLat[c].P(0.5), "ms"), Format(bayLat[c].P(0.9), "ms"),
				Format(shipLat[c].P(0.5), "ms"), Format(shipLat[c].P(0.9), "ms"))
		}
		return s[:len(s)-2] + "."
	}())
	if errCount > 0 {
		r.note("**%d calls failed under load** (not counted); last error: %v", errCount, lastErr)
		r.t.Errorf("%d calls failed under load; last: %v", errCount, lastErr)
	}
	if _, hwm, err := r.main.rss(); err == nil {
		r.note("Bay's peak RSS over the whole run (VmHWM, after the throughput runs): %s.", Format(mib(hwm), "MiB"))
	}
	if _, hwm, err := shipRSS(r.ctx, r.cli, r.ships[0].ContainerID); err == nil {
		r.note("Ship's peak RSS in the busiest container (VmHWM, after the throughput runs): %s.", Format(mib(hwm), "MiB"))
	}
	r.add(5, Row{Figure: "5 RSS", Subject: bayLoad, Base: bayIdle, Delta: true})
	r.add(5, Row{Figure: "5 RSS", Subject: shipIdle, Goal: "< 20 MB", Met: metIf(shipIdle.P(0.5)*1024*1024 < 20*mb)})
	r.add(5, Row{Figure: "5 RSS", Subject: shipLoad, Base: shipIdle, Delta: true})
}

// sampleBayRSS samples Bay's VmRSS every 100 ms into s (when on) until the
// returned stop is called.
func (r *run) sampleBayRSS(s *Series, on bool) (stop func()) {
	if !on {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				if rss, _, err := r.main.rss(); err == nil {
					s.Add(mib(rss))
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
