package shipyard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"strings"

	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// Event types of a streamed execution.
const (
	EventStdout    = wire.EventStdout
	EventStderr    = wire.EventStderr
	EventDisplay   = wire.EventDisplay
	EventException = wire.EventException
	EventResult    = wire.EventResult
)

// Event is one Server-Sent Event of a streamed execution.
type Event struct {
	Type      string                     // EventStdout, EventStderr, EventDisplay, EventException or EventResult
	Text      string                     // stdout and stderr
	Display   map[string]json.RawMessage // display: MIME type → value
	Exception *wire.StreamException      // exception
	Data      json.RawMessage            // the event's data as sent
}

// Stream is a streamed python/exec or shell/exec: Next advances to each event
// as Bay sends it (the output of the code, then the final EventResult), Result
// returns the final answer once Next has returned false, Err the error that
// ended the stream (an *APIError for Bay's error event; the context's error
// when it was cancelled). Cancelling the context, or Close, ends the stream;
// the code itself runs on unless the request asked KillOnDisconnect.
type Stream[R any] struct {
	resp   *http.Response
	rd     *bufio.Reader
	ev     Event
	result *R
	err    error
	done   bool
	legacy bool // Bay answered JSON (it does not stream): one result event
}

// StreamPython runs code and streams its output as it is produced.
func (c *Client) StreamPython(ctx context.Context, id string, r PythonExecRequest) (*Stream[PythonResult], error) {
	return openStream[PythonResult](ctx, c, sandboxPath(id, "/python/exec"), r)
}

// StreamShell runs a shell command and streams its output as it is produced.
func (c *Client) StreamShell(ctx context.Context, id string, r ShellExecRequest) (*Stream[ShellResult], error) {
	return openStream[ShellResult](ctx, c, sandboxPath(id, "/shell/exec"), r)
}

func openStream[R any](ctx context.Context, c *Client, path string, in any) (*Stream[R], error) {
	resp, err := c.open(ctx, call{method: http.MethodPost, path: path, in: in, accept: "text/event-stream"})
	if err != nil {
		return nil, err
	}
	s := &Stream[R]{resp: resp, rd: bufio.NewReaderSize(resp.Body, 32<<10)}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		s.legacy = true
	}
	return s, nil
}

// Next advances to the next event; false at the end of the stream or on error.
func (s *Stream[R]) Next() bool {
	if s.done {
		return false
	}
	if s.legacy {
		return s.legacyNext()
	}
	for {
		typ, data, err := s.read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("shipyard: stream ended before its result: %w", io.ErrUnexpectedEOF)
			}
			return s.finish(err)
		}
		ev := Event{Type: typ, Data: data}
		switch typ {
		case wire.EventStdout, wire.EventStderr:
			var t wire.StreamText
			err = json.Unmarshal(data, &t)
			ev.Text = t.Text
		case wire.EventDisplay:
			var d wire.StreamDisplay
			err = json.Unmarshal(data, &d)
			ev.Display = d.Data
		case wire.EventException:
			ev.Exception = new(wire.StreamException)
			err = json.Unmarshal(data, ev.Exception)
		case wire.EventResult:
			s.result = new(R)
			if err = json.Unmarshal(data, s.result); err == nil {
				s.ev, s.done = ev, true
				s.resp.Body.Close()
				return true
			}
		case wire.EventError:
			var body wire.ErrorBody
			ae := &APIError{Status: s.resp.StatusCode, RequestID: s.resp.Header.Get("X-Request-Id")}
			if err = json.Unmarshal(data, &body); err == nil {
				ae.fill(&body.Error)
				err = ae
			}
			return s.finish(err)
		default:
			continue // an event type this client does not know
		}
		if err != nil {
			return s.finish(fmt.Errorf("shipyard: stream event %s: %w", typ, err))
		}
		s.ev = ev
		return true
	}
}

func (s *Stream[R]) legacyNext() bool {
	s.result = new(R)
	raw, err := io.ReadAll(s.resp.Body)
	if err == nil {
		err = json.Unmarshal(raw, s.result)
	}
	if err != nil {
		s.result = nil
		return s.finish(fmt.Errorf("shipyard: decode result: %w", err))
	}
	s.ev, s.done = Event{Type: wire.EventResult, Data: raw}, true
	s.resp.Body.Close()
	return true
}

func (s *Stream[R]) finish(err error) bool {
	s.done, s.err = true, err
	s.resp.Body.Close()
	return false
}

// read returns the next event (type and data), skipping comments (pings).
func (s *Stream[R]) read() (string, json.RawMessage, error) {
	typ := ""
	var data []byte
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		switch {
		case line == "":
			if data != nil {
				if typ == "" {
					typ = "message"
				}
				return typ, data, nil
			}
			typ = ""
		case line[0] == ':':
			// comment (": ping")
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				typ = value
			case "data":
				if data == nil {
					data = make([]byte, 0, len(value))
				} else {
					data = append(data, '\n')
				}
				data = append(data, value...)
			}
		}
	}
}

// Streamed reports whether Bay streamed the answer. A Bay without streaming
// answers the whole result at once; the stream then has one EventResult.
func (s *Stream[R]) Streamed() bool { return !s.legacy }

// Event returns the current event.
func (s *Stream[R]) Event() Event { return s.ev }

// Result returns the final answer (nil until the EventResult was read).
func (s *Stream[R]) Result() *R { return s.result }

// Err returns the error that ended the stream, nil after a result.
func (s *Stream[R]) Err() error { return s.err }

// Close ends the stream early (the code runs on unless KillOnDisconnect).
func (s *Stream[R]) Close() error {
	if !s.done {
		s.done = true
		s.err = context.Canceled
	}
	return s.resp.Body.Close()
}

// Events ranges over the events; check Err after the loop.
func (s *Stream[R]) Events() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		for s.Next() {
			if !yield(s.Event()) {
				return
			}
		}
	}
}

// Copy writes stdout events to stdout and stderr and exception events
// (the traceback) to stderr as they arrive, and returns the result. For a
// Bay that does not stream, the result's output and error are written at
// the end.
func (s *Stream[R]) Copy(stdout, stderr io.Writer) (*R, error) {
	defer s.Close()
	for s.Next() {
		ev := s.Event()
		var err error
		switch ev.Type {
		case EventStdout:
			_, err = io.WriteString(stdout, ev.Text)
		case EventStderr:
			_, err = io.WriteString(stderr, ev.Text)
		case EventException:
			tb := strings.Join(ev.Exception.Traceback, "\n")
			if tb == "" {
				tb = ev.Exception.Ename + ": " + ev.Exception.Evalue
			}
			_, err = io.WriteString(stderr, tb+"\n")
		case EventDisplay:
			if t, ok := ev.Display["text/plain"]; ok {
				var txt string
				if json.Unmarshal(t, &txt) == nil {
					_, err = io.WriteString(stdout, txt+"\n")
				}
			}
		case EventResult:
			if s.legacy {
				// A whole answer: its output, and its error text (stderr of
				// a shell command, the traceback of Python code).
				var r struct {
					Output string  `json:"output"`
					Error  *string `json:"error"`
				}
				if json.Unmarshal(ev.Data, &r) == nil {
					_, err = io.WriteString(stdout, r.Output)
					if err == nil && r.Error != nil && *r.Error != "" {
						_, err = io.WriteString(stderr, strings.TrimSuffix(*r.Error, "\n")+"\n")
					}
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.result, nil
}
