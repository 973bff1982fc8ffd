package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

func ship(t *testing.T, h http.HandlerFunc) (*Client, Target) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := New(Config{FileTimeout: time.Second})
	t.Cleanup(c.Close)
	return c, Target{Endpoint: srv.URL, Token: "tok"}
}

func answer(status int, detail string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"detail": detail})
	}
}

// Ship's answers to the caller's mistakes (what its fsError and request
// validation send) become the matching 4xx with Ship's message; only its own
// failures are a 502. None of them says the runtime is unwell.
func TestShipStatusMapping(t *testing.T) {
	long := strings.Repeat("é", 5000)
	cases := []struct {
		name     string
		status   int
		detail   string
		fileOp   bool
		wantCode errs.Code
		wantMsg  string
	}{
		{"symlink out of the workspace", 403, "Access denied: path must be within workspace /workspace", true, errs.Forbidden, "Access denied: path must be within workspace /workspace"},
		{"directory read as a file", 400, "Path is not a file: d", true, errs.Validation, "Path is not a file: d"},
		{"non-utf-8 text", 400, "File is not valid utf-8 text: b (use /fs/download for binary files)", true, errs.Validation, "File is not valid utf-8 text: b (use /fs/download for binary files)"},
		{"deleting the root", 400, "Cannot delete the workspace root", true, errs.Validation, "Cannot delete the workspace root"},
		{"invalid path", 400, "Invalid path: contains NUL", true, errs.InvalidPath, "Invalid path: contains NUL"},
		{"missing file", 404, "File not found: x", true, errs.FileNotFound, "File not found: x"},
		{"missing file, no detail", 404, "", true, errs.FileNotFound, "File not found"},
		{"missing process", 404, "Process not found", false, errs.NotFound, "Process not found"},
		{"conflict", 409, "busy", false, errs.Conflict, "busy"},
		{"a runtime limit", 429, "too many background processes running (64 of 64); kill some first", false, errs.QuotaExceeded, "too many background processes running (64 of 64); kill some first"},
		{"too large", 413, "File too large to read (33554433 bytes; limit 33554432)", true, errs.TooLarge, "File too large to read (33554433 bytes; limit 33554432)"},
		{"request validation", 422, "bad", true, errs.Validation, "Invalid request to the runtime"},
		{"a long message is capped", 400, long, true, errs.Validation, long[:maxDetailBytes] + "…"},
		{"bad token is ours to fix", 401, "Unauthorized", true, errs.ShipError, "Ship request failed: 401"},
		{"runtime failure", 500, "Failed to read file: boom", true, errs.ShipError, "Ship request failed: 500"},
		{"gateway", 503, "", false, errs.ShipError, "Ship request failed: 503"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, tg := ship(t, answer(tc.status, tc.detail))
			var out map[string]any
			err := c.call(context.Background(), tg, http.MethodPost, "/fs/read_file", time.Second, tc.fileOp, 1<<20, map[string]any{}, &out)
			e, ok := errs.As(err)
			if !ok {
				t.Fatalf("not an *errs.Error: %v", err)
			}
			if e.Code != tc.wantCode || e.Message != tc.wantMsg {
				t.Fatalf("got %s %q, want %s %q", e.Code, e.Message, tc.wantCode, tc.wantMsg)
			}
			if NoAnswer(err) || Unreachable(err) {
				t.Fatalf("an HTTP answer taken for a transport failure: %v", err)
			}
		})
	}
}

func TestTransportFailuresSayNoAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	c := New(Config{})
	defer c.Close()
	err = c.call(context.Background(), Target{Endpoint: closed}, http.MethodGet, "/meta", time.Second, false, 1<<20, nil, nil)
	if !NoAnswer(err) || !Unreachable(err) || !errs.Is(err, errs.ShipError) {
		t.Fatalf("refused connection: %v", err)
	}

	slow, tg := ship(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	err = slow.call(context.Background(), tg, http.MethodGet, "/meta", 50*time.Millisecond, false, 1<<20, nil, nil)
	if !NoAnswer(err) || Unreachable(err) || !errs.Is(err, errs.Timeout) {
		t.Fatalf("timeout: %v", err)
	}
}

// endless is a Ship answer that never ends: a JSON string of 'x' forever.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.n == 0 && len(p) > 0 {
		copy(p, `{"a":"`)
		n := min(len(p), 6)
		e.n += int64(n)
		return n, nil
	}
	n := copy(p, xs)
	e.n += int64(n)
	return n, nil
}

var xs = []byte(strings.Repeat("x", 32<<10))

// Bay reads at most the cap of a Ship answer (plus one read buffer), however
// big the answer is: memory per request stays bounded.
func TestDecodeReadsAtMostTheCap(t *testing.T) {
	src := &endless{}
	const limit = 1 << 20
	var out map[string]any
	err := decode(src, limit, &out)
	if !errors.Is(err, errResponseTooLarge) || !errs.Is(err, errs.ShipError) {
		t.Fatalf("err = %v", err)
	}
	if e, _ := errs.As(err); e.Message != "Ship response too large" {
		t.Fatalf("message %q", e.Message)
	}
	if src.n > limit+64<<10 {
		t.Fatalf("read %d bytes of an answer capped at %d", src.n, limit)
	}
	// An answer exactly at the cap is fine.
	exact := `{"a":"` + strings.Repeat("x", 100-8) + `"}`
	if err := decode(strings.NewReader(exact), int64(len(exact)), &out); err != nil {
		t.Fatalf("answer at the cap: %v", err)
	}
}

// A 50 MB answer of an httptest Ship is refused with a clear error.
func TestHugeShipAnswerIsRefused(t *testing.T) {
	_, tg := ship(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, io.LimitReader(&endless{}, 50<<20))
	})
	c := New(Config{MaxResponseBytes: 1 << 20}) // the default (16 MiB) only makes the race detector slow
	defer c.Close()
	_, err := c.Python(context.Background(), tg, "print('x' * 50_000_000)", 30)
	if e, ok := errs.As(err); !ok || e.Code != errs.ShipError || e.Message != "Ship response too large" {
		t.Fatalf("err = %v", err)
	}
	if NoAnswer(err) {
		t.Fatal("a too-large answer is not a dead runtime")
	}
}

// A runtime that accepts the connection but never answers does not hold a
// download open forever.
func TestDownloadOfAStalledRuntimeTimesOut(t *testing.T) {
	c, tg := ship(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	start := time.Now()
	_, _, err := c.Download(context.Background(), tg, "f")
	if !errs.Is(err, errs.Timeout) || !NoAnswer(err) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestDownloadStreamsPastTheHeaderDeadline(t *testing.T) {
	c, tg := ship(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		time.Sleep(1500 * time.Millisecond) // longer than FileTimeout (1s)
		_, _ = w.Write([]byte("data"))
	})
	rc, _, err := c.Download(context.Background(), tg, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != "data" {
		t.Fatalf("%q %v", b, err)
	}
}

func TestDownloadMissingFileIs404(t *testing.T) {
	c, tg := ship(t, answer(404, "File not found"))
	_, _, err := c.Download(context.Background(), tg, "nope")
	if !errs.Is(err, errs.FileNotFound) {
		t.Fatalf("err = %v", err)
	}
}
