// Package cgroup reads the memory accounting of the container Ship runs in
// (cgroup v1 or v2), so Ship can tell a caller that their process was killed
// by the out-of-memory killer rather than just "killed".
package cgroup

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory reads one container's memory cgroup files under Root.
type Memory struct {
	Root string // the cgroup mount, "/sys/fs/cgroup" in a container
}

// Default is the container's own cgroup mount.
func Default() Memory { return Memory{Root: "/sys/fs/cgroup"} }

// OOMKills returns how many processes the OOM killer has killed in the
// container so far; ok is false when the count cannot be read (no memory
// cgroup, or gVisor, which does not expose it).
func (m Memory) OOMKills() (n int64, ok bool) {
	for _, f := range []string{"memory.events", "memory/memory.oom_control"} { // v2, v1
		if v, found := readKey(filepath.Join(m.Root, f), "oom_kill"); found {
			return v, true
		}
	}
	return 0, false
}

// Limit returns the container's memory limit in bytes; ok is false when there
// is none or it cannot be read.
func (m Memory) Limit() (int64, bool) {
	for _, f := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(filepath.Join(m.Root, f))
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		v, err := strconv.ParseInt(s, 10, 64)
		// "max" (v2) or a huge page-rounded value (v1) mean no limit.
		if err != nil || v <= 0 || v >= 1<<62 {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

// readKey finds "key <int>" in a flat-keyed cgroup file.
func readKey(path, key string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Size renders a memory limit as people write it: "1 GiB", "1.5 GiB", "256 MiB".
func Size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	default:
		return fmt.Sprintf("%d MiB", n>>20)
	}
}
