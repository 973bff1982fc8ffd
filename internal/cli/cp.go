package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// remote splits "id:path"; ok is false for a local path. A path with a
// slash before the first colon (./a:b, /x:y) is local.
func remote(s string) (id, path string, ok bool) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || strings.ContainsRune(s[:i], '/') {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func (a *app) cp(ctx context.Context, args []string) error {
	fs := a.flags("cp")
	quiet := fs.Bool("q", false, "")
	pos, _, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("cp", pos, 2, "<file> <id>:<path> or <id>:<path> <file>"); err != nil {
		return err
	}
	srcID, srcPath, srcRemote := remote(pos[0])
	dstID, dstPath, dstRemote := remote(pos[1])
	switch {
	case srcRemote == dstRemote:
		return usagef("cp: exactly one side must be <id>:<path>")
	case dstRemote:
		return a.upload(ctx, pos[0], dstID, dstPath, *quiet)
	default:
		return a.download(ctx, srcID, srcPath, pos[1], *quiet)
	}
}

func (a *app) upload(ctx context.Context, local, id, path string, quiet bool) error {
	var r io.Reader = a.Stdin
	var size int64 = -1
	if local != "-" {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			if st.IsDir() {
				return fmt.Errorf("cp: %s is a directory", local)
			}
			size = st.Size()
		}
		r = f
	}
	if path == "" || strings.HasSuffix(path, "/") {
		if local == "-" {
			return usagef("cp: name the destination file when reading stdin")
		}
		path += baseName(local)
	}
	p := a.progress(quiet, size)
	res, err := a.client.Upload(ctx, id, path, p.reader(r))
	p.done()
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(res)
	}
	if !quiet {
		fmt.Fprintf(a.Stderr, "%s → %s:%s (%s)\n", local, id, res.Path, human(res.Size))
	}
	return nil
}

func (a *app) download(ctx context.Context, id, path, local string, quiet bool) error {
	var w io.Writer = a.Stdout
	var tmp *os.File // the file being written, renamed to local at the end
	if local != "-" {
		if st, err := os.Stat(local); err == nil && st.IsDir() {
			local = strings.TrimSuffix(local, "/") + "/" + baseName(path)
		}
		// Write next to the target and rename at the end: a failed copy
		// leaves no half file under the name.
		f, err := os.CreateTemp(dirName(local), ".shipyard-cp-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		w, tmp = f, f
	}
	rc, err := a.client.Download(ctx, id, path)
	if err != nil {
		return err
	}
	defer rc.Close()
	p := a.progress(quiet || local == "-", -1)
	n, err := io.Copy(w, p.reader(rc))
	p.done()
	if err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	if tmp != nil {
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), local); err != nil {
			return err
		}
	}
	if a.json {
		return a.printJSON(map[string]any{"path": path, "local": local, "size": n})
	}
	if !quiet && local != "-" {
		fmt.Fprintf(a.Stderr, "%s:%s → %s (%s)\n", id, path, local, human(n))
	}
	return nil
}

func baseName(p string) string {
	p = strings.TrimRight(p, "/")
	return p[strings.LastIndexByte(p, '/')+1:]
}

func dirName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i+1]
	}
	return "."
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// progress draws a one-line progress display on stderr when stderr is a
// terminal and the transfer is large (≥ 1 MiB, or of unknown size).
type progress struct {
	w     io.Writer
	total int64
	n     int64
	last  time.Time
	on    bool
	drawn bool
}

const progressMin = 1 << 20

func (a *app) progress(quiet bool, total int64) *progress {
	p := &progress{w: a.Stderr, total: total}
	if f, ok := a.Stderr.(*os.File); ok && !quiet && !a.json && term.IsTerminal(int(f.Fd())) {
		p.on = total < 0 || total >= progressMin
	}
	return p
}

func (p *progress) reader(r io.Reader) io.Reader {
	if !p.on {
		return r
	}
	return &progressReader{r, p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(n)
	return n, err
}

func (p *progress) add(n int) {
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond && p.n >= progressMin {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	p.drawn = true
	if p.total > 0 {
		pct := float64(p.n) * 100 / float64(p.total)
		width := 30
		fill := int(pct / 100 * float64(width))
		fill = min(max(fill, 0), width)
		fmt.Fprintf(p.w, "\r[%s%s] %5.1f%%  %s / %s ", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, human(p.n), human(p.total))
		return
	}
	fmt.Fprintf(p.w, "\r%s ", human(p.n))
}

func (p *progress) done() {
	if p.drawn {
		p.draw()
		fmt.Fprintln(p.w)
	}
}
