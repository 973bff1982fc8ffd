package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipyard/shipyard/test/baytest"
)

// newHTTPClient is the client every measured call goes through, to Bay and to
// Ship alike: pooled keep-alive connections, enough of them for 16 workers.
func newHTTPClient() *http.Client {
	return &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// bayProc is Bay (bin/bay) running as a process of its own: the deployment
// shape, and the only way to read its RSS.
type bayProc struct {
	cmd      *exec.Cmd
	URL      string
	Dir      string
	Instance string
	Started  time.Time // just before exec
	http     *http.Client
	exited   chan struct{}
	logPath  string
	stopped  bool
}

// launchBay starts bin on a fresh data dir with env on top of the basics and
// returns at once (see waitHealthy).
func launchBay(t testing.TB, bin, configYAML string, env map[string]string) *bayProc {
	t.Helper()
	dir := t.TempDir()
	inst := "bench-" + randHex(5)
	port := freePort(t)
	base := map[string]string{
		"BAY_DATA_DIR":        dir,
		"BAY_API_KEY":         baytest.APIKey,
		"BAY_SERVER__HOST":    "127.0.0.1",
		"BAY_SERVER__PORT":    strconv.Itoa(port),
		"BAY_GC__INSTANCE_ID": inst,
		"HOME":                dir,
		"PATH":                os.Getenv("PATH"),
	}
	if configYAML != "" {
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, []byte(configYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		base["BAY_CONFIG_FILE"] = p
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		base["DOCKER_HOST"] = h
	}
	for k, v := range env {
		base[k] = v
	}
	logPath := filepath.Join(dir, "bay.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	for k, v := range base {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	// If this test process dies, Bay follows (gracefully: it drains its pool).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	b := &bayProc{cmd: cmd, URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir, Instance: inst,
		http: newHTTPClient(), exited: make(chan struct{}), logPath: logPath}
	b.Started = time.Now()
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start bay: %v", err)
	}
	go func() { _ = cmd.Wait(); lf.Close(); close(b.exited) }()
	t.Cleanup(func() { b.stop(t) })
	return b
}

// waitHealthy polls /health every millisecond and returns the time from exec
// to the first 200.
func (b *bayProc) waitHealthy(timeout time.Duration) (time.Duration, error) {
	return pollHealthy(b.URL+"/health", b.Started, timeout, time.Millisecond, b.exited)
}

// pollHealthy GETs url until 200; it returns the time since t0.
func pollHealthy(url string, t0 time.Time, timeout, every time.Duration, exited <-chan struct{}) (time.Duration, error) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	deadline := t0.Add(timeout)
	for {
		if res, err := hc.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return time.Since(t0), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no 200 from %s within %v", url, timeout)
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("process exited before %s answered 200", url)
		case <-time.After(every):
		}
	}
}

// stop ends Bay gracefully (SIGTERM; SIGKILL after 60 s) and removes every
// container, volume and network of its instance.
func (b *bayProc) stop(t testing.TB) {
	if b.stopped {
		return
	}
	b.stopped = true
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(60 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	baytest.Sweep(t, b.Instance)
}

// logTail returns the end of Bay's log (for failure messages).
func (b *bayProc) logTail() string {
	data, _ := os.ReadFile(b.logPath)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// rss reads VmRSS and VmHWM of the Bay process, in KiB.
func (b *bayProc) rss() (rss, hwm int, err error) {
	return procStatus(b.cmd.Process.Pid)
}

func procStatus(pid int) (rss, hwm int, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(string(data))
}

// parseStatus extracts VmRSS and VmHWM (KiB) from /proc/<pid>/status text.
func parseStatus(s string) (rss, hwm int, err error) {
	rss, hwm = -1, -1
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, perr := strconv.Atoi(f[0])
		if perr != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	if rss < 0 || hwm < 0 {
		return 0, 0, fmt.Errorf("no VmRSS/VmHWM in %q", s)
	}
	return rss, hwm, nil
}

// call sends one JSON request to Bay (authenticated) and decodes a 2xx body.
func (b *bayProc) call(ctx context.Context, method, path string, in, out any) error {
	return doJSON(ctx, b.http, method, b.URL+path, baytest.APIKey, in, out)
}

func doJSON(ctx context.Context, hc *http.Client, method, url, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		j, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		if len(data) > 500 {
			data = data[:500]
		}
		return fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, url, err)
		}
	}
	return nil
}

// create makes a sandbox of profile; status is "ready" for a warm claim.
func (b *bayProc) create(ctx context.Context, profile string) (id, status string, err error) {
	var out struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	err = b.call(ctx, "POST", "/v1/sandboxes", map[string]any{"profile": profile}, &out)
	if err == nil && out.ID == "" {
		err = fmt.Errorf("create: no id")
	}
	return out.ID, out.Status, err
}

func (b *bayProc) delete(ctx context.Context, id string) error {
	return b.call(ctx, "DELETE", "/v1/sandboxes/"+id, nil, nil)
}

// python runs code through Bay and fails unless it succeeded with output want.
func (b *bayProc) python(ctx context.Context, id, code, want string) error {
	var out struct {
		Success bool    `json:"success"`
		Output  string  `json:"output"`
		Error   *string `json:"error"`
	}
	if err := b.call(ctx, "POST", "/v1/sandboxes/"+id+"/python/exec", map[string]any{"code": code}, &out); err != nil {
		return err
	}
	if !out.Success || strings.TrimSpace(out.Output) != want {
		return fmt.Errorf("bay python %q: success=%v output=%q error=%v", code, out.Success, out.Output, deref(out.Error))
	}
	return nil
}

// shell runs a command through Bay and fails unless stdout is want.
func (b *bayProc) shell(ctx context.Context, id, command, want string) error {
	var out struct {
		Success bool    `json:"success"`
		Output  string  `json:"output"`
		Error   *string `json:"error"`
	}
	if err := b.call(ctx, "POST", "/v1/sandboxes/"+id+"/shell/exec", map[string]any{"command": command}, &out); err != nil {
		return err
	}
	if !out.Success || strings.TrimSpace(out.Output) != want {
		return fmt.Errorf("bay shell %q: success=%v output=%q error=%v", command, out.Success, out.Output, deref(out.Error))
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// shipTarget is one Ship reached directly: its published port and token.
type shipTarget struct {
	Endpoint, Token, ContainerID string
	// IPEndpoint is the container's address on Docker's bridge: the same Ship
	// without the docker-proxy hop of the published port.
	IPEndpoint string
	http       *http.Client
}

// viaIP is the same Ship reached on its bridge address.
func (s *shipTarget) viaIP() *shipTarget {
	return &shipTarget{Endpoint: s.IPEndpoint, Token: s.Token, ContainerID: s.ContainerID, http: newHTTPClient()}
}

func (s *shipTarget) python(ctx context.Context, code, want string) error {
	var out struct {
		Success bool `json:"success"`
		Output  struct {
			Text string `json:"text"`
		} `json:"output"`
		Error *string `json:"error"`
	}
	if err := doJSON(ctx, s.http, "POST", s.Endpoint+"/ipython/exec", s.Token, map[string]any{"code": code}, &out); err != nil {
		return err
	}
	if !out.Success || strings.TrimSpace(out.Output.Text) != want {
		return fmt.Errorf("ship python %q: success=%v output=%q error=%v", code, out.Success, out.Output.Text, deref(out.Error))
	}
	return nil
}

func (s *shipTarget) shell(ctx context.Context, command, want string) error {
	var out struct {
		Success bool    `json:"success"`
		Stdout  string  `json:"stdout"`
		Error   *string `json:"error"`
	}
	if err := doJSON(ctx, s.http, "POST", s.Endpoint+"/shell/exec", s.Token, map[string]any{"command": command}, &out); err != nil {
		return err
	}
	if !out.Success || strings.TrimSpace(out.Stdout) != want {
		return fmt.Errorf("ship shell %q: success=%v stdout=%q error=%v", command, out.Success, out.Stdout, deref(out.Error))
	}
	return nil
}

// metrics scrapes Bay's /metrics and returns every sample line's value by its
// name with labels (e.g. `bay_driver_call_duration_seconds_sum{op="start"}`).
func (b *bayProc) metrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", b.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	res, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %d", res.StatusCode)
	}
	return parseMetrics(string(data)), nil
}

func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// meanDelta is the mean of a histogram over the samples added between two
// scrapes, in ms (NaN when none were added).
func meanDelta(before, after map[string]float64, name, labels string) (ms float64, n int) {
	sum := after[name+"_sum"+labels] - before[name+"_sum"+labels]
	cnt := after[name+"_count"+labels] - before[name+"_count"+labels]
	if cnt <= 0 {
		return math.NaN(), 0
	}
	return sum / cnt * 1000, int(cnt)
}
