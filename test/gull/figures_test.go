package gulltest

import (
	"context"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestFigures measures what bench/REPORT.md quotes for the browser: a cold
// `open` of a local page (Chromium's start included), the warm `snapshot -i`
// round trip straight to Gull, and the idle memory of the Gull container.
// Run with SHIPYARD_BENCH=1 (numbers are logged; the bounds only catch a
// broken runtime, not a slow machine).
func TestFigures(t *testing.T) {
	requireE2E(t)
	if os.Getenv("SHIPYARD_BENCH") != "1" {
		t.Skip("set SHIPYARD_BENCH=1 to measure")
	}
	env := NewEnv(t)
	g := env.StartGull(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	time.Sleep(2 * time.Second)
	idleNoBrowser, err := g.MemoryUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	g.MustExec(t, "open http://web:8000/login")
	cold := time.Since(t0)
	t0 = time.Now()
	g.MustExec(t, "open http://web:8000/login")
	warmOpen := time.Since(t0)
	var d []time.Duration
	for range 50 {
		t0 := time.Now()
		out := g.MustExec(t, "snapshot -i")
		d = append(d, time.Since(t0))
		if !strings.Contains(out, "[button]") {
			t.Fatalf("snapshot: %s", out)
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	time.Sleep(2 * time.Second)
	idle, err := g.MemoryUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold open (browser start included): %v; warm open: %v", cold.Round(time.Millisecond), warmOpen.Round(time.Millisecond))
	t.Logf("warm snapshot -i straight to gull: p50 %v, p90 %v, max %v (n=%d)", d[len(d)/2].Round(10*time.Microsecond),
		d[len(d)*9/10].Round(10*time.Microsecond), d[len(d)-1].Round(10*time.Microsecond), len(d))
	t.Logf("container memory: %.1f MiB before the first command, %.1f MiB idle with the browser and one page open",
		float64(idleNoBrowser)/(1<<20), float64(idle)/(1<<20))
	if cold > 30*time.Second || d[len(d)/2] > time.Second {
		t.Errorf("the browser runtime is broken or badly slow: cold %v, snapshot p50 %v", cold, d[len(d)/2])
	}
}
