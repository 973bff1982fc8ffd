package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// gullImage is the browser runtime of the browser-python profile.
const gullImage = "gull:latest"

const browserPage = `<!doctype html><html><head><title>Bench</title></head><body><h1>Small page</h1>
<form><label for="q">Search</label> <input id="q"><button type="button">Go</button></form>
<p>Some text.</p><a href="#x">a link</a></body></html>`

// browserExec runs one browser command through Bay; it must succeed.
func (b *bayProc) browserExec(ctx context.Context, id, cmd string) (string, error) {
	var out struct {
		Success bool    `json:"success"`
		Output  string  `json:"output"`
		Error   *string `json:"error"`
	}
	if err := b.call(ctx, "POST", "/v1/sandboxes/"+id+"/browser/exec", map[string]any{"cmd": cmd}, &out); err != nil {
		return "", err
	}
	if !out.Success {
		return "", fmt.Errorf("browser %q: %s", cmd, deref(out.Error))
	}
	return out.Output, nil
}

// gullTarget is a sandbox's browser container reached straight from the
// host: its published port and SHIP_TOKEN, read with docker inspect.
type gullTarget struct{ ContainerID, Endpoint, Token string }

func gullOfSandbox(ctx context.Context, r *run, sandboxID string) (*gullTarget, error) {
	cs, err := r.cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "bay.sandbox_id="+sandboxID), filters.Arg("label", "bay.container_name=browser"))})
	if err != nil || len(cs) != 1 {
		return nil, fmt.Errorf("sandbox %s: browser container: %d, %v", sandboxID, len(cs), err)
	}
	insp, err := r.cli.ContainerInspect(ctx, cs[0].ID)
	if err != nil {
		return nil, err
	}
	g := &gullTarget{ContainerID: cs[0].ID}
	for _, e := range insp.Config.Env {
		if v, ok := strings.CutPrefix(e, "SHIP_TOKEN="); ok {
			g.Token = v
		}
	}
	binds := insp.NetworkSettings.Ports["8115/tcp"]
	if len(binds) == 0 {
		return nil, fmt.Errorf("sandbox %s: browser port not published", sandboxID)
	}
	g.Endpoint = "http://127.0.0.1:" + binds[0].HostPort
	return g, nil
}

// containerMemMiB is docker stats' memory use (usage minus inactive page cache).
func containerMemMiB(ctx context.Context, r *run, id string) (float64, error) {
	st, err := r.cli.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return 0, err
	}
	defer st.Body.Close()
	var v container.StatsResponse
	if err := json.NewDecoder(st.Body).Decode(&v); err != nil {
		return 0, err
	}
	return float64(v.MemoryStats.Usage-v.MemoryStats.Stats["inactive_file"]) / (1 << 20), nil
}

// browserFigure measures figure 12 on browser-python sandboxes of the main
// Bay, pages served from each sandbox's Ship container: a cold `open` (the
// session already up, Chromium started by this call) against a warm `open`
// of the same page; `snapshot -i` of a small page through Bay against the
// same command straight to the Gull container, interleaved; and the browser
// container's memory after the calls, idle.
func (r *run) browserFigure() {
	ctx := r.ctx
	cold := &Series{Label: "browser: cold `open` of a local page via Bay (Chromium start included)", Unit: "ms"}
	warmOpen := &Series{Label: "browser: warm `open` of the same page via Bay", Unit: "ms"}
	viaBay := &Series{Label: "browser: warm `snapshot -i` of a small page via Bay", Unit: "ms"}
	direct := &Series{Label: "browser: `snapshot -i` straight to Gull (published port, token)", Unit: "ms"}
	idle := &Series{Label: "browser: idle memory of the browser container after its calls", Unit: "MiB"}
	fail := func(format string, a ...any) {
		r.t.Fatalf("browser figure: "+format+"\n%s", append(a, r.main.logTail())...)
	}
	hc := newHTTPClient()
	defer hc.CloseIdleConnections()
	rounds := r.n(5, 2)
	for round := range rounds {
		id, _, err := r.main.create(ctx, "browser-python")
		if err != nil {
			fail("create: %v", err)
		}
		if err := r.main.call(ctx, "PUT", "/v1/sandboxes/"+id+"/filesystem/files", map[string]any{"path": "site/index.html", "content": browserPage}, nil); err != nil {
			fail("fixture: %v", err)
		}
		if err := r.main.shell(ctx, id, "cd /workspace/site && (setsid nohup python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 </dev/null &) && "+
			"for i in $(seq 50); do python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:8000/\")' 2>/dev/null && echo up && break; sleep 0.1; done", "up"); err != nil {
			fail("fixture server: %v", err)
		}
		t0 := time.Now()
		if _, err := r.main.browserExec(ctx, id, "open http://ship:8000/index.html"); err != nil {
			fail("cold open: %v", err)
		}
		cold.AddDuration(time.Since(t0))
		for range 3 {
			t0 = time.Now()
			if _, err := r.main.browserExec(ctx, id, "open http://ship:8000/index.html"); err != nil {
				fail("warm open: %v", err)
			}
			warmOpen.AddDuration(time.Since(t0))
		}
		g, err := gullOfSandbox(ctx, r, id)
		if err != nil {
			fail("%v", err)
		}
		if round == 0 {
			snap := func() error { _, err := r.main.browserExec(ctx, id, "snapshot -i"); return err }
			straight := func() error {
				var out struct {
					ExitCode int `json:"exit_code"`
				}
				if err := doJSON(ctx, hc, "POST", g.Endpoint+"/exec", g.Token, map[string]any{"cmd": "snapshot -i", "timeout": 30}, &out); err != nil {
					return err
				}
				if out.ExitCode != 0 {
					return fmt.Errorf("exit %d", out.ExitCode)
				}
				return nil
			}
			for i := 0; i < r.n(200, 20)+10; i++ {
				for j := range 2 {
					k := (i + j) % 2
					t0 := time.Now()
					if err := []func() error{snap, straight}[k](); err != nil {
						fail("snapshot: %v", err)
					}
					if i >= 10 {
						[]*Series{viaBay, direct}[k].AddDuration(time.Since(t0))
					}
				}
			}
		}
		time.Sleep(2 * time.Second)
		m, err := containerMemMiB(ctx, r, g.ContainerID)
		if err != nil {
			fail("stats: %v", err)
		}
		idle.Add(m)
		if err := r.main.delete(ctx, id); err != nil {
			fail("delete: %v", err)
		}
	}
	r.add(12, Row{Figure: "12 browser", Subject: cold, Base: warmOpen, Delta: true})
	r.add(12, Row{Figure: "12 browser", Subject: viaBay, Base: direct, Delta: true, Goal: "p50 < 50 ms via Bay",
		Met: metIf(viaBay.P(0.5) < 50)})
	r.add(12, Row{Figure: "12 browser", Subject: idle})
}

var browserMethod = "12: browser-python sandboxes of the main Bay (Ship and a Gull container, 1 CPU and 1 GiB each); a 300-byte page served by " +
	"python's `http.server` in the Ship container, opened by the browser at http://ship:8000/ over the session network. Each round: a new sandbox " +
	"(its session started by the fixture's shell call, not timed), a cold `open` (Chromium starts), three warm `open`s of the same page; in the first " +
	"round `snapshot -i` via `POST /v1/sandboxes/{id}/browser/exec` and straight to the Gull container's published port with its token, " +
	"alternating, 10 warm-up rounds not counted; after each round, 2 s idle, then the browser container's memory (docker stats: usage minus inactive_file)."

// TestBrowserFigure measures figure 12 alone on a Bay of its own and prints
// its rows in the report's format (SHIPYARD_BENCH=1 SHIPYARD_BENCH_BROWSER=1).
func TestBrowserFigure(t *testing.T) {
	if os.Getenv("SHIPYARD_BENCH") == "" || os.Getenv("SHIPYARD_BENCH_BROWSER") == "" {
		t.Skip("figure 12 alone: set SHIPYARD_BENCH=1 SHIPYARD_BENCH_BROWSER=1")
	}
	r, id := soloRun(t)
	if _, err := r.cli.ImageInspect(r.ctx, gullImage); err != nil {
		t.Skipf("%s is not built (make image builds it): %v", gullImage, err)
	}
	load0 := loadAvg()
	r.browserFigure()
	fmt.Println((&Report{Rows: r.rows[12]}).Table())
	fmt.Println(browserMethod)
	fmt.Printf("load average before / after: %s / %s\n", load0, loadAvg())
	if err := r.main.delete(r.ctx, id); err != nil {
		t.Error(err)
	}
}
