package boot

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Bounds of Prefetch: the list is read only up to these, and a file larger
// than PrefetchMaxFile is left out.
const (
	PrefetchMaxList    = 1 << 20 // bytes of the list
	PrefetchMaxEntries = 4096
	PrefetchMaxFile    = 64 << 20
	PrefetchMaxTotal   = 256 << 20 // bytes of all files together
)

// PrefetchStats says what a Prefetch read.
type PrefetchStats struct {
	Files, Dirs, Skipped int
	Bytes                int64
}

// Prefetch reads, and discards, the files and directories the list file names
// ("f SIZE PATH": a file, read whole, SIZE its size when the list was
// written; "d PATH": a directory, listed), in the order
// it names them. Ship runs it as it starts the kernel: on a container file
// system that fetches every file from a storage driver (fuse-overlayfs), the
// kernel's start then finds what it reads in memory instead of waiting for
// each of its ~100 files and directories in turn. Two readers share the work:
// one takes the directories and the small files, the other the large ones
// (the interpreter, the bundle, the larger libraries), so that the many quick
// reads the start waits on early do not queue behind the few long ones. The
// list comes from the image (written when it was built, see
// kernel.StartFilesPath); it only says what to read early, so a stale one
// costs time, never correctness. Entries that are not absolute, are missing
// or are neither regular files nor directories are skipped (nothing else is
// opened: no device or FIFO can block it).
func Prefetch(list string) (PrefetchStats, error) {
	var st PrefetchStats
	f, err := os.Open(list)
	if err != nil {
		return st, fmt.Errorf("prefetch list: %w", err)
	}
	type entry struct {
		dir  bool
		path string
	}
	var small, large []entry
	sc := bufio.NewScanner(io.LimitReader(f, PrefetchMaxList))
	for n := 0; sc.Scan() && n < PrefetchMaxEntries; n++ {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		var e entry
		var size int64
		var perr error
		switch kind {
		case "d":
			e = entry{dir: true, path: rest}
		case "f":
			n, p, _ := strings.Cut(rest, " ")
			size, perr = strconv.ParseInt(n, 10, 64)
			e = entry{path: p}
		}
		if e.path == "" || !filepath.IsAbs(e.path) || perr != nil {
			st.Skipped++
			continue
		}
		if size >= prefetchLarge {
			large = append(large, e)
		} else {
			small = append(small, e)
		}
	}
	err = sc.Err()
	f.Close()
	if err != nil {
		return st, fmt.Errorf("prefetch list: %w", err)
	}
	var (
		mu    sync.Mutex
		total int64
		wg    sync.WaitGroup
	)
	read := func(entries []entry) {
		defer wg.Done()
		buf := make([]byte, 128<<10)
		for _, e := range entries {
			var n int64
			var err error
			if e.dir {
				err = readDir(e.path)
			} else {
				mu.Lock()
				budget := PrefetchMaxTotal - total
				mu.Unlock()
				n, err = readFile(e.path, buf, budget)
			}
			mu.Lock()
			switch {
			case err != nil:
				st.Skipped++
			case e.dir:
				st.Dirs++
			default:
				st.Files++
				total += n
			}
			mu.Unlock()
		}
	}
	wg.Add(2)
	go read(small)
	go read(large)
	wg.Wait()
	st.Bytes = total
	return st, nil
}

// prefetchLarge is the size from which Prefetch reads a file with its second
// reader.
const prefetchLarge = 1 << 20

var errNotPrefetched = errors.New("not prefetched")

// readFile reads the regular file at p whole, buf at a time, unless it is
// larger than PrefetchMaxFile or budget.
func readFile(p string, buf []byte, budget int64) (int64, error) {
	// O_NONBLOCK: should p be a FIFO, opening it does not wait for a writer.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > PrefetchMaxFile || fi.Size() > budget {
		return 0, errNotPrefetched
	}
	// No readahead on this descriptor: each read fetches just its own
	// range, so that at most a read's worth of requests of each reader wait
	// in the storage driver's queue, ahead of the kernel's own (its exec
	// and page faults wait on each of theirs).
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
	var n int64
	for n < fi.Size() {
		m, err := f.Read(buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// readDir lists the directory at p.
func readDir(p string) error {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(1024)
		if err == io.EOF || (err == nil && len(names) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// OnFUSE reports whether path is on a FUSE file system (fuse-overlayfs,
// lazy-pulling snapshotters), where every file's first read goes to a
// user-space daemon: what Prefetch is for. On the kernel's overlayfs the files
// are mostly in the host's page cache already; reading ahead only costs CPU.
func OnFUSE(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.FUSE_SUPER_MAGIC
}
