package kernel

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// cell is one execute_request in flight on a proc.
type cell struct {
	p   *proc
	w   *waiter
	col collector
	on  func(Output) // Request.OnOutput; nil once the caller is gone
}

// waitStatus says why cell.wait returned.
type waitStatus int

const (
	cellDone     waitStatus = iota // idle and execute_reply seen
	cellDeadline                   // the deadline channel fired
	cellCanceled                   // ctx is done
	cellDied                       // the kernel process exited
)

// submit sends an execute_request.
func (p *proc) submit(code string, silent bool, maxOutput, maxResult int) (*cell, error) {
	w, err := p.request(p.shell, "execute_request", map[string]any{
		"code":             code,
		"silent":           silent,
		"store_history":    !silent,
		"user_expressions": map[string]any{},
		"allow_stdin":      false,
		// Cells are sent one at a time, so there is no queue to abort; with
		// true, ipykernel keeps aborting requests for a moment after an error,
		// and a quick next cell (e.g. under load) came back "aborted".
		"stop_on_error": false,
	})
	if err != nil {
		return nil, err
	}
	p.cells.Add(1)
	return &cell{p: p, w: w, col: newCollector(maxOutput, maxResult, silent)}, nil
}

// wait collects the cell's messages until it is done, the deadline fires, ctx
// is done or the kernel dies. It may be called again after a deadline.
func (c *cell) wait(ctx context.Context, deadline <-chan time.Time) waitStatus {
	var replyGrace <-chan time.Time
	for !c.col.done() {
		select {
		case m := <-c.w.ch:
			c.add(m)
			if c.col.idle && !c.col.replied && replyGrace == nil {
				// execute_reply is sent before idle; it is at most in flight.
				replyGrace = time.After(time.Second)
			}
		case <-replyGrace:
			c.p.log.Warn("no execute_reply after idle", "msg_id", c.w.id)
			return cellDone
		case <-deadline:
			// The end may have arrived together with the deadline.
			if c.poll() {
				return cellDone
			}
			return cellDeadline
		case <-ctx.Done():
			if c.poll() {
				return cellDone
			}
			return cellCanceled
		case <-c.p.exited:
			c.drain()
			return cellDied
		}
	}
	return cellDone
}

func (c *cell) add(m *message) {
	if err := c.col.add(m); err != nil {
		c.p.log.Warn("bad kernel message", "msg_type", m.Header.MsgType, "err", err)
		return
	}
	if c.on != nil && m.Dropped == 0 {
		if o, ok := outputOf(m); ok {
			c.on(o)
		}
	}
}

// Output is one piece of a cell's output as the kernel sends it (see
// Request.OnOutput).
type Output struct {
	Type string // OutputStdout, OutputStderr, OutputDisplay or OutputException
	Text string // stdout, stderr
	// Data is a display_data or execute_result MIME bundle as the kernel sent
	// it (images base64 strings, text as strings, JSON types as JSON).
	Data      map[string]json.RawMessage
	Ename     string // exception
	Evalue    string
	Traceback []string
}

// Output types.
const (
	OutputStdout    = "stdout"
	OutputStderr    = "stderr"
	OutputDisplay   = "display"
	OutputException = "exception"
)

// outputOf makes an iopub output message an Output (false for other messages).
func outputOf(m *message) (Output, bool) {
	switch m.Header.MsgType {
	case "stream":
		var s struct {
			Name string `json:"name"`
			Text string `json:"text"`
		}
		if json.Unmarshal(m.Content, &s) != nil {
			return Output{}, false
		}
		t := OutputStdout
		if s.Name == "stderr" {
			t = OutputStderr
		}
		return Output{Type: t, Text: s.Text}, true
	case "execute_result", "display_data":
		var s struct {
			Data map[string]json.RawMessage `json:"data"`
		}
		if json.Unmarshal(m.Content, &s) != nil || len(s.Data) == 0 {
			return Output{}, false
		}
		if png, ok := s.Data["image/png"]; ok {
			// As in the non-streamed output (collector.addBundle).
			var b64 string
			if json.Unmarshal(png, &b64) == nil {
				s.Data["image/png"], _ = json.Marshal(strings.TrimSpace(b64))
			}
		}
		return Output{Type: OutputDisplay, Data: s.Data}, true
	case "error":
		var s struct {
			Ename     string   `json:"ename"`
			Evalue    string   `json:"evalue"`
			Traceback []string `json:"traceback"`
		}
		if json.Unmarshal(m.Content, &s) != nil {
			return Output{}, false
		}
		if s.Traceback == nil {
			s.Traceback = []string{}
		}
		return Output{Type: OutputException, Ename: s.Ename, Evalue: s.Evalue, Traceback: s.Traceback}, true
	}
	return Output{}, false
}

// poll collects the messages already delivered and reports whether the
// cell is done.
func (c *cell) poll() bool {
	for !c.col.done() {
		select {
		case m := <-c.w.ch:
			c.add(m)
		default:
			return false
		}
	}
	return true
}

// drain collects what the readers still deliver after the process exited,
// up to the end of the connections (bounded).
func (c *cell) drain() {
	t := time.NewTimer(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case m := <-c.w.ch:
			c.add(m)
		case <-c.p.readersDone:
			c.poll()
			return
		case <-t.C:
			return
		}
	}
}

// close stops routing the cell's messages; later ones are dropped.
func (c *cell) close() {
	if c.p.unsubscribe(c.w) {
		c.p.cells.Add(-1)
	}
}
