package process

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMemory is a container whose OOM kill count the command itself bumps
// (through a file the test watches) before it is killed.
type fakeMemory struct {
	kills atomic.Int64
	limit int64
}

func (f *fakeMemory) OOMKills() (int64, bool) { return f.kills.Load(), true }
func (f *fakeMemory) Limit() (int64, bool)    { return f.limit, f.limit > 0 }

// TestRunOOMNotice: a foreground command SIGKILLed while the container's OOM
// kill count rose carries an out-of-memory notice; one killed otherwise, or
// ending normally, does not.
func TestRunOOMNotice(t *testing.T) {
	cases := []struct {
		name    string
		command string
		oom     bool
		want    string
	}{
		{"oom-killed child", "sleep 0.2; kill -9 $BASHPID", true, "out-of-memory killer: the sandbox's memory limit of 256 MiB"},
		{"killed, no oom", "kill -9 $BASHPID", false, ""},
		{"oom elsewhere, clean exit", "sleep 0.2; echo fine", true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := &fakeMemory{limit: 256 << 20}
			r, dir := newRunner(t, func(c *Config) { c.Memory = mem })
			if tc.oom {
				time.AfterFunc(100*time.Millisecond, func() { mem.kills.Add(1) })
			}
			res, err := r.Run(context.Background(), Spec{Command: tc.command, Dir: dir, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" && res.Notice != "" || !strings.Contains(res.Notice, tc.want) {
				t.Fatalf("notice = %q (rc %d), want %q", res.Notice, res.ReturnCode, tc.want)
			}
		})
	}
}
