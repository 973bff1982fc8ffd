package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/test/baytest"
)

// ---- Figure 11: streamed output (time to first byte) --------------------------

// streamedLines runs code (python or shell) on Bay with Accept:
// text/event-stream. Each output line is a Unix time in nanoseconds printed
// by the command; for every line it returns how long after being printed it
// reached the client (the container shares the host's clock), and the time
// from sending the request to the first event and to the result.
func (b *bayProc) streamedLines(ctx context.Context, id, kind string, body map[string]any) (late []time.Duration, first, total time.Duration, err error) {
	j, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", b.URL+"/v1/sandboxes/"+id+"/"+kind+"/exec", bytes.NewReader(j))
	if err != nil {
		return nil, 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+baytest.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	t0 := time.Now()
	res, err := b.http.Do(req)
	if err != nil {
		return nil, 0, 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		return nil, 0, 0, fmt.Errorf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(res.Body)
	var typ, pending string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, 0, 0, fmt.Errorf("stream ended before its result: %w", err)
		}
		now := time.Now()
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && typ == "stdout":
			if first == 0 {
				first = now.Sub(t0)
			}
			var ev struct{ Text string }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
				return nil, 0, 0, err
			}
			pending += ev.Text
			for {
				l, rest, ok := strings.Cut(pending, "\n")
				if !ok {
					break
				}
				pending = rest
				ns, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
				if err != nil {
					return nil, 0, 0, fmt.Errorf("line %q: %w", l, err)
				}
				late = append(late, now.Sub(time.Unix(0, ns)))
			}
		case strings.HasPrefix(line, "data: ") && typ == "result":
			var res struct{ Success bool }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &res); err != nil || !res.Success {
				return nil, 0, 0, fmt.Errorf("result %s (%v)", line, err)
			}
			return late, first, time.Since(t0), nil
		case strings.HasPrefix(line, "data: ") && typ == "error":
			return nil, 0, 0, fmt.Errorf("stream error %s", line)
		}
	}
}

// streamFigure: a 5-second command that prints a line a second, streamed and
// plain, shell and python, on one sandbox in alternating order.
func (r *run) streamFigure(id string) {
	const pyCode = "import time\nfor i in range(5):\n    print(time.time_ns())\n    time.sleep(1)"
	const shCode = "for i in 1 2 3 4 5; do date +%s%N; sleep 1; done"
	type kind struct {
		name, path string
		body       map[string]any
	}
	kinds := []kind{
		{"shell", "shell", map[string]any{"command": shCode, "timeout": 60}},
		{"python", "python", map[string]any{"code": pyCode, "timeout": 60}},
	}
	late := map[string]*Series{}
	first := map[string]*Series{}
	plain := map[string]*Series{}
	for _, k := range kinds {
		late[k.name] = &Series{Label: k.name + ", streamed: each line, printed → received by the client", Unit: "ms"}
		first[k.name] = &Series{Label: k.name + ", streamed: request → first output event", Unit: "ms"}
		plain[k.name] = &Series{Label: k.name + ", plain exec: request → answer", Unit: "ms"}
	}
	for i := 0; i < r.n(4, 1); i++ {
		for j, k := range kinds {
			k = kinds[(i+j)%2]
			ls, f, _, err := r.main.streamedLines(r.ctx, id, k.path, k.body)
			if err != nil {
				r.t.Fatalf("stream figure: %s: %v\n%s", k.name, err, r.main.logTail())
			}
			if len(ls) != 5 {
				r.t.Fatalf("stream figure: %s: %d lines", k.name, len(ls))
			}
			for _, l := range ls {
				late[k.name].AddDuration(l)
			}
			first[k.name].AddDuration(f)
			t0 := time.Now()
			if err := r.main.call(r.ctx, "POST", "/v1/sandboxes/"+id+"/"+k.path+"/exec", k.body, nil); err != nil {
				r.t.Fatalf("stream figure: plain %s: %v", k.name, err)
			}
			plain[k.name].AddDuration(time.Since(t0))
		}
	}
	for _, k := range kinds {
		s := late[k.name]
		r.add(11, Row{Figure: "11 streamed output", Subject: s, Goal: "first byte within 50 ms of being printed (p50)",
			Met: metIf(s.P(0.5) <= 50)})
		r.add(11, Row{Figure: "11 streamed output", Subject: first[k.name], Base: plain[k.name]})
	}
	r.note("Figure 11: each line of the command is the time it was printed (Unix ns, the container shares the host clock), so “printed → received” is the delay streaming adds, measured at the client, line by line. Python's print() output leaves the kernel on ipykernel's flush timer, which Ship sets to 10 ms (ipykernel's default is 200 ms); a shell command's output is read from its pipe as written. “Request → first output event” includes starting the command (bash -lc, or the cell) and is compared with the plain call's whole 5 s.")
}

// TestStreamFigure measures figure 11 alone on a Bay of its own and prints
// its rows in the report's format (SHIPYARD_BENCH=1 SHIPYARD_BENCH_STREAM=1).
func TestStreamFigure(t *testing.T) {
	if os.Getenv("SHIPYARD_BENCH") == "" || os.Getenv("SHIPYARD_BENCH_STREAM") == "" {
		t.Skip("figure 11 alone: set SHIPYARD_BENCH=1 SHIPYARD_BENCH_STREAM=1")
	}
	r, id := soloRun(t)
	load0 := loadAvg()
	r.streamFigure(id)
	fmt.Println((&Report{Rows: r.rows[11]}).Table())
	for _, n := range r.notes {
		fmt.Println("- " + n)
	}
	fmt.Printf("load average before / after: %s / %s\n", load0, loadAvg())
	if err := r.main.delete(r.ctx, id); err != nil {
		t.Error(err)
	}
}
