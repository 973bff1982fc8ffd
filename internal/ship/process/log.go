package process

import (
	"sync"
	"unicode/utf8"
)

// Log keeps the last Size bytes of a byte stream addressed by absolute
// offsets (the position of a byte since the stream began), so a reader can
// resume where it left off and learn when bytes it never read were dropped.
// Storage grows with what is written, up to Size. Safe for concurrent use.
type Log struct {
	mu      sync.Mutex
	size    int
	buf     []byte
	start   int   // index in buf of the oldest byte once full
	full    bool  // buf holds size bytes and wraps
	written int64 // total bytes ever written (the offset of the next byte)
}

// NewLog returns a log keeping at most size bytes (size >= 1).
func NewLog(size int) *Log {
	return &Log{size: max(size, 1)}
}

// Write implements io.Writer; it never fails.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	l.written += int64(n)
	if n >= l.size {
		if cap(l.buf) < l.size {
			l.buf = make([]byte, l.size)
		}
		l.buf = l.buf[:l.size]
		copy(l.buf, p[n-l.size:])
		l.start, l.full = 0, true
		return n, nil
	}
	if !l.full {
		if room := l.size - len(l.buf); n <= room {
			if len(l.buf)+n > cap(l.buf) {
				nb := make([]byte, len(l.buf), min(l.size, max(2*cap(l.buf), len(l.buf)+n, 4096)))
				copy(nb, l.buf)
				l.buf = nb
			}
			l.buf = append(l.buf, p...)
			return n, nil
		}
		// Fill up to size, then wrap.
		nb := make([]byte, l.size)
		copy(nb, l.buf)
		c := copy(nb[len(l.buf):], p)
		l.buf, l.full, l.start = nb, true, 0
		p = p[c:]
	}
	for len(p) > 0 {
		c := copy(l.buf[l.start:], p)
		p = p[c:]
		l.start = (l.start + c) % l.size
	}
	return n, nil
}

// Chunk is a read of a Log.
type Chunk struct {
	Data      []byte
	Offset    int64 // offset of Data[0]
	Next      int64 // offset to read from next
	Truncated bool  // bytes from the requested offset had been dropped: Data starts at the oldest kept byte
	Written   int64 // total bytes written so far (the end of the stream)
}

// Read returns up to maxBytes bytes from offset. An offset before the oldest
// kept byte reads from there with Truncated set; one past the end reads
// nothing. A chunk does not start inside a UTF-8 sequence after a
// truncation, nor end inside one (its bytes are left for the next read)
// unless it ends the stream and ended is set (the writer is done: the
// sequence will never be completed). maxBytes below utf8.UTFMax counts as
// utf8.UTFMax, so a read always makes progress.
func (l *Log) Read(offset int64, maxBytes int, ended bool) Chunk {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.written - int64(len(l.buf))
	c := Chunk{Offset: offset, Written: l.written}
	if offset < first {
		c.Offset, c.Truncated = first, true
	}
	if c.Offset > l.written {
		c.Offset = l.written
	}
	n := int(min(int64(max(maxBytes, utf8.UTFMax)), l.written-c.Offset))
	c.Data = make([]byte, n)
	from := int(c.Offset - first) // index in logical order
	if l.full {
		from = (l.start + from) % l.size
	}
	k := copy(c.Data, l.buf[from:min(len(l.buf), from+n)])
	copy(c.Data[k:], l.buf[:n-k])
	if c.Truncated {
		i := 0
		for i < len(c.Data) && i < utf8.UTFMax && !utf8.RuneStart(c.Data[i]) {
			i++
		}
		c.Data, c.Offset = c.Data[i:], c.Offset+int64(i)
	}
	if !ended || c.Offset+int64(len(c.Data)) < l.written {
		c.Data = c.Data[:completeUTF8(c.Data)]
	}
	c.Next = c.Offset + int64(len(c.Data))
	return c
}
