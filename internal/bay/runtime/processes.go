package runtime

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Process is Ship's view of a background process.
type Process struct {
	ProcessID  string     `json:"process_id"`
	Pid        int        `json:"pid"`
	Command    string     `json:"command"`
	Status     string     `json:"status"`
	ExitCode   *int       `json:"exit_code"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Notice     *string    `json:"notice,omitempty"`
}

// ProcessOutput is a read of a background process's merged output.
type ProcessOutput struct {
	ProcessID  string `json:"process_id"`
	Output     string `json:"output"`
	Offset     int64  `json:"offset"`
	NextOffset int64  `json:"next_offset"`
	Truncated  bool   `json:"truncated"`
	Status     string `json:"status"`
	ExitCode   *int   `json:"exit_code"`
}

// processTimeout bounds the process calls that return at once.
const processTimeout = 15 * time.Second

func processPath(id string, rest string) string {
	return "/shell/processes/" + url.PathEscape(id) + rest
}

// StartProcess starts a background command.
func (c *Client) StartProcess(ctx context.Context, t Target, command, cwd string, env map[string]string) (*Process, error) {
	in := map[string]any{"command": command}
	if cwd != "" {
		in["cwd"] = cwd
	}
	if len(env) > 0 {
		in["env"] = env
	}
	var p Process
	if err := c.call(ctx, t, http.MethodPost, "/shell/processes", processTimeout, false, c.cfg.MaxResponseBytes, in, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Processes lists the background processes Ship knows.
func (c *Client) Processes(ctx context.Context, t Target) ([]Process, error) {
	var r struct {
		Processes []Process `json:"processes"`
	}
	if err := c.call(ctx, t, http.MethodGet, "/shell/processes", processTimeout, false, c.cfg.MaxResponseBytes, nil, &r); err != nil {
		return nil, err
	}
	if r.Processes == nil {
		r.Processes = []Process{}
	}
	return r.Processes, nil
}

// GetProcess returns one process (Ship's answer also carries output, unread here).
func (c *Client) GetProcess(ctx context.Context, t Target, id string) (*Process, error) {
	var p Process
	if err := c.call(ctx, t, http.MethodGet, processPath(id, ""), processTimeout, false, c.cfg.MaxResponseBytes, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ReadProcessOutput reads output from offset.
func (c *Client) ReadProcessOutput(ctx context.Context, t Target, id string, offset int64, maxBytes int) (*ProcessOutput, error) {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}, "max_bytes": {strconv.Itoa(maxBytes)}}
	var o ProcessOutput
	if err := c.call(ctx, t, http.MethodGet, processPath(id, "/output?"+q.Encode()), processTimeout, false, c.cfg.MaxResponseBytes, nil, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// WaitProcess waits up to timeout for the process to end and returns its state.
func (c *Client) WaitProcess(ctx context.Context, t Target, id string, timeout time.Duration) (*Process, error) {
	q := url.Values{"timeout": {strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64)}}
	var p Process
	if err := c.call(ctx, t, http.MethodPost, processPath(id, "/wait?"+q.Encode()), timeout+processTimeout, false, c.cfg.MaxResponseBytes, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// SignalProcess sends a signal (TERM, KILL, INT, HUP, QUIT, USR1, USR2) to the process group.
func (c *Client) SignalProcess(ctx context.Context, t Target, id, signal string) (*Process, error) {
	var p Process
	if err := c.call(ctx, t, http.MethodPost, processPath(id, "/signal"), processTimeout, false, c.cfg.MaxResponseBytes,
		map[string]string{"signal": signal}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// RemoveProcess kills the process group if it runs and forgets the process.
func (c *Client) RemoveProcess(ctx context.Context, t Target, id string) error {
	return c.call(ctx, t, http.MethodDelete, processPath(id, ""), processTimeout, false, 0, nil, nil)
}

// Health is what Bay reads of Ship's /health.
type Health struct {
	Status string `json:"status"`
	// ProcessesRunning counts running background processes (nil from a
	// Ship that does not report it).
	ProcessesRunning *int `json:"processes_running"`
}

// Health fetches /health within timeout.
func (c *Client) Health(ctx context.Context, t Target, timeout time.Duration) (*Health, error) {
	var h Health
	if err := c.call(ctx, t, http.MethodGet, "/health", timeout, false, 64<<10, nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}
