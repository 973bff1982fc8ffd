package process

import "sync"

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

// capped keeps the first max bytes written and notes whether more came.
type capped struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.buf); room < len(p) {
		if room > 0 {
			c.buf = append(c.buf, p[:room]...)
		}
		c.truncated = true
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *capped) result() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf, c.truncated
}
