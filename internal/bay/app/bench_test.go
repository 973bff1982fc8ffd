package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/app"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver/fake"
	"github.com/shipyard/shipyard/internal/logctx"
)

const benchKey = "sk-bench-0123456789abcdef"

// startBench runs a whole Bay (real SQLite store, HTTP server, request log at
// info level as deployed, writing nowhere) on the in-memory driver, whose
// Ships are httptest servers answering at once: what a benchmark then
// measures is Bay's own cost per call, with its two loopback hops.
func startBench(b *testing.B) (url string, client *http.Client) {
	b.Helper()
	dir := b.TempDir()
	env := map[string]string{
		"BAY_DATA_DIR":           dir,
		"BAY_API_KEY":            benchKey,
		"BAY_GC__ENABLED":        "false",
		"BAY_WARM_POOL__ENABLED": "false",
		"BAY_DATABASE__URL":      "sqlite:///" + filepath.Join(dir, "bay.db"),
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(logctx.Handler{Handler: slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	drv := fake.New()
	b.Cleanup(drv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log, app.Options{Listener: ln, Driver: drv})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done; _ = a.Close() })
	return "http://" + ln.Addr().String(), &http.Client{Timeout: time.Minute}
}

func benchPost(b *testing.B, c *http.Client, url string, body any, out any) {
	b.Helper()
	buf, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(buf))
	req.Header.Set("Authorization", "Bearer "+benchKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("%s: %d %s", url, resp.StatusCode, msg)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		b.Fatal(err)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPythonExec is one sequential POST /v1/sandboxes/{id}/python/exec
// of a started sandbox: client, Bay and the fake Ship all in this process,
// so cpu-ns/op is the three together (the fake Ship's share does not change
// with Bay's code). Profile Bay's hot path with
//
//	go test -run '^$' -bench PythonExec -cpuprofile cpu.out -memprofile mem.out ./internal/bay/app/
func BenchmarkPythonExec(b *testing.B) {
	url, c := startBench(b)
	var sb struct {
		ID string `json:"id"`
	}
	benchPost(b, c, url+"/v1/sandboxes", map[string]any{"profile": "python-default"}, &sb)
	exec := url + "/v1/sandboxes/" + sb.ID + "/python/exec"
	body := map[string]any{"code": "1+1"}
	var res struct {
		Success bool   `json:"success"`
		Output  string `json:"output"`
	}
	benchPost(b, c, exec, body, &res) // starts the session
	b.ReportAllocs()
	c0 := cpuTime()
	for b.Loop() {
		res.Success, res.Output = false, ""
		benchPost(b, c, exec, body, &res)
		if !res.Success || res.Output != "2" {
			b.Fatalf("%+v", res)
		}
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}
