package kernel

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// MaxMessageBytes bounds one message received from the kernel (all frames
// together). zmq4 reads a whole frame into memory, whatever size its header
// announces, so the bound is applied below it, on the TCP stream (limitConn):
// a frame that would take the message past it is skipped while it arrives
// and replaced by a small placeholder that says how big it was. Output of
// that size cannot be shown anyway (the collector caps every kind far lower);
// the result says it was dropped.
const MaxMessageBytes = 8 << 20

// limitedTCP is the zmq4 transport name of TCP with the bound.
const limitedTCP = "shipyard-tcp"

func init() {
	if err := zmq4.RegisterTransport(limitedTCP, limitedTransport{Transport: transport.New("tcp"), max: MaxMessageBytes}); err != nil {
		panic(err) // only a duplicate name fails
	}
}

// limitedTransport dials TCP and bounds the messages read (see limitConn).
type limitedTransport struct {
	transport.Transport
	max uint64
}

func (t limitedTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	c, err := t.Transport.Dial(ctx, d, addr)
	if err != nil {
		return nil, err
	}
	return newLimitConn(c, t.max), nil
}

// droppedPrefix starts the placeholder of a skipped frame; a real frame of
// the Jupyter protocol (JSON or a signature) never starts with a NUL byte.
const droppedPrefix = "\x00shipyard:dropped:"

// droppedSize reports whether frame is a placeholder and the size it stands for.
func droppedSize(frame []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(frame, []byte(droppedPrefix))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// ZMTP 3 framing (rfc.zeromq.org/spec/23): a 64-byte greeting, then frames of
// a flags byte, a 1-byte or (flagLong) 8-byte big-endian size, and the body.
const (
	greetingLen = 64
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04
)

// limitConn passes a ZMTP stream through, except that a message frame that
// would make its message larger than max is skipped while it is read and
// replaced by a placeholder frame (droppedPrefix + size) with the same flags.
// Commands are passed whole (zmq4 only sends small ones).
type limitConn struct {
	net.Conn
	max uint64

	greeting uint64 // greeting bytes still to pass
	body     uint64 // body bytes of the current frame still to pass
	skip     uint64 // body bytes of a dropped frame still to discard
	msg      uint64 // bytes of the current message so far
	pending  []byte // bytes to hand out before reading on
	hdr      [9]byte
}

func newLimitConn(c net.Conn, max uint64) *limitConn {
	return &limitConn{Conn: c, max: max, greeting: greetingLen}
}

func (c *limitConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		switch {
		case len(c.pending) > 0:
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		case c.greeting > 0:
			n, err := c.Conn.Read(p[:min(uint64(len(p)), c.greeting)])
			c.greeting -= uint64(n)
			return n, err
		case c.body > 0:
			n, err := c.Conn.Read(p[:min(uint64(len(p)), c.body)])
			c.body -= uint64(n)
			return n, err
		case c.skip > 0:
			n, err := io.CopyN(io.Discard, c.Conn, int64(min(c.skip, 1<<62)))
			c.skip -= uint64(n)
			if err != nil {
				return 0, err
			}
		default:
			if err := c.header(); err != nil {
				return 0, err
			}
		}
	}
}

// header reads the next frame header and decides whether the frame passes.
func (c *limitConn) header() error {
	if _, err := io.ReadFull(c.Conn, c.hdr[:1]); err != nil {
		return err
	}
	flags := c.hdr[0]
	hlen := 2
	if flags&flagLong != 0 {
		hlen = 9
	}
	if _, err := io.ReadFull(c.Conn, c.hdr[1:hlen]); err != nil {
		return err
	}
	size := uint64(c.hdr[1])
	if hlen == 9 {
		size = binary.BigEndian.Uint64(c.hdr[1:9])
	}
	isCommand := flags&flagCommand != 0
	if isCommand || size <= c.max-min(c.msg, c.max) {
		if !isCommand {
			c.msg += size
		}
		if flags&flagMore == 0 && !isCommand {
			c.msg = 0
		}
		c.pending = append(c.pending[:0], c.hdr[:hlen]...)
		c.body = size
		return nil
	}
	// Too large: a placeholder frame in its place.
	body := droppedPrefix + strconv.FormatUint(size, 10)
	c.pending = append(c.pending[:0], flags|flagLong)
	c.pending = binary.BigEndian.AppendUint64(c.pending, uint64(len(body)))
	c.pending = append(c.pending, body...)
	c.msg = min(c.msg+uint64(len(body)), c.max)
	if flags&flagMore == 0 {
		c.msg = 0
	}
	c.skip = size
	return nil
}
