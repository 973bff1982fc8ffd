// Package sdk_test drives the Go SDK (pkg/shipyard) against a real Bay with
// real containers (SHIPYARD_E2E=1).
package sdk_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/pkg/shipyard"
	"github.com/shipyard/shipyard/test/baytest"
)

// start runs a Bay and returns an SDK client of it.
func start(t *testing.T) (*baytest.Bay, *shipyard.Client) {
	t.Helper()
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	c, err := shipyard.New(b.URL, baytest.APIKey, shipyard.WithHTTPClient(&http.Client{}))
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestSDKEndToEnd(t *testing.T) {
	_, c := start(t)
	ctx := ctxT(t, 4*time.Minute)

	// Create under one idempotency key twice: one sandbox.
	ttl := 600
	req := shipyard.CreateSandboxRequest{TTL: &ttl, IdempotencyKey: "sdk-e2e-create"}
	sb, err := c.CreateSandbox(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateSandbox(ctx, req)
	if err != nil || again.ID != sb.ID {
		t.Fatalf("replayed create = %v, %v; want %s", again, err, sb.ID)
	}
	other, err := c.CreateSandbox(ctx, shipyard.CreateSandboxRequest{}) // a fresh key each call
	if err != nil || other.ID == sb.ID {
		t.Fatalf("second create = %v, %v", other, err)
	}
	found := map[string]bool{}
	for s, err := range c.Sandboxes(ctx, shipyard.SandboxFilter{Limit: 1}) { // pages of one
		if err != nil {
			t.Fatal(err)
		}
		found[s.ID] = true
	}
	if !found[sb.ID] || !found[other.ID] {
		t.Fatalf("listing %v misses %s or %s", found, sb.ID, other.ID)
	}

	// Python keeps state; shell reports exit codes.
	if _, err := c.ExecPython(ctx, sb.ID, shipyard.PythonExecRequest{Code: "x = 20"}); err != nil {
		t.Fatal(err)
	}
	py, err := c.ExecPython(ctx, sb.ID, shipyard.PythonExecRequest{Code: "print(x + 22)"})
	if err != nil || !py.Success || strings.TrimSpace(py.Output) != "42" {
		t.Fatalf("python = %+v, %v", py, err)
	}
	sh, err := c.ExecShell(ctx, sb.ID, shipyard.ShellExecRequest{Command: "echo out; echo err >&2; exit 3"})
	if err != nil || sh.ExitCode == nil || *sh.ExitCode != 3 || !strings.Contains(sh.Output, "out") {
		t.Fatalf("shell = %+v, %v", sh, err)
	}

	// Files: a 3 MiB upload streamed in and out, byte for byte.
	blob := make([]byte, 3<<20)
	_, _ = rand.Read(blob)
	up, err := c.Upload(ctx, sb.ID, "data/blob.bin", bytes.NewReader(blob))
	if err != nil || up.Size != int64(len(blob)) {
		t.Fatalf("upload = %+v, %v", up, err)
	}
	var got bytes.Buffer
	n, err := c.DownloadTo(ctx, sb.ID, "data/blob.bin", &got)
	if err != nil || n != int64(len(blob)) || !bytes.Equal(got.Bytes(), blob) {
		t.Fatalf("download: %d bytes, %v (equal %v)", n, err, bytes.Equal(got.Bytes(), blob))
	}
	if err := c.WriteFile(ctx, sb.ID, "data/a.txt", "héllo"); err != nil {
		t.Fatal(err)
	}
	if s, err := c.ReadFile(ctx, sb.ID, "data/a.txt"); err != nil || s != "héllo" {
		t.Fatalf("read = %q, %v", s, err)
	}
	entries, err := c.ListDir(ctx, sb.ID, "data")
	if err != nil || len(entries) != 2 {
		t.Fatalf("list = %+v, %v", entries, err)
	}

	// Typed errors from the real Bay.
	_, err = c.ReadFile(ctx, sb.ID, "data/missing.txt")
	var ae *shipyard.APIError
	if !errors.Is(err, shipyard.ErrFileNotFound) || !errors.As(err, &ae) || ae.Status != 404 || ae.RequestID == "" {
		t.Fatalf("missing file: %#v", err)
	}
	if _, err := c.GetSandbox(ctx, "sandbox-000000000000"); !errors.Is(err, shipyard.ErrNotFound) {
		t.Fatalf("unknown sandbox: %v", err)
	}
	if _, err := c.ExecPython(ctx, sb.ID, shipyard.PythonExecRequest{Code: "1", Timeout: 9999}); !errors.Is(err, shipyard.ErrValidation) {
		t.Fatalf("bad timeout: %v", err)
	}

	// History has both executions, newest first; annotate one.
	h, err := c.ListHistory(ctx, sb.ID, shipyard.HistoryFilter{})
	if err != nil || h.Total < 3 || h.Entries[0].ExecType != "shell" {
		t.Fatalf("history = %+v, %v", h, err)
	}
	note := "from the SDK test"
	if e, err := c.AnnotateExecution(ctx, sb.ID, h.Entries[0].ID, shipyard.Annotation{Notes: &note}); err != nil || e.Notes == nil || *e.Notes != note {
		t.Fatalf("annotate = %+v, %v", e, err)
	}
	if last, err := c.LastExecution(ctx, sb.ID, "python"); err != nil || !strings.Contains(last.Code, "x + 22") {
		t.Fatalf("last python = %+v, %v", last, err)
	}

	// TTL, profiles.
	ext, err := c.ExtendTTL(ctx, sb.ID, 60)
	if err != nil || ext.ExpiresAt == nil || sb.ExpiresAt == nil || *ext.ExpiresAt <= *sb.ExpiresAt {
		t.Fatalf("extend = %+v, %v (was %v)", ext, err, sb.ExpiresAt)
	}
	profiles, err := c.ListProfiles(ctx, true)
	if err != nil || len(profiles) == 0 || profiles[0].ID == "" {
		t.Fatalf("profiles = %+v, %v", profiles, err)
	}

	// Cargos: create, find, delete; gone afterwards.
	cargo, err := c.CreateCargo(ctx, 64)
	if err != nil || cargo.SizeLimitMB != 64 || cargo.Managed {
		t.Fatalf("cargo = %+v, %v", cargo, err)
	}
	page, err := c.ListCargos(ctx, shipyard.CargoFilter{})
	if err != nil || len(page.Items) == 0 {
		t.Fatalf("cargos = %+v, %v", page, err)
	}
	if g, err := c.GetCargo(ctx, cargo.ID); err != nil || g.ID != cargo.ID {
		t.Fatalf("get cargo = %+v, %v", g, err)
	}
	if err := c.DeleteCargo(ctx, cargo.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCargo(ctx, cargo.ID); !errors.Is(err, shipyard.ErrNotFound) {
		t.Fatalf("deleted cargo: %v", err)
	}

	// Terminal: a refused handshake is Bay's typed error...
	if _, err := c.OpenTerminal(ctx, "sandbox-000000000000", shipyard.TerminalOptions{}); !errors.Is(err, shipyard.ErrNotFound) {
		t.Fatalf("terminal of an unknown sandbox: %#v", err)
	}
	// ...and an open one takes keys, shows the screen, resizes and exits.
	term, err := c.OpenTerminal(ctx, sb.ID, shipyard.TerminalOptions{Cols: 100, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	screen := &screenReader{r: term}
	if _, err := io.WriteString(term, "echo ok-$((6*7))\r"); err != nil {
		t.Fatal(err)
	}
	screen.waitFor(t, "ok-42")
	if err := term.Resize(123, 45); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(term, "stty size\r")
	screen.waitFor(t, "45 123")
	_, _ = io.WriteString(term, "exit\r")
	if _, err := io.Copy(io.Discard, term); err != nil {
		t.Fatalf("terminal after exit: %v", err)
	}
	_ = term.Close()

	// Delete: gone.
	for _, id := range []string{sb.ID, other.ID} {
		if err := c.DeleteSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.GetSandbox(ctx, sb.ID); !errors.Is(err, shipyard.ErrNotFound) {
		t.Fatalf("deleted sandbox: %v", err)
	}
}

// screenReader accumulates what a terminal prints.
type screenReader struct {
	r   io.Reader
	buf strings.Builder
}

func (s *screenReader) waitFor(t *testing.T, want string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		b := make([]byte, 4096)
		for !strings.Contains(s.buf.String(), want) {
			n, err := s.r.Read(b)
			s.buf.Write(b[:n])
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("terminal: %v before %q; screen:\n%s", err, want, s.buf.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("terminal: no %q in 30 s; screen:\n%s", want, s.buf.String())
	}
}
