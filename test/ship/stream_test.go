package shiptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStreamedPythonIsTimely: with the real kernel, each printed line
// reaches a streaming client within tens of milliseconds (Ship sets
// ipykernel's flush timer to 10 ms; its default, 200 ms, would fail this).
func TestStreamedPythonIsTimely(t *testing.T) {
	requireE2E(t)
	endpoint, token := StartContainer(t, Options{})
	c := NewClient(endpoint, token)
	ctx := context.Background()
	if err := c.JSON(ctx, "/ipython/exec", map[string]any{"code": "1"}, nil); err != nil { // kernel up
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"code": "import time\nfor i in range(6):\n    print(time.time_ns())\n    time.sleep(0.3)"})
	req, _ := http.NewRequestWithContext(ctx, "POST", endpoint+"/ipython/exec", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var late []time.Duration
	var typ string
	var result map[string]any
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() && result == nil {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && typ == "stdout":
			now := time.Now()
			var ev struct{ Text string }
			_ = json.Unmarshal([]byte(line[6:]), &ev)
			for _, l := range strings.Fields(ev.Text) {
				ns, err := strconv.ParseInt(l, 10, 64)
				if err != nil {
					t.Fatalf("line %q", l)
				}
				late = append(late, now.Sub(time.Unix(0, ns)))
			}
		case strings.HasPrefix(line, "data: ") && typ == "result":
			_ = json.Unmarshal([]byte(line[6:]), &result)
		}
	}
	if len(late) != 6 || result == nil || result["success"] != true {
		t.Fatalf("lines %v, result %v", late, result)
	}
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	t.Logf("printed → received: %v", late)
	if med := late[len(late)/2]; med > 120*time.Millisecond {
		t.Fatalf("median delay %v: output is not delivered as printed", med)
	}
}

// TestBackgroundProcessInContainer: a background process runs as uid 1000
// in its own process group, and its output is read from offsets.
func TestBackgroundProcessInContainer(t *testing.T) {
	requireE2E(t)
	endpoint, token := StartContainer(t, Options{})
	c := NewClient(endpoint, token)
	ctx := context.Background()
	st, b, err := c.Do(ctx, "POST", "/shell/processes", map[string]any{
		"command": "echo \"$(id -u) $$ $(cut -d' ' -f5 /proc/$$/stat)\"; sleep 300"}, nil)
	if err != nil || st != 201 {
		t.Fatalf("%d %s %v", st, b, err)
	}
	var p struct {
		ProcessID string `json:"process_id"`
		Pid       int    `json:"pid"`
	}
	_ = json.Unmarshal(b, &p)
	var out struct {
		Output     string `json:"output"`
		NextOffset int64  `json:"next_offset"`
		Status     string `json:"status"`
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.Output, "\n"); time.Sleep(50 * time.Millisecond) {
		_, b, _ = c.Do(ctx, "GET", "/shell/processes/"+p.ProcessID+"/output?offset=0", nil, nil)
		_ = json.Unmarshal(b, &out)
		if time.Now().After(deadline) {
			t.Fatalf("no output: %s", b)
		}
	}
	f := strings.Fields(out.Output)
	if len(f) != 3 || f[0] != "1000" || f[1] != f[2] || f[1] != strconv.Itoa(p.Pid) || out.Status != "running" {
		t.Fatalf("uid, pid, pgid: %q (pid %d)", out.Output, p.Pid)
	}
	var h struct {
		ProcessesRunning int `json:"processes_running"`
	}
	_, b, _ = c.Do(ctx, "GET", "/health", nil, nil)
	if _ = json.Unmarshal(b, &h); h.ProcessesRunning != 1 {
		t.Fatalf("health %s", b)
	}
	if st, b, _ := c.Do(ctx, "DELETE", "/shell/processes/"+p.ProcessID, nil, nil); st != 204 {
		t.Fatalf("delete %d %s", st, b)
	}
	_, b, _ = c.Do(ctx, "GET", "/health", nil, nil)
	if _ = json.Unmarshal(b, &h); h.ProcessesRunning != 0 {
		t.Fatalf("health after delete %s", b)
	}
}
