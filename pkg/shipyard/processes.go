package shipyard

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// Process states.
const (
	ProcessRunning   = wire.ProcessRunning
	ProcessCompleted = wire.ProcessCompleted
	ProcessFailed    = wire.ProcessFailed
	ProcessKilled    = wire.ProcessKilled
)

// Process is a background process of a sandbox. It lives in the sandbox
// (its handle is Ship's): it outlives the client and Bay's restarts.
type Process = wire.Process

// ProcessOutput is a slice of a process's output.
type ProcessOutput = wire.ProcessOutput

// StartProcessRequest is the body of POST …/processes.
type StartProcessRequest = wire.StartProcessRequest

func processPath(id, pid, rest string) string {
	return sandboxPath(id, "/processes/"+url.PathEscape(pid)+rest)
}

// StartProcess starts a command in the background and returns at once.
// It is never retried (a lost answer could mean a started process).
func (c *Client) StartProcess(ctx context.Context, id string, r StartProcessRequest) (*Process, error) {
	var out Process
	return &out, c.do(ctx, http.MethodPost, sandboxPath(id, "/processes"), nil, r, &out)
}

// ListProcesses lists the sandbox's background processes.
func (c *Client) ListProcesses(ctx context.Context, id string) ([]Process, error) {
	var out wire.ProcessList
	return out.Processes, c.do(ctx, http.MethodGet, sandboxPath(id, "/processes"), nil, nil, &out)
}

// GetProcess returns one process.
func (c *Client) GetProcess(ctx context.Context, id, processID string) (*Process, error) {
	var out Process
	return &out, c.do(ctx, http.MethodGet, processPath(id, processID, ""), nil, nil, &out)
}

// ProcessOutputFrom reads output from byte offset on, at most maxBytes
// (0: Bay's default). Read again from NextOffset for more.
func (c *Client) ProcessOutputFrom(ctx context.Context, id, processID string, offset int64, maxBytes int) (*ProcessOutput, error) {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}}
	if maxBytes > 0 {
		q.Set("max_bytes", strconv.Itoa(maxBytes))
	}
	var out ProcessOutput
	return &out, c.do(ctx, http.MethodGet, processPath(id, processID, "/output"), q, nil, &out)
}

// FollowOptions tune FollowProcess.
type FollowOptions struct {
	Offset int64         // where to start (0: the start of the kept output)
	Poll   time.Duration // pause when no output came (default 250 ms)
	// OnTruncated is called when output between the asked offset and the
	// answered one was dropped by the bounded buffer (optional).
	OnTruncated func(from, to int64)
}

// FollowProcess copies the process's output to w as it is produced until
// the process ends and its output is drained, or ctx ends. It returns the
// last answer (status, exit code, and NextOffset to resume from).
func (c *Client) FollowProcess(ctx context.Context, id, processID string, w io.Writer, o FollowOptions) (*ProcessOutput, error) {
	poll := o.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	off := o.Offset
	for {
		out, err := c.ProcessOutputFrom(ctx, id, processID, off, 0)
		if err != nil {
			return nil, err
		}
		if out.Truncated && o.OnTruncated != nil && out.Offset > off {
			o.OnTruncated(off, out.Offset)
		}
		if out.Output != "" {
			if _, err := io.WriteString(w, out.Output); err != nil {
				return out, err
			}
		}
		moved := out.NextOffset > off
		off = out.NextOffset
		if out.Status != ProcessRunning && !moved {
			return out, nil
		}
		if moved {
			continue // there may be more at once
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return out, ctx.Err()
		case <-t.C:
		}
	}
}

// WaitProcess waits up to timeout for the process to end; the answer's
// TimedOut says whether it is still running.
func (c *Client) WaitProcess(ctx context.Context, id, processID string, timeout time.Duration) (*Process, error) {
	secs := max(timeout.Seconds(), 0)
	var out Process
	return &out, c.do(ctx, http.MethodPost, processPath(id, processID, "/wait"), nil, map[string]float64{"timeout": secs}, &out)
}

// SignalProcess sends a signal ("TERM", "KILL", "INT", "HUP", ...).
func (c *Client) SignalProcess(ctx context.Context, id, processID, signal string) (*Process, error) {
	var out Process
	return &out, c.do(ctx, http.MethodPost, processPath(id, processID, "/signal"), nil, map[string]string{"signal": signal}, &out)
}

// RemoveProcess kills the process if it runs and forgets it and its output.
func (c *Client) RemoveProcess(ctx context.Context, id, processID string) error {
	return c.do(ctx, http.MethodDelete, processPath(id, processID, ""), nil, nil, nil)
}
