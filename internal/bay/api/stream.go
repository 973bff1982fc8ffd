package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/pkg/shipyard/wire"
)

// Streamed execution: POST …/python/exec and …/shell/exec with
// "Accept: text/event-stream" answer Server-Sent Events, each
// "event: <type>\ndata: <one-line JSON>\n\n" and flushed as produced:
// stdout/stderr {"text"}, display {"data": {mime: value}}, exception
// {"ename","evalue","traceback"}, then result (the body the plain call
// answers) or error (Bay's error body) last. Errors before the runtime
// accepted the call are the usual JSON answers. See docs/api.md.

// streamKeepAlive is how long a stream stays silent before a ": ping"
// comment is sent (proxies close idle connections).
const streamKeepAlive = 15 * time.Second

// streamWriteTimeout: a client that reads nothing for this long counts as
// gone; the execution goes on (or is killed, with kill_on_disconnect).
const streamWriteTimeout = 30 * time.Second

// wantsStream reports whether the client asked for Server-Sent Events.
func wantsStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

// eventStream writes one response's events. It starts the response only when
// opened, so errors until then are plain JSON answers. Safe for concurrent
// use; events after the client has gone or the stream was closed are dropped.
type eventStream struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	keepAlive time.Duration

	mu     sync.Mutex
	opened bool
	gone   bool
	closed bool
	last   time.Time
	stop   chan struct{}
	done   chan struct{}
}

func newEventStream(w http.ResponseWriter, keepAlive time.Duration) *eventStream {
	return &eventStream{w: w, rc: http.NewResponseController(w), keepAlive: keepAlive,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// open answers 200 with the event-stream headers and starts the pings.
func (s *eventStream) open() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened || s.closed {
		return
	}
	s.opened = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
	s.flushLocked()
	s.last = time.Now()
	go s.pings()
}

func (s *eventStream) isOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

func (s *eventStream) pings() {
	defer close(s.done)
	t := time.NewTicker(s.keepAlive / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			if !s.gone && !s.closed && time.Since(s.last) >= s.keepAlive {
				s.writeLocked([]byte(": ping\n\n"))
			}
			s.mu.Unlock()
		}
	}
}

// raw sends an event whose data is already JSON (compacted to one line).
func (s *eventStream) raw(typ string, data []byte) {
	var buf bytes.Buffer
	buf.Grow(len(typ) + len(data) + 16)
	buf.WriteString("event: ")
	buf.WriteString(typ)
	buf.WriteString("\ndata: ")
	if err := json.Compact(&buf, data); err != nil {
		return // Ship sent something that is not JSON: drop it
	}
	buf.WriteString("\n\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened && !s.gone && !s.closed {
		s.writeLocked(buf.Bytes())
	}
}

// event sends v as an event.
func (s *eventStream) event(typ string, v any) { s.raw(typ, encode(v)) }

func (s *eventStream) writeLocked(b []byte) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := s.w.Write(b); err != nil {
		s.gone = true
		return
	}
	s.flushLocked()
	s.last = time.Now()
}

func (s *eventStream) flushLocked() {
	if err := s.rc.Flush(); err != nil {
		s.gone = true
	}
}

// close stops the pings; later events are dropped.
func (s *eventStream) close() {
	s.mu.Lock()
	s.closed = true
	opened := s.opened
	s.mu.Unlock()
	if opened {
		close(s.stop)
		<-s.done
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
}

// outputEvents are the runtime's events passed on to the client.
var outputEvents = map[string]bool{wire.EventStdout: true, wire.EventStderr: true, wire.EventDisplay: true, wire.EventException: true}

// sink passes the runtime's stream on to the client.
func (s *eventStream) sink() runtime.Sink {
	return runtime.Sink{
		Open: s.open,
		Event: func(ev runtime.Event) {
			if outputEvents[ev.Type] {
				s.raw(ev.Type, ev.Data)
			}
		},
	}
}

// fail ends a stream with err: as the usual JSON answer when the stream has
// not started, else as an error event with the same body.
func (a *API) streamFail(s *eventStream, w http.ResponseWriter, r *http.Request, err error) {
	if !s.isOpen() {
		a.fail(w, r, err)
		return
	}
	rec := &bodyRecorder{header: http.Header{}}
	a.fail(rec, r, err)
	if rec.body.Len() > 0 {
		s.raw(wire.EventError, rec.body.Bytes())
	}
}

// bodyRecorder captures an answer written for a client that now gets it as an event.
type bodyRecorder struct {
	header http.Header
	body   bytes.Buffer
}

func (b *bodyRecorder) Header() http.Header         { return b.header }
func (b *bodyRecorder) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bodyRecorder) WriteHeader(int)             {}
