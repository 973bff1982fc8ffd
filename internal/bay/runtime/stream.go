package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

// Event is one Server-Sent Event of a streamed execution: its type (stdout,
// stderr, display, exception) and its one-line JSON data, as Ship sent it.
type Event struct {
	Type string
	Data json.RawMessage
}

// maxEventBytes caps one event of Ship's stream (a display event carries
// an image; Ship bounds them well below this).
const maxEventBytes = 16 << 20

// errStreamEnded is the cause when Ship's stream ends without a result.
var errStreamEnded = errors.New("stream ended before its result")

// Sink receives a streamed execution: Open once Ship has accepted the call
// and started its stream (not called when the call fails before), then each
// output event in order, as Ship sends it. Either may be nil.
type Sink struct {
	Open  func()
	Event func(Event)
}

// PythonStream runs code in the kernel with its output streamed to sink; the
// result is the same as Python's. Without killOnDisconnect, Ship lets the
// cell run on if this call goes away.
func (c *Client) PythonStream(ctx context.Context, t Target, code string, timeout int, killOnDisconnect bool, on Sink) (*PythonResult, error) {
	var r PythonResult
	in := map[string]any{"code": code, "timeout": timeout, "silent": false, "kill_on_disconnect": killOnDisconnect}
	if err := c.stream(ctx, t, "/ipython/exec", time.Duration(timeout+5)*time.Second, in, on, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ShellStream runs a command with its output streamed (see PythonStream).
func (c *Client) ShellStream(ctx context.Context, t Target, command string, timeout int, cwd string, killOnDisconnect bool, on Sink) (*ShellResult, error) {
	var r ShellResult
	in := map[string]any{"command": command, "timeout": timeout, "kill_on_disconnect": killOnDisconnect}
	if cwd != "" {
		in["cwd"] = cwd
	}
	if err := c.stream(ctx, t, "/shell/exec", time.Duration(timeout+5)*time.Second, in, on, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// stream POSTs in asking for an event stream, passes output events to on and
// decodes the result event into out. A Ship that answers plain JSON (one
// without streaming) gives the result with no events.
func (c *Client) stream(ctx context.Context, t Target, path string, timeout time.Duration, in any, on Sink, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("runtime: encode %s: %w", path, err)
	}
	req, err := c.newRequest(ctx, t, http.MethodPost, path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.do(req, path, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if on.Open != nil {
		on.Open()
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return decode(resp.Body, c.cfg.MaxResponseBytes, out)
	}
	sc := newEventScanner(resp.Body)
	for {
		ev, err := sc.next()
		if err != nil {
			return streamError(ctx, path, err)
		}
		if ev.Type == "result" {
			if err := json.Unmarshal(ev.Data, out); err != nil {
				return errs.New(errs.ShipError, "Ship returned an invalid response").Wrap(err)
			}
			return nil
		}
		if ev.Type == "error" {
			return errs.New(errs.ShipError, "Ship failed while streaming").Wrap(errors.New(readDetail(bytes.NewReader(ev.Data))))
		}
		if on.Event != nil {
			on.Event(ev)
		}
	}
}

// streamError maps a broken stream: like a call that got no answer.
func streamError(ctx context.Context, path string, err error) error {
	if errors.Is(err, errResponseTooLarge) {
		return errs.New(errs.ShipError, "Ship stream event too large").With(map[string]any{"limit_bytes": maxEventBytes}).Wrap(err)
	}
	cause := fmt.Errorf("%w: %w", ErrNoAnswer, err)
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return errs.Newf(errs.Timeout, "Ship request timed out: %s", path).Wrap(cause)
		}
		return ctx.Err()
	}
	return errs.New(errs.ShipError, "Ship request error: the stream broke off").Wrap(cause)
}

// eventScanner reads Server-Sent Events (the subset Ship writes: event and
// data fields, comments).
type eventScanner struct {
	r *bufio.Reader
}

func newEventScanner(r io.Reader) *eventScanner {
	return &eventScanner{r: bufio.NewReaderSize(r, 64<<10)}
}

// line reads one line without its end, at most maxEventBytes.
func (s *eventScanner) line() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxEventBytes {
			return nil, errResponseTooLarge
		}
		buf = append(buf, chunk...)
		if err == nil {
			return bytes.TrimRight(buf, "\r\n"), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = errStreamEnded
			}
			return nil, err
		}
	}
}

// next returns the next event with a type.
func (s *eventScanner) next() (Event, error) {
	var ev Event
	for {
		l, err := s.line()
		if err != nil {
			return Event{}, err
		}
		switch {
		case len(l) == 0:
			if ev.Type != "" {
				return ev, nil
			}
			ev = Event{}
		case l[0] == ':':
		case bytes.HasPrefix(l, []byte("event:")):
			ev.Type = string(bytes.TrimSpace(l[len("event:"):]))
		case bytes.HasPrefix(l, []byte("data:")):
			ev.Data = append(ev.Data, bytes.TrimPrefix(l[len("data:"):], []byte(" "))...)
		}
	}
}
