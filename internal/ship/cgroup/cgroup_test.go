package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMemory(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]string
		kills   int64
		killsOK bool
		limit   int64
		limitOK bool
	}{
		{"v1", map[string]string{
			"memory/memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
			"memory/memory.limit_in_bytes": "1073741824\n",
		}, 2, true, 1 << 30, true},
		{"v1 unlimited", map[string]string{
			"memory/memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
			"memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0, true, 0, false},
		{"v1 old kernel without oom_kill", map[string]string{
			"memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n",
		}, 0, false, 0, false},
		{"v2", map[string]string{
			"memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n",
			"memory.max":    "536870912\n",
		}, 1, true, 512 << 20, true},
		{"v2 unlimited", map[string]string{"memory.events": "oom_kill 0\n", "memory.max": "max\n"}, 0, true, 0, false},
		{"nothing (gVisor)", nil, 0, false, 0, false},
		{"garbage", map[string]string{"memory.events": "oom_kill lots\n", "memory.max": "-5\n"}, 0, false, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, c := range tc.files {
				write(t, root, name, c)
			}
			m := Memory{Root: root}
			if n, ok := m.OOMKills(); n != tc.kills || ok != tc.killsOK {
				t.Errorf("OOMKills() = %d, %v; want %d, %v", n, ok, tc.kills, tc.killsOK)
			}
			if n, ok := m.Limit(); n != tc.limit || ok != tc.limitOK {
				t.Errorf("Limit() = %d, %v; want %d, %v", n, ok, tc.limit, tc.limitOK)
			}
		})
	}
}
