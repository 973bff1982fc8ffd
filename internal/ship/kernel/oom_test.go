package kernel

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMemory is a container whose OOM kill count a test controls.
type fakeMemory struct {
	kills atomic.Int64
	limit int64
	known bool
}

func (f *fakeMemory) OOMKills() (int64, bool) { return f.kills.Load(), f.known }
func (f *fakeMemory) Limit() (int64, bool)    { return f.limit, f.limit > 0 }

// TestOOMKilledKernel: a kernel SIGKILLed while the container's OOM kill count
// went up is reported as out of memory with the limit; without that count (or
// when it did not move) the report stays the plain "signal: killed".
func TestOOMKilledKernel(t *testing.T) {
	cases := []struct {
		name    string
		mem     *fakeMemory
		oomKill bool // the "OOM killer" bumps the count before killing
		want    string
		notWant string
	}{
		{"oom with limit", &fakeMemory{limit: 1 << 30, known: true}, true, "out of memory (the sandbox's memory limit of 1 GiB was reached", "signal"},
		{"oom without limit", &fakeMemory{known: true}, true, "killed by the out-of-memory killer", "signal"},
		{"plain kill", &fakeMemory{limit: 512 << 20, known: true}, false, "signal: killed", "out of memory"},
		{"count unknown (gVisor)", &fakeMemory{limit: 1 << 30}, true, "signal: killed", "out of memory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Memory = tc.mem
			m := startManager(t, cfg)
			exec1(t, m, "x = 1", 10*time.Second)
			if tc.oomKill {
				tc.mem.kills.Add(1)
			}
			res := exec1(t, m, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", 10*time.Second)
			if res.Success || !strings.Contains(res.Error, tc.want) || strings.Contains(res.Error, tc.notWant) {
				t.Fatalf("error = %q; want it to contain %q and not %q", res.Error, tc.want, tc.notWant)
			}
			if res := exec1(t, m, "1+1", 30*time.Second); !res.Success {
				t.Fatalf("the next execution after the kill: %+v", res)
			}
		})
	}
}
