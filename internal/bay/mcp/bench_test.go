package mcp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

// cpuTime is the CPU time (user + system) this process has used: the
// benchmarks report it per op next to the wall time, which on a busy machine
// mostly measures waiting for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs op b.N times and reports the CPU time per op as well.
func loop(b *testing.B, op func()) {
	b.ReportAllocs()
	c0 := cpuTime()
	for b.Loop() {
		op()
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}

// benchBay answers POST .../python/exec with a fixed body, as cheaply as a
// handler can: what remains in the benchmarks below is the cost of the path
// around it.
type benchBay struct{}

var benchExecBody = []byte(`{"success":true,"output":"2","error":null,"data":{"output":{"text":"2","images":[]}},"execution_id":"exec-1","execution_time_ms":3,"code":null}`)

func (benchBay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer good" {
		w.WriteHeader(401)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(benchExecBody)
}

// benchCalls are a tools/call as clients send it: the Go SDK's client
// (protocol 2026-07-28: no handshake, the client's info in _meta of every
// request, Mcp-Method/Mcp-Name headers) and one of the previous protocol
// (2025-11-25, as most agents' clients speak it after their initialize).
var benchCalls = []struct {
	name, version, body string
}{
	{"2026-07-28", "2026-07-28", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true}},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":""},"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"name":"execute_python","arguments":{"code":"1+1","sandbox_id":"sandbox-aaaaaaaaaaaa"}}}`},
	{"2025-11-25", "2025-11-25", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"execute_python","arguments":{"code":"1+1","sandbox_id":"sandbox-aaaaaaaaaaaa"}}}`},
}

func benchRequest(version, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer good")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Mcp-Protocol-Version", version)
	if version >= "2026-07-28" {
		r.Header.Set("Mcp-Method", "tools/call")
		r.Header.Set("Mcp-Name", "execute_python")
	}
	return r
}

// benchLogger is Bay's logger shape (JSON, Info) writing nowhere.
func benchLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// BenchmarkMCPToolCall is one tools/call execute_python round trip through
// the real StreamableHTTPHandler (stateless, JSON responses) and the
// in-process /v1 call, against a fake Bay. Profile with
//
//	go test -run '^$' -bench MCPToolCall -cpuprofile cpu.out -memprofile mem.out ./internal/bay/mcp/
func BenchmarkMCPToolCall(b *testing.B) {
	opts := DefaultOptions()
	opts.Log = benchLogger()
	h := NewHTTPHandler(benchBay{}, opts)
	for _, c := range benchCalls {
		b.Run(c.name, func(b *testing.B) {
			loop(b, func() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, benchRequest(c.version, c.body))
				if w.Code != 200 || !bytes.Contains(w.Body.Bytes(), []byte("Execution successful")) {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			})
		})
	}
}

// BenchmarkMCPToolError is a tools/call that fails its argument checks: no
// /v1 call, only the MCP machinery.
func BenchmarkMCPToolError(b *testing.B) {
	opts := DefaultOptions()
	opts.Log = benchLogger()
	h := NewHTTPHandler(benchBay{}, opts)
	c := benchCalls[0]
	body := strings.Replace(c.body, `"sandbox-aaaaaaaaaaaa"`, `"bad id!"`, 1)
	loop(b, func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, benchRequest(c.version, body))
		if w.Code != 200 || !bytes.Contains(w.Body.Bytes(), []byte("Validation Error")) {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	})
}

// BenchmarkV1Direct is the baseline: the same /v1 request straight to the
// fake Bay, as a REST client's request reaches Bay's handler.
func BenchmarkV1Direct(b *testing.B) {
	h := benchBay{}
	loop(b, func() {
		r := httptest.NewRequest(http.MethodPost, "/v1/sandboxes/sandbox-aaaaaaaaaaaa/python/exec", strings.NewReader(`{"code":"1+1"}`))
		r.Header.Set("Authorization", "Bearer good")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	})
}

// BenchmarkInProcess is the in-process /v1 call alone: the python exec of
// pkg/shipyard through InProcess to the fake Bay, with a caller to replay.
func BenchmarkInProcess(b *testing.B) {
	c, err := shipyard.New("http://bay.internal", "", shipyard.WithHTTPClient(&http.Client{Transport: InProcess(benchBay{})}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := withCaller(context.Background(), caller{header: http.Header{"Authorization": {"Bearer good"}}, remoteAddr: "10.0.0.1:1"})
	loop(b, func() {
		res, err := c.ExecPython(ctx, "sandbox-aaaaaaaaaaaa", shipyard.PythonExecRequest{Code: "1+1"})
		if err != nil || res.Output != "2" {
			b.Fatal(res, err)
		}
	})
}

// BenchmarkMCPToolCallStateful is the same tools/call on a stateful session
// (initialize once, then Mcp-Session-Id): what Bay would save per request by
// keeping sessions, which it does not (replicas without stickiness must
// answer any request). For comparison only.
func BenchmarkMCPToolCallStateful(b *testing.B) {
	opts := DefaultOptions()
	opts.Log = benchLogger()
	client, err := shipyard.New("http://bay.internal", "", shipyard.WithHTTPClient(&http.Client{Transport: InProcess(benchBay{})}))
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(client, opts)
	sh := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv },
		&sdk.StreamableHTTPOptions{JSONResponse: true, Logger: sdkLogger(opts.Log)})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := caller{header: http.Header{"Authorization": r.Header.Values("Authorization")}, remoteAddr: r.RemoteAddr}
		sh.ServeHTTP(w, r.WithContext(withCaller(r.Context(), c)))
	})
	const version = "2025-11-25"
	w := httptest.NewRecorder()
	r := benchRequest(version, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":""}}}`)
	r.Header.Del("Mcp-Protocol-Version")
	h.ServeHTTP(w, r)
	sid := w.Header().Get("Mcp-Session-Id")
	if w.Code != 200 || sid == "" {
		b.Fatalf("initialize: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	r = benchRequest(version, `{"jsonrpc":"2.0","method":"notifications/initialized","params":{}}`)
	r.Header.Set("Mcp-Session-Id", sid)
	h.ServeHTTP(w, r)
	if w.Code != http.StatusAccepted {
		b.Fatalf("initialized: %d %s", w.Code, w.Body)
	}
	body := benchCalls[1].body
	loop(b, func() {
		w := httptest.NewRecorder()
		r := benchRequest(version, body)
		r.Header.Set("Mcp-Session-Id", sid)
		h.ServeHTTP(w, r)
		if w.Code != 200 || !bytes.Contains(w.Body.Bytes(), []byte("Execution successful")) {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	})
	w = httptest.NewRecorder()
	r = httptest.NewRequest(http.MethodDelete, "/mcp", nil)
	r.Header.Set("Mcp-Session-Id", sid)
	h.ServeHTTP(w, r)
}
