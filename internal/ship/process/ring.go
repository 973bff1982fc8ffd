package process

import (
	"fmt"
	"sync"
	"unicode/utf8"
)

// Ring keeps the last Size bytes written to it; older bytes are dropped and
// counted. Safe for concurrent use.
type Ring struct {
	mu      sync.Mutex
	buf     []byte
	start   int   // index of the oldest byte when full
	full    bool  // buf has wrapped at least once
	written int64 // total bytes ever written
}

// NewRing returns a ring holding at most size bytes (size >= 1).
func NewRing(size int) *Ring {
	if size < 1 {
		size = 1
	}
	return &Ring{buf: make([]byte, 0, size)}
}

// Write implements io.Writer; it never fails.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	r.written += int64(n)
	size := cap(r.buf)
	if n >= size {
		r.buf = append(r.buf[:0], p[n-size:]...)
		r.start, r.full = 0, true
		return n, nil
	}
	if !r.full {
		room := size - len(r.buf)
		if n <= room {
			r.buf = append(r.buf, p...)
			return n, nil
		}
		r.buf = append(r.buf, p[:room]...)
		p = p[room:]
		r.full, r.start = true, 0
	}
	for len(p) > 0 {
		c := copy(r.buf[r.start:], p)
		p = p[c:]
		r.start = (r.start + c) % size
	}
	return n, nil
}

// Snapshot returns the retained bytes in order and how many were dropped.
func (r *Ring) Snapshot() (data []byte, dropped int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]byte, 0, len(r.buf))
	if r.full {
		out = append(out, r.buf[r.start:]...)
		out = append(out, r.buf[:r.start]...)
	} else {
		out = append(out, r.buf...)
	}
	return out, r.written - int64(len(out))
}

// capped keeps the first max bytes written and counts the bytes beyond.
type capped struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	omitted int64
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.buf); room < len(p) {
		if room > 0 {
			c.buf = append(c.buf, p[:room]...)
		}
		c.omitted += int64(len(p) - max(room, 0))
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// result returns the kept bytes and how many were left out; a cut never
// leaves half a UTF-8 sequence (its bytes count as left out).
func (c *capped) result() ([]byte, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, omitted := c.buf, c.omitted
	if omitted > 0 {
		n := completeUTF8(b)
		omitted += int64(len(b) - n)
		b = b[:n]
	}
	return b, omitted
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

// Marker is the visible mark where output was cut.
func Marker(omitted int64) string {
	return fmt.Sprintf("... [output truncated: %d bytes omitted]", omitted)
}
