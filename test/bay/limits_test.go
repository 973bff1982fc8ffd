package bay_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/test/baytest"
)

// TestResourceLimitsHold: a sandbox sees its profile's limits from inside; an
// OOM and a fork bomb in one sandbox are contained: the caller is told what
// happened, a second sandbox keeps answering about as fast as before, Bay stays
// healthy, and the first sandbox works again on the next call.
func TestResourceLimitsHold(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{ConfigYAML: `
profiles:
  - id: small
    image: ship:latest
    resources: {cpus: 0.5, memory: 256m}
    pids_limit: 128
`})
	a := b.CreateSandbox(t, map[string]any{"profile": "small"})
	other := b.CreateSandbox(t, map[string]any{"profile": "small"})
	shell := func(id, cmd string, timeout int) map[string]any {
		t.Helper()
		return b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec",
			Body: map[string]any{"command": cmd, "timeout": timeout}})
	}

	// The limits, read from inside (cgroup v1 on these machines, v2 elsewhere).
	r := shell(a, `cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max
q=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null) && p=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us) && echo "$q $p" || cat /sys/fs/cgroup/cpu.max`, 10)
	if got := strings.Fields(r["output"].(string)); !slices.Equal(got, []string{"268435456", "128", "50000", "100000"}) {
		t.Fatalf("limits seen from inside = %q, want 256 MiB, 128 pids, half a CPU", got)
	}

	latency := func() time.Duration {
		var ds []time.Duration
		for range 7 {
			t0 := time.Now()
			if out := b.Python(t, other, "1+1"); out["output"] != "2" {
				t.Fatalf("other sandbox: %v", out)
			}
			ds = append(ds, time.Since(t0))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	base := latency()

	// OOM in the kernel: the caller is told it ran out of memory, and the limit.
	b.Python(t, a, "keep = 1")
	var wg sync.WaitGroup
	wg.Add(1)
	var oom map[string]any
	go func() {
		defer wg.Done()
		oom = b.Python(t, a, "hog = bytearray(1024**3)")
	}()
	// A fork bomb beside it, cut off by the shell timeout and the pids limit.
	wg.Add(1)
	var bomb map[string]any
	go func() {
		defer wg.Done()
		bomb = shell(a, `bomb() { bomb | bomb & }; bomb; sleep 30`, 4)
	}()
	time.Sleep(500 * time.Millisecond)
	during := latency()
	wg.Wait()
	if oom["success"] != false || !strings.Contains(oom["error"].(string), "out of memory") ||
		!strings.Contains(oom["error"].(string), "256 MiB") {
		t.Fatalf("OOM answer: %v", oom)
	}
	if bomb["timed_out"] != true {
		t.Fatalf("fork bomb answer: %v", bomb)
	}
	if limit := max(3*base, base+100*time.Millisecond); during > limit {
		t.Fatalf("the other sandbox slowed from %v to %v (p50) while one sandbox was OOMing and fork-bombing", base, during)
	}
	t.Logf("other sandbox 1+1 p50: %v before, %v during OOM + fork bomb", base, during)
	if h := b.Do(t, baytest.Req{Method: "GET", Path: "/health"}); h.Status != http.StatusOK {
		t.Fatalf("Bay health after: %d %s", h.Status, h.Body)
	}
	if out := b.Python(t, a, "1+1"); out["output"] != "2" {
		t.Fatalf("the OOMed sandbox after: %v", out)
	}
	if r := shell(a, "echo alive", 10); r["output"] != "alive" {
		t.Fatalf("shell after the fork bomb: %v", r)
	}
	// A shell command the OOM killer ends says so too.
	// (exit code -9: bash execs a lone command, so the signal ends the shell's process).
	if r := shell(a, "python3 -c 'hog = bytearray(1024**3)'", 30); r["exit_code"] != float64(-9) ||
		!strings.Contains(r["notice"].(string), "out-of-memory killer") || !strings.Contains(r["notice"].(string), "256 MiB") {
		t.Fatalf("shell OOM answer: %v", r)
	}
}

// TestVenvAndPip: python3 -m venv works in the image and pip installs into it
// (offline here: a local wheel, since no package index is reachable).
func TestVenvAndPip(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	r := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec", Body: map[string]any{"timeout": 120,
		"command": `set -e
python3 -m venv /workspace/venv
python3 - <<'PY'
import zipfile
with zipfile.ZipFile("hello_pkg-1.0-py3-none-any.whl", "w") as z:
    z.writestr("hello_pkg/__init__.py", 'GREETING = "hi from a venv"\n')
    z.writestr("hello_pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: hello-pkg\nVersion: 1.0\n")
    z.writestr("hello_pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("hello_pkg-1.0.dist-info/RECORD", "")
PY
/workspace/venv/bin/pip install -q --no-index ./hello_pkg-1.0-py3-none-any.whl
/workspace/venv/bin/python -c 'import hello_pkg, sys; print(hello_pkg.GREETING, sys.prefix)'
/workspace/venv/bin/pip --version`}})
	if r["exit_code"] != float64(0) || !strings.Contains(r["output"].(string), "hi from a venv /workspace/venv") {
		t.Fatalf("venv + pip: %v", r)
	}
}
