package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipyard/shipyard/test/baytest"
)

// ---- Figure 7: execute_python through /mcp vs through /v1 -------------------

// mcpVersion is the protocol the raw /mcp calls speak: the Go SDK client's
// (v1.8), with no handshake, its client info in _meta of every request and
// the Mcp-Method/Mcp-Name headers.
const mcpVersion = "2026-07-28"

// mcpPython calls the execute_python tool with a plain JSON-RPC POST to /mcp
// (the same client work as python does for /v1: marshal, one POST, decode)
// and fails unless the tool answered the output want.
func (b *bayProc) mcpPython(ctx context.Context, id, code, want string) error {
	msg := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{
		"_meta": map[string]any{
			"io.modelcontextprotocol/clientCapabilities": map[string]any{},
			"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "bench", "version": ""},
			"io.modelcontextprotocol/protocolVersion":    mcpVersion,
		},
		"name": "execute_python", "arguments": map[string]any{"sandbox_id": id, "code": code},
	}}
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.URL+"/mcp", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+baytest.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", mcpVersion)
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "execute_python")
	res, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /mcp: %d %.500s", res.StatusCode, data)
	}
	var out struct {
		Result *struct {
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
			IsError bool `json:"isError"`
		} `json:"result"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return fmt.Errorf("POST /mcp: decode: %w", err)
	}
	if out.Result == nil || out.Result.IsError || len(out.Result.Content) == 0 {
		return fmt.Errorf("POST /mcp: %.500s", data)
	}
	return checkToolText(out.Result.Content[0].Text, want)
}

// checkToolText checks execute_python's text: "**Execution successful**"
// and the output in a code block.
func checkToolText(text, want string) error {
	if !strings.HasPrefix(text, "**Execution successful**") || !strings.Contains(text, "```\n"+want+"\n```") {
		return fmt.Errorf("execute_python: %q", text)
	}
	return nil
}

// bearerRT adds Bay's API key to every request of the SDK client and sends it
// with the bench's pooled transport.
type bearerRT struct{ base http.RoundTripper }

func (t bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+baytest.APIKey)
	return t.base.RoundTrip(r)
}

// mcpSDKClient connects the Go SDK's client to Bay's /mcp over the bench's
// pooled transport.
func (b *bayProc) mcpSDKClient(ctx context.Context) (*sdk.ClientSession, error) {
	tr := &sdk.StreamableClientTransport{Endpoint: b.URL + "/mcp", HTTPClient: &http.Client{Transport: bearerRT{b.http.Transport}},
		DisableStandaloneSSE: true, MaxRetries: -1}
	return sdk.NewClient(&sdk.Implementation{Name: "bench"}, nil).Connect(ctx, tr, nil)
}

func sdkPython(ctx context.Context, cs *sdk.ClientSession, id, code, want string) error {
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "execute_python", Arguments: map[string]any{"sandbox_id": id, "code": code}})
	if err != nil {
		return err
	}
	if res.IsError || len(res.Content) == 0 {
		return fmt.Errorf("execute_python: tool error %+v", res.Content)
	}
	tc, ok := res.Content[0].(*sdk.TextContent)
	if !ok {
		return fmt.Errorf("execute_python: %T content", res.Content[0])
	}
	return checkToolText(tc.Text, want)
}

// mcpFigure measures `execute_python` `1+1` through /mcp against `python/exec`
// `1+1` through /v1 on the same started sandbox of the main Bay, interleaved
// round by round in rotating order: as a plain JSON-RPC POST (what Bay adds)
// and through the Go SDK's client (what an agent using it sees).
func (r *run) mcpFigure(id string) {
	cs, err := r.main.mcpSDKClient(r.ctx)
	if err != nil {
		r.t.Fatalf("MCP client: %v", err)
	}
	defer cs.Close()
	v1 := &Series{Label: "`python/exec` 1+1 via /v1", Unit: "ms"}
	raw := &Series{Label: "`execute_python` 1+1 via /mcp (plain JSON-RPC POST)", Unit: "ms"}
	viaSDK := &Series{Label: "`execute_python` 1+1 via /mcp with the Go SDK's client", Unit: "ms"}
	sides := []struct {
		s  *Series
		fn func() error
	}{
		{v1, func() error { return r.main.python(r.ctx, id, "1+1", "2") }},
		{raw, func() error { return r.main.mcpPython(r.ctx, id, "1+1", "2") }},
		{viaSDK, func() error { return sdkPython(r.ctx, cs, id, "1+1", "2") }},
	}
	n := r.n(200, 30)
	for i := 0; i < n+10; i++ {
		for j := range sides {
			sd := sides[(i+j)%len(sides)]
			t0 := time.Now()
			if err := sd.fn(); err != nil {
				r.t.Fatalf("%s: %v", sd.s.Label, err)
			}
			if i >= 10 { // the first 10 rounds warm up connections and caches
				sd.s.AddDuration(time.Since(t0))
			}
		}
	}
	// Met only when both estimates of what MCP adds are under 1 ms: the
	// difference of the p50s (as every figure) and the median of the
	// per-round differences (less disturbed by a busy machine).
	d, paired := raw.P(0.5)-v1.P(0.5), pairedMedian(raw, v1)
	const fig = "7 MCP vs /v1, same sandbox"
	r.add(7, Row{Figure: fig, Subject: raw, Base: v1, Delta: true, Goal: "MCP adds < 1 ms p50", Met: metIf(d < 1 && paired < 1)})
	r.add(7, Row{Figure: fig, Subject: viaSDK, Base: raw, Delta: true, Goal: "(the Go SDK client's own share)"})
	if share, err := mcpServerShare(r.main.logPath, 2*10); err != nil { // not the warm-up rounds' calls
		r.note("MCP inside Bay (figure 7): reading Bay's log: %v.", err)
	} else if share.N() > 0 {
		r.add(7, Row{Figure: fig, Subject: share, Goal: "(MCP's share inside Bay, server-side)"})
	}
	r.note("MCP vs /v1 (figure 7), paired by round (the two calls of one round are made back to back, so slow stretches of a busy machine fall on both): "+
		"median of (/mcp − /v1) %s, of (Go SDK client − plain /mcp) %s.", Format(paired, "ms"), Format(pairedMedian(viaSDK, raw), "ms"))
}

// mcpServerShare reads Bay's request log: for every /mcp request whose tool
// called python/exec in-process (the same request id), the /mcp request's
// duration minus that call's: the time Bay spends on MCP itself, without the
// network, the client or the sandbox. The first skip such requests are left out.
func mcpServerShare(logPath string, skip int) (*Series, error) {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return nil, err
	}
	type line struct {
		Msg        string  `json:"msg"`
		Path       string  `json:"path"`
		DurationMs float64 `json:"duration_ms"`
		RequestID  string  `json:"request_id"`
	}
	outer := map[string]float64{}
	inner := map[string]float64{}
	var order []string
	for _, l := range bytes.Split(data, []byte("\n")) {
		var e line
		if json.Unmarshal(l, &e) != nil || e.Msg != "request" || e.RequestID == "" {
			continue
		}
		switch {
		case e.Path == "/mcp":
			outer[e.RequestID] = e.DurationMs
			order = append(order, e.RequestID)
		case strings.HasSuffix(e.Path, "/python/exec"):
			inner[e.RequestID] = e.DurationMs
		}
	}
	s := &Series{Label: "Bay's own time on an /mcp `execute_python`: the /mcp request's duration − its in-process `python/exec`'s (Bay's request log, same request id)", Unit: "ms"}
	for _, id := range order {
		if in, ok := inner[id]; ok {
			if skip > 0 {
				skip--
				continue
			}
			s.Add(outer[id] - in)
		}
	}
	return s, nil
}

// pairedMedian is the median of a[i] − b[i]: the samples of one round side
// by side (both series hold one sample per counted round).
func pairedMedian(a, b *Series) float64 {
	n := min(a.N(), b.N())
	d := make([]float64, n)
	for i := range n {
		d[i] = a.Values[i] - b.Values[i]
	}
	return Quantile(d, 0.5)
}

var mcpMethod = "7: the main Bay and the started sandbox of figure 2; each round calls `1+1` through `POST /v1/sandboxes/{id}/python/exec`, " +
	"through `POST /mcp` as a plain JSON-RPC `tools/call` of `execute_python` (protocol " + mcpVersion + ", as the Go SDK's client sends it: " +
	"client info in `_meta`, `Mcp-Method`/`Mcp-Name` headers; the body decoded like the /v1 one), and through the Go SDK's client " +
	"(`ClientSession.CallTool`, connected once), in rotating order; one keep-alive HTTP client for all, 10 warm-up rounds not counted. " +
	"The goal counts as met only when both the difference of the p50s and the median of the per-round differences (in the notes) are under 1 ms. " +
	"Bay's own time: from Bay's request log, each /mcp request's duration minus that of the python/exec its tool made in-process (same request id). " +
	"Bay serves /mcp stateless: each request is a session of its own, and its tools call /v1 in-process with the caller's credentials."

// soloRun starts a Bay of its own with the main Bay's config and one started
// python-default sandbox, for measuring one figure outside TestReport.
func soloRun(t *testing.T) (*run, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	cli, err := newDocker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	r := &run{t: t, ctx: ctx, cli: cli, quick: os.Getenv("SHIPYARD_BENCH_QUICK") != "", rows: map[int][]Row{}}
	r.bin = buildBay(t)
	b := launchBay(t, r.bin, mainConfig, map[string]string{"BAY_GC__ENABLED": "false", "BAY_DATABASE__URL": "sqlite:///./bay.db"})
	if _, err := b.waitHealthy(60 * time.Second); err != nil {
		t.Fatalf("bay: %v\n%s", err, b.logTail())
	}
	r.main = b
	id, _, err := b.create(ctx, "python-default")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.python(ctx, id, "1+1", "2"); err != nil {
		t.Fatal(err)
	}
	return r, id
}

// TestMCPFigure measures figure 7 alone on a Bay of its own and prints its
// rows in the report's format (SHIPYARD_BENCH=1; for working on /mcp
// without the whole report).
func TestMCPFigure(t *testing.T) {
	if os.Getenv("SHIPYARD_BENCH") == "" || os.Getenv("SHIPYARD_BENCH_MCP") == "" {
		t.Skip("figure 7 alone: set SHIPYARD_BENCH=1 SHIPYARD_BENCH_MCP=1")
	}
	r, id := soloRun(t)
	load0 := loadAvg()
	r.mcpFigure(id)
	rep := &Report{Rows: r.rows[7]}
	fmt.Println(rep.Table())
	for _, n := range r.notes {
		fmt.Println("- " + n)
	}
	fmt.Printf("load average before / after: %s / %s\n", load0, loadAvg())
	if err := r.main.delete(r.ctx, id); err != nil {
		t.Error(err)
	}
}
