package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

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

// sseWriteTimeout bounds one write of an event: a client that stops reading
// for this long is treated as gone (its command is not held up by it).
const sseWriteTimeout = 30 * time.Second

// sse writes Server-Sent Events: `event: <type>\ndata: <one-line JSON>\n\n`,
// each flushed at once, with `: ping` comments while the stream is quiet.
// Safe for concurrent use; once the client is gone (a write failed) or the
// stream is closed, events are dropped.
type sse struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	rc     *http.ResponseController
	gone   bool // a write failed
	closed bool
	last   time.Time
	stop   chan struct{}
	done   chan struct{}
	// onGone is called once when a write fails (the client went away).
	onGone func()
}

// startSSE answers 200 with the event-stream headers and starts the
// keep-alive pings (every keepAlive of silence).
func startSSE(w http.ResponseWriter, keepAlive time.Duration, onGone func()) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w), last: time.Now(), stop: make(chan struct{}), done: make(chan struct{}), onGone: onGone}
	s.mu.Lock()
	s.flushLocked()
	s.mu.Unlock()
	go s.pings(keepAlive)
	return s
}

func (s *sse) pings(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			if !s.gone && !s.closed && time.Since(s.last) >= every {
				s.writeLocked([]byte(": ping\n\n"))
			}
			s.mu.Unlock()
		}
	}
}

// event sends one event; v is encoded as one line of JSON.
func (s *sse) event(typ string, v any) {
	var buf bytes.Buffer
	buf.WriteString("event: ")
	buf.WriteString(typ)
	buf.WriteString("\ndata: ")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // Encode ends the line
		return
	}
	buf.WriteString("\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gone && !s.closed {
		s.writeLocked(buf.Bytes())
	}
}

func (s *sse) writeLocked(b []byte) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	if _, err := s.w.Write(b); err != nil {
		s.goneLocked()
		return
	}
	s.flushLocked()
	s.last = time.Now()
}

func (s *sse) flushLocked() {
	if err := s.rc.Flush(); err != nil {
		s.goneLocked()
	}
}

func (s *sse) goneLocked() {
	if s.gone {
		return
	}
	s.gone = true
	if s.onGone != nil {
		go s.onGone()
	}
}

// close stops the pings; later events are dropped. Call before the handler returns.
func (s *sse) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	_ = s.rc.SetWriteDeadline(time.Time{})
}

// textStream turns the byte chunks of one output stream into text events
// that never split a UTF-8 sequence (its first bytes wait for the rest).
// Calls for one stream must not be concurrent (exec copies each pipe on
// one goroutine).
type textStream struct {
	typ  string
	out  *sse
	rest []byte
}

func (t *textStream) write(p []byte) {
	b := append(t.rest, p...)
	n := completeUTF8(b)
	t.rest = append(t.rest[:0:0], b[n:]...)
	if n > 0 {
		t.out.event(t.typ, map[string]string{"text": strings.ToValidUTF8(string(b[:n]), "\uFFFD")})
	}
}

// flush sends what is left (an incomplete sequence the command never finished).
func (t *textStream) flush() {
	if len(t.rest) > 0 {
		t.out.event(t.typ, map[string]string{"text": strings.ToValidUTF8(string(t.rest), "\uFFFD")})
		t.rest = nil
	}
}

// completeUTF8 returns the length of b without a trailing incomplete UTF-8
// sequence.
func completeUTF8(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if !utf8.RuneStart(b[i]) {
			continue
		}
		if utf8.FullRune(b[i:]) {
			return len(b)
		}
		return i
	}
	return len(b)
}
