// Package sweep keeps a sandbox usable when user code exhausts its process
// slots (the container's pids limit): it lists the container's processes,
// kills the stray ones (everything Ship does not track as live) when a spawn
// fails for lack of slots, and reports process pressure for /health.
//
// Orphans are reaped by the container's init (tini, PID 1 in the image):
// a killed stray's children are re-parented to it, so no zombies pile up.
package sweep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one process as /proc/<pid>/stat describes it.
type Proc struct {
	Pid, PPid, Pgid, Sid int
	State                byte // R, S, Z, ...
}

// List reads the processes under procDir (/proc).
func List(procDir string) ([]Proc, error) {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	out := make([]Proc, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procDir, e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		if p, ok := parseStat(pid, b); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// parseStat reads state, ppid, pgrp and session from a /proc/<pid>/stat line.
func parseStat(pid int, b []byte) (Proc, bool) {
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Proc{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 || len(f[0]) != 1 {
		return Proc{}, false
	}
	var n [3]int
	for j := range n {
		v, err := strconv.Atoi(f[j+1])
		if err != nil {
			return Proc{}, false
		}
		n[j] = v
	}
	return Proc{Pid: pid, State: f[0][0], PPid: n[0], Pgid: n[1], Sid: n[2]}, true
}

// Keep names what a sweep must not touch.
type Keep struct {
	Pids     []int // e.g. Ship itself
	Parents  []int // children of these: Ship's own (every process Ship started and still waits for, a kernel being started included)
	Groups   []int // process groups: the kernel, background handles, running commands
	Sessions []int // sessions: live terminals
}

// Victims returns the processes of ps a sweep kills: all but PID 1, processes
// entered from outside the container (parent 0, e.g. docker exec), zombies
// (already dead) and what k keeps.
func Victims(ps []Proc, k Keep) []Proc {
	var out []Proc
	for _, p := range ps {
		if p.Pid <= 1 || p.PPid == 0 || p.State == 'Z' || p.State == 'X' || contains(k.Pids, p.Pid) ||
			contains(k.Parents, p.PPid) || contains(k.Groups, p.Pgid) || contains(k.Sessions, p.Sid) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v && x > 0 {
			return true
		}
	}
	return false
}

// Exhausted reports whether err is a spawn failure for lack of process slots
// (fork/clone gives EAGAIN under a pids limit or RLIMIT_NPROC).
func Exhausted(err error) bool { return errors.Is(err, syscall.EAGAIN) }

// Sweeper kills stray processes. The zero value is not usable; see New.
type Sweeper struct {
	procDir string
	keep    func() Keep
	log     *slog.Logger
	signal  func(pid int, sig syscall.Signal) error
	mu      sync.Mutex // one sweep at a time
}

// New returns a Sweeper over procDir (/proc) that spares what keep returns
// (called afresh on every pass) and Ship itself.
func New(procDir string, keep func() Keep, log *slog.Logger) *Sweeper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{procDir: procDir, keep: keep, log: log, signal: syscall.Kill}
}

// maxPasses bounds the stop passes of a sweep (a fork bomb keeps forking
// until all of it is stopped).
const maxPasses = 20

// Sweep stops every stray process (SIGSTOP, pass after pass, until no new
// one appears, so that forking strays cannot outrun it), then kills them all
// (SIGKILL). It returns how many it killed.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	self := os.Getpid()
	stopped := make(map[int]bool)
	var errs []error
	for pass := 0; pass < maxPasses && ctx.Err() == nil; pass++ {
		ps, err := List(s.procDir)
		if err != nil {
			return 0, err
		}
		k := s.keep()
		k.Pids = append(k.Pids, self)
		k.Parents = append(k.Parents, self)
		fresh := 0
		for _, p := range Victims(ps, k) {
			if stopped[p.Pid] {
				continue
			}
			stopped[p.Pid] = true
			fresh++
			if err := s.signal(p.Pid, syscall.SIGSTOP); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("stop %d: %w", p.Pid, err))
			}
		}
		if fresh == 0 {
			break
		}
	}
	killed := 0
	for pid := range stopped {
		err := s.signal(pid, syscall.SIGKILL)
		switch {
		case err == nil:
			killed++
		case !errors.Is(err, syscall.ESRCH):
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	// A slot is free only once the process is gone and reaped (by the
	// container's init): wait for that, briefly, so that a retry finds it.
	left := s.waitGone(ctx, stopped)
	s.log.WarnContext(ctx, "out of process slots: killed stray processes", "killed", killed, "not_yet_gone", left)
	return killed, errors.Join(errs...)
}

// reapWait bounds how long a sweep waits for killed processes to be reaped.
const reapWait = 3 * time.Second

// waitGone waits until none of pids is listed any more (reaped), at most
// reapWait; it returns how many still are.
func (s *Sweeper) waitGone(ctx context.Context, pids map[int]bool) int {
	deadline := time.Now().Add(reapWait)
	for {
		left := 0
		ps, err := List(s.procDir)
		if err != nil {
			return len(pids)
		}
		for _, p := range ps {
			if pids[p.Pid] {
				left++
			}
		}
		if left == 0 || time.Now().After(deadline) {
			return left
		}
		select {
		case <-ctx.Done():
			return left
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Stats is process pressure, for /health.
type Stats struct {
	Processes int `json:"processes"` // processes in the container (zombies included)
	Zombies   int `json:"zombies"`
	// PidsCurrent and PidsMax are the cgroup's pids counter and limit
	// (threads count); nil when unknown or unlimited.
	PidsCurrent *int `json:"pids_current"`
	PidsMax     *int `json:"pids_max"`
}

// Pressure reads process counts from procDir (/proc) and the pids counter of
// the container's cgroup mounted at cgroupDir (/sys/fs/cgroup: cgroup v2, or
// its pids/ controller directory under cgroup v1).
func Pressure(procDir, cgroupDir string) Stats {
	var st Stats
	if ps, err := List(procDir); err == nil {
		st.Processes = len(ps)
		for _, p := range ps {
			if p.State == 'Z' {
				st.Zombies++
			}
		}
	}
	for _, dir := range []string{cgroupDir, filepath.Join(cgroupDir, "pids")} {
		if cur := readInt(filepath.Join(dir, "pids.current")); cur != nil {
			st.PidsCurrent = cur
			st.PidsMax = readInt(filepath.Join(dir, "pids.max"))
			break
		}
	}
	return st
}

// minFree is how many process slots a command needs to be useful: bash -lc,
// what its profile runs, the command and a pipe or two.
const minFree = 8

// Crowded reports whether the container's cgroup (as in Pressure) has fewer
// than minFree process slots left. A command started then gets its own slot
// but fails to fork inside (bash retries for ever), so a sweep must come
// first, not after a spawn error that never happens.
func Crowded(cgroupDir string) bool {
	for _, dir := range []string{cgroupDir, filepath.Join(cgroupDir, "pids")} {
		if cur := readInt(filepath.Join(dir, "pids.current")); cur != nil {
			max := readInt(filepath.Join(dir, "pids.max"))
			return max != nil && *max-*cur < minFree
		}
	}
	return false
}

func readInt(path string) *int {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil { // "max": unlimited
		return nil
	}
	return &v
}
