package sweep

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		line string
		want Proc
		ok   bool
	}{
		{"42 (sleep) S 1 42 42 0 -1 4194560", Proc{Pid: 42, State: 'S', PPid: 1, Pgid: 42, Sid: 42}, true},
		{"7 (a b) c)) Z 3 5 6 0", Proc{Pid: 7, State: 'Z', PPid: 3, Pgid: 5, Sid: 6}, true},
		{"7 (x) S 1 2", Proc{}, false},
		{"7 x S 1 2 3", Proc{}, false},
		{"7 (x) S a 2 3", Proc{}, false},
	}
	for _, tt := range tests {
		got, ok := parseStat(tt.want.Pid, []byte(tt.line))
		if tt.ok && got.Pid == 0 {
			got.Pid = tt.want.Pid
		}
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (tini) S 0 1 1 0 -1 4194560 100 0 0 0"))
	f.Add([]byte("93 (python3 -m ipykernel) S 7 93 93 0 -1 4194560"))
	f.Add([]byte("12 ((sd-pam)) Z 11 12 12"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := parseStat(5, b)
		if ok && p.Pid != 5 {
			t.Fatalf("pid %d", p.Pid)
		}
	})
}

func TestVictims(t *testing.T) {
	ps := []Proc{
		{Pid: 1, PPid: 0, Pgid: 1, Sid: 1, State: 'S'},     // tini
		{Pid: 7, PPid: 1, Pgid: 7, Sid: 7, State: 'S'},     // ship
		{Pid: 20, PPid: 7, Pgid: 20, Sid: 7, State: 'S'},   // kernel
		{Pid: 21, PPid: 20, Pgid: 20, Sid: 7, State: 'S'},  // kernel's child
		{Pid: 30, PPid: 7, Pgid: 30, Sid: 7, State: 'S'},   // background handle
		{Pid: 40, PPid: 7, Pgid: 40, Sid: 40, State: 'S'},  // terminal
		{Pid: 41, PPid: 40, Pgid: 41, Sid: 40, State: 'S'}, // a job in the terminal
		{Pid: 50, PPid: 0, Pgid: 50, Sid: 50, State: 'S'},  // docker exec
		{Pid: 60, PPid: 1, Pgid: 60, Sid: 60, State: 'S'},  // setsid sleep
		{Pid: 61, PPid: 1, Pgid: 55, Sid: 7, State: 'S'},   // server left by a finished command
		{Pid: 62, PPid: 1, Pgid: 62, Sid: 62, State: 'Z'},  // zombie
		{Pid: 63, PPid: 21, Pgid: 63, Sid: 63, State: 'R'}, // kernel's child in its own session
		{Pid: 64, PPid: 7, Pgid: 64, Sid: 7, State: 'S'},   // running foreground command
		{Pid: 65, PPid: 64, Pgid: 64, Sid: 7, State: 'S'},  // its child
		{Pid: 66, PPid: 64, Pgid: 66, Sid: 66, State: 'S'}, // its child that escaped with setsid
		{Pid: 70, PPid: 1, Pgid: 0, Sid: 0, State: 'S'},    // pgid 0 must not match an empty keep
		{Pid: 80, PPid: 1, Pgid: 80, Sid: 80, State: 'T'},  // stopped
	}
	k := Keep{Pids: []int{7}, Groups: []int{20, 30, 64}, Sessions: []int{40}}
	var got []int
	for _, p := range Victims(ps, k) {
		got = append(got, p.Pid)
	}
	if want := []int{60, 61, 63, 66, 70, 80}; !slices.Equal(got, want) {
		t.Errorf("victims %v, want %v", got, want)
	}
}

func writeProc(t *testing.T, dir string, p Proc) {
	t.Helper()
	d := filepath.Join(dir, fmt.Sprint(p.Pid))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("%d (cmd) %c %d %d %d 0 -1\n", p.Pid, p.State, p.PPid, p.Pgid, p.Sid)
	if err := os.WriteFile(filepath.Join(d, "stat"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSweepStopsThenKills(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []Proc{
		{Pid: 1, PPid: 0, Pgid: 1, Sid: 1, State: 'S'},
		{Pid: 20, PPid: 7, Pgid: 20, Sid: 7, State: 'S'},
		{Pid: 60, PPid: 1, Pgid: 60, Sid: 60, State: 'S'},
		{Pid: 61, PPid: 1, Pgid: 61, Sid: 61, State: 'S'},
	} {
		writeProc(t, dir, p)
	}
	if err := os.Mkdir(filepath.Join(dir, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	type sig struct {
		pid int
		sig syscall.Signal
	}
	var sent []sig
	s := New(dir, func() Keep { return Keep{Groups: []int{20}} }, nil)
	s.signal = func(pid int, sg syscall.Signal) error {
		sent = append(sent, sig{pid, sg})
		if pid == 60 && sg == syscall.SIGSTOP {
			// A fork while the sweep runs: the next pass stops it too.
			writeProc(t, dir, Proc{Pid: 90, PPid: 60, Pgid: 60, Sid: 60, State: 'R'})
		}
		if sg == syscall.SIGKILL {
			// Gone and reaped: 90 only a little later.
			d := filepath.Join(dir, fmt.Sprint(pid))
			if pid == 90 {
				time.AfterFunc(100*time.Millisecond, func() { _ = os.RemoveAll(d) })
			} else if err := os.RemoveAll(d); err != nil {
				t.Error(err)
			}
		}
		if pid == 61 && sg == syscall.SIGKILL {
			return syscall.ESRCH // already gone
		}
		return nil
	}
	n, err := s.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "90")); !os.IsNotExist(err) {
		t.Error("Sweep returned before the killed processes were reaped")
	}
	if n != 2 {
		t.Errorf("killed %d, want 2 (60 and 90; 61 was gone)", n)
	}
	stops, kills := map[int]bool{}, map[int]bool{}
	for i, x := range sent {
		switch x.sig {
		case syscall.SIGSTOP:
			stops[x.pid] = true
			if len(kills) > 0 {
				t.Errorf("signal %d: a stop after a kill", i)
			}
		case syscall.SIGKILL:
			kills[x.pid] = true
		}
	}
	for _, pid := range []int{60, 61, 90} {
		if !stops[pid] || !kills[pid] {
			t.Errorf("pid %d: stopped %v killed %v", pid, stops[pid], kills[pid])
		}
	}
	if stops[1] || stops[20] {
		t.Errorf("kept processes signalled: %v", sent)
	}
}

func TestPressure(t *testing.T) {
	proc, cg := t.TempDir(), t.TempDir()
	writeProc(t, proc, Proc{Pid: 1, PPid: 0, Pgid: 1, Sid: 1, State: 'S'})
	writeProc(t, proc, Proc{Pid: 9, PPid: 1, Pgid: 9, Sid: 9, State: 'Z'})
	if err := os.WriteFile(filepath.Join(cg, "pids.current"), []byte("12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte("max\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := Pressure(proc, cg)
	if st.Processes != 2 || st.Zombies != 1 || st.PidsCurrent == nil || *st.PidsCurrent != 12 || st.PidsMax != nil {
		t.Errorf("stats %+v", st)
	}
	// cgroup v1: the pids controller has its own directory.
	v1 := t.TempDir()
	if err := os.MkdirAll(filepath.Join(v1, "pids"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"pids.current": "7\n", "pids.max": "256\n"} {
		if err := os.WriteFile(filepath.Join(v1, "pids", name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st = Pressure(proc, v1)
	if st.PidsCurrent == nil || *st.PidsCurrent != 7 || st.PidsMax == nil || *st.PidsMax != 256 {
		t.Errorf("cgroup v1 stats %+v", st)
	}
}

func TestExhausted(t *testing.T) {
	err := fmt.Errorf("start: %w", &os.PathError{Op: "fork/exec", Path: "/bin/bash", Err: syscall.EAGAIN})
	if !Exhausted(err) || Exhausted(fmt.Errorf("x: %w", syscall.ENOENT)) {
		t.Error("Exhausted misclassifies")
	}
}

func TestCrowded(t *testing.T) {
	tests := []struct {
		name     string
		dir      string // "" = cgroup v2 layout, "pids" = v1
		cur, max string
		want     bool
	}{
		{"plenty free (v2)", "", "30", "256", false},
		{"seven free (v1)", "pids", "249", "256", true},
		{"exactly eight free", "", "248", "256", false},
		{"unlimited", "", "300", "max", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, tt.dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, v := range map[string]string{"pids.current": tt.cur, "pids.max": tt.max} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := Crowded(root); got != tt.want {
				t.Fatalf("Crowded = %v, want %v", got, tt.want)
			}
		})
	}
	if Crowded(t.TempDir()) {
		t.Fatal("no pids controller: not crowded")
	}
}
