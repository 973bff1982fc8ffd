package kernel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// frame encodes one ZMTP frame; long forces the 8-byte size form.
func frame(flags byte, body []byte, long bool) []byte {
	if long || len(body) > 255 {
		b := []byte{flags | flagLong}
		b = binary.BigEndian.AppendUint64(b, uint64(len(body)))
		return append(b, body...)
	}
	return append([]byte{flags, byte(len(body))}, body...)
}

// parseFrames decodes a ZMTP stream after the greeting into messages of frames.
func parseFrames(t testing.TB, b []byte) [][]string {
	t.Helper()
	var msgs [][]string
	var cur []string
	for len(b) > 0 {
		flags := b[0]
		var size uint64
		if flags&flagLong != 0 {
			size = binary.BigEndian.Uint64(b[1:9])
			b = b[9:]
		} else {
			size = uint64(b[1])
			b = b[2:]
		}
		if uint64(len(b)) < size {
			t.Fatalf("frame of %d bytes, %d left", size, len(b))
		}
		cur = append(cur, string(b[:size]))
		b = b[size:]
		if flags&flagMore == 0 || flags&flagCommand != 0 {
			msgs = append(msgs, cur)
			cur = nil
		}
	}
	if cur != nil {
		t.Fatalf("unterminated message %q", cur)
	}
	return msgs
}

// through passes stream through a limitConn with the given max.
func through(t testing.TB, stream []byte, max uint64) ([]byte, error) {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		_, _ = a.Write(stream)
		a.Close()
	}()
	lc := newLimitConn(b, max)
	defer lc.Close()
	var out bytes.Buffer
	buf := make([]byte, 7) // small reads: every state is crossed mid-way
	for {
		n, err := lc.Read(buf)
		out.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

func TestLimitConn(t *testing.T) {
	greeting := bytes.Repeat([]byte{0xff}, greetingLen)
	big := strings.Repeat("x", 300)
	tests := []struct {
		name   string
		frames [][]byte
		want   [][]string
	}{
		{
			name:   "small frames pass",
			frames: [][]byte{frame(flagMore, []byte("a"), false), frame(0, []byte("bc"), true)},
			want:   [][]string{{"a", "bc"}},
		},
		{
			name:   "commands pass whole",
			frames: [][]byte{frame(flagCommand, []byte("\x05READY"+big), false)},
			want:   [][]string{{"\x05READY" + big}},
		},
		{
			name:   "a too-large frame becomes a placeholder",
			frames: [][]byte{frame(flagMore, []byte("hdr"), false), frame(0, []byte(big), false), frame(0, []byte("next"), false)},
			want:   [][]string{{"hdr", droppedPrefix + "300"}, {"next"}},
		},
		{
			name: "the bound is per message",
			frames: [][]byte{
				frame(flagMore, []byte(strings.Repeat("a", 60)), false), frame(flagMore, []byte(strings.Repeat("b", 60)), false),
				frame(0, []byte("c"), false), frame(0, []byte(strings.Repeat("d", 100)), false),
			},
			want: [][]string{{strings.Repeat("a", 60), droppedPrefix + "60", "c"}, {strings.Repeat("d", 100)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := append([]byte(nil), greeting...)
			for _, f := range tt.frames {
				stream = append(stream, f...)
			}
			out, err := through(t, stream, 100)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out[:greetingLen], greeting) {
				t.Fatal("greeting changed")
			}
			got := parseFrames(t, out[greetingLen:])
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDroppedSize(t *testing.T) {
	for in, want := range map[string]int64{droppedPrefix + "12": 12, droppedPrefix + "x": -1, "{}": -1, droppedPrefix + "-1": -1} {
		n, ok := droppedSize([]byte(in))
		if (want < 0) == ok || (ok && n != want) {
			t.Errorf("droppedSize(%q) = %d, %v", in, n, ok)
		}
	}
}

// TestLimitedTransport sends a message larger than MaxMessageBytes through
// real zmq4 sockets: the receiver gets a placeholder, then the next message.
func TestLimitedTransport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// (zmq4's PUB socket leaks a goroutine; DEALER pairs do not.)
	pub := zmq4.NewDealer(ctx)
	defer pub.Close()
	if err := pub.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	sub := zmq4.NewDealer(ctx)
	defer sub.Close()
	addr := pub.Addr().String()
	if err := sub.Dial(limitedTCP + "://" + addr); err != nil {
		t.Fatal(err)
	}
	huge := bytes.Repeat([]byte("h"), MaxMessageBytes+1)
	if err := pub.Send(zmq4.NewMsgFrom([]byte("topic"), huge)); err != nil {
		t.Fatal(err)
	}
	if err := pub.Send(zmq4.NewMsgFrom([]byte("topic"), []byte("small"))); err != nil {
		t.Fatal(err)
	}
	m, err := sub.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := droppedSize(m.Frames[len(m.Frames)-1]); !ok || n != int64(len(huge)) {
		t.Fatalf("first message %d frames, last %.40q", len(m.Frames), m.Frames[len(m.Frames)-1])
	}
	m, err = sub.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.Frames[1]); got != "small" {
		t.Errorf("second message %q", got)
	}
}

// FuzzLimitConn checks that whatever bytes follow the greeting, the output is
// well-formed framing (up to a cut at the end) and no message passes the bound.
func FuzzLimitConn(f *testing.F) {
	f.Add(append(frame(flagMore, []byte("<IDS|MSG>"), false), frame(0, bytes.Repeat([]byte("{}"), 100), false)...))
	f.Add(frame(flagCommand, []byte("\x05READY\x0bSocket-Type\x00\x00\x00\x03SUB"), false))
	f.Add(frame(0, []byte("x"), true))
	f.Fuzz(func(t *testing.T, rest []byte) {
		const max = 64
		stream := append(bytes.Repeat([]byte{0}, greetingLen), rest...)
		out, _ := through(t, stream, max)
		if len(out) < greetingLen {
			if len(rest) > 0 || len(out) != len(stream) {
				t.Fatalf("greeting cut: %d bytes", len(out))
			}
			return
		}
		b := out[greetingLen:]
		var msg uint64
		for len(b) > 0 {
			flags := b[0]
			hl := 2
			if flags&flagLong != 0 {
				hl = 9
			}
			if len(b) < hl {
				return // input ended inside a header
			}
			size := uint64(b[1])
			if hl == 9 {
				size = binary.BigEndian.Uint64(b[1:9])
			}
			if flags&flagCommand == 0 {
				if _, dropped := droppedSize(b[hl:min(uint64(len(b)), uint64(hl)+size)]); !dropped {
					msg += size
				}
				if msg > max {
					t.Fatalf("message of %d bytes passed", msg)
				}
				if flags&flagMore == 0 {
					msg = 0
				}
			}
			if uint64(len(b)-hl) < size {
				return // input ended inside a body
			}
			b = b[uint64(hl)+size:]
		}
	})
}
