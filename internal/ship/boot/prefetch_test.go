package boot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPrefetch(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	large := filepath.Join(dir, "large")
	if err := os.WriteFile(small, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(large, make([]byte, prefetchLarge+3), 0o644); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge") // sparse: larger than PrefetchMaxFile
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, PrefetchMaxFile+1); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	f := func(p string) string { return fmt.Sprintf("f 5 %s", p) }

	tests := []struct {
		name  string
		lines []string
		want  PrefetchStats
	}{
		{"empty", nil, PrefetchStats{}},
		{"files and a directory", []string{f(small), "f 1048579 " + large, "d " + sub, "d " + dir},
			PrefetchStats{Files: 2, Dirs: 2, Bytes: 5 + prefetchLarge + 3}},
		// The size is a hint for which reader takes the file: whatever it
		// says, the file is read whole.
		{"stale size", []string{"f 1 " + large, fmt.Sprintf("f %d %s", 10<<20, small)},
			PrefetchStats{Files: 2, Bytes: 5 + prefetchLarge + 3}},
		{"missing", []string{f(filepath.Join(dir, "none")), "d " + filepath.Join(dir, "none")}, PrefetchStats{Skipped: 2}},
		{"not absolute", []string{"f 5 small", "d sub"}, PrefetchStats{Skipped: 2}},
		{"malformed", []string{"x " + small, "f " + small, "f five " + small, "", "f", "d"}, PrefetchStats{Skipped: 6}},
		{"wrong kind", []string{"d " + small, f(sub)}, PrefetchStats{Skipped: 2}},
		{"not a regular file", []string{f(fifo), f("/dev/zero")}, PrefetchStats{Skipped: 2}},
		{"too large", []string{f(huge)}, PrefetchStats{Skipped: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := filepath.Join(t.TempDir(), "list")
			var text string
			for _, l := range tt.lines {
				text += l + "\n"
			}
			if err := os.WriteFile(list, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var got PrefetchStats
			var err error
			go func() {
				defer close(done)
				got, err = Prefetch(list)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Prefetch did not return")
			}
			if err != nil || got != tt.want {
				t.Fatalf("Prefetch = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestPrefetchBounds(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Only the first PrefetchMaxEntries lines are read.
	var b strings.Builder
	for range PrefetchMaxEntries + 10 {
		fmt.Fprintf(&b, "f 5 %s\n", small)
	}
	list := filepath.Join(dir, "list")
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := Prefetch(list)
	if err != nil || st.Files != PrefetchMaxEntries || st.Bytes != 5*PrefetchMaxEntries {
		t.Fatalf("Prefetch = %+v, %v", st, err)
	}
	if _, err := Prefetch(filepath.Join(dir, "no-list")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing list: %v", err)
	}
}

func TestOnFUSE(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{t.TempDir(), false},
		{"/proc", false},
		{"/no/such/path", false},
	}
	for _, tt := range tests {
		if got := OnFUSE(tt.path); got != tt.want {
			t.Errorf("OnFUSE(%s) = %v", tt.path, got)
		}
	}
}
