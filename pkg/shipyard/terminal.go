package shipyard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// Terminal is an interactive shell in a sandbox (a login bash on a PTY, as
// the sandbox user, in /workspace) over Bay's WebSocket route. Write sends
// keys, Read returns what the terminal prints; Close ends the shell and
// everything it started.
type Terminal struct {
	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	rmu    sync.Mutex
	cur    io.Reader // the frame being read
	wmu    sync.Mutex
}

var _ io.ReadWriteCloser = (*Terminal)(nil)

// TerminalOptions tune OpenTerminal.
type TerminalOptions struct {
	Cols, Rows int // initial size (0: 80×24)
}

// OpenTerminal opens a terminal. ctx bounds the whole session: cancelling
// it closes the terminal.
func (c *Client) OpenTerminal(ctx context.Context, id string, o TerminalOptions) (*Terminal, error) {
	q := url.Values{}
	if o.Cols > 0 && o.Rows > 0 {
		q.Set("cols", strconv.Itoa(o.Cols))
		q.Set("rows", strconv.Itoa(o.Rows))
	}
	u := "ws" + c.url(sandboxPath(id, "/terminal"), q)[len("http"):]
	hdr := http.Header{}
	if c.token != "" {
		hdr.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.hc
	hc.Timeout = 0 // the session is long-lived; ctx bounds it
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: &hc})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			if resp.Body == nil {
				resp.Body = http.NoBody
			}
			return nil, decodeError(resp)
		}
		return nil, fmt.Errorf("shipyard: terminal: %w", err)
	}
	conn.SetReadLimit(1 << 20)
	tctx, cancel := context.WithCancel(ctx)
	return &Terminal{conn: conn, ctx: tctx, cancel: cancel}, nil
}

// Read reads terminal output. It returns io.EOF when the shell has ended.
func (t *Terminal) Read(p []byte) (int, error) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	for {
		if t.cur != nil {
			n, err := t.cur.Read(p)
			if err == io.EOF {
				t.cur = nil
				if n > 0 {
					return n, nil
				}
				continue
			}
			return n, err
		}
		_, r, err := t.conn.Reader(t.ctx)
		if err != nil {
			if s := websocket.CloseStatus(err); s == websocket.StatusNormalClosure || s == websocket.StatusGoingAway {
				return 0, io.EOF
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) {
				return 0, io.EOF
			}
			return 0, err
		}
		t.cur = r
	}
}

// Write sends keys (bytes as typed: "\r" is Enter, "\x03" is Ctrl-C).
func (t *Terminal) Write(p []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if err := t.conn.Write(t.ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Resize sets the terminal's size in character cells.
func (t *Terminal) Resize(cols, rows int) error {
	if cols <= 0 || rows <= 0 {
		return fmt.Errorf("shipyard: terminal size %dx%d", cols, rows)
	}
	b, _ := json.Marshal(map[string]any{"type": "resize", "cols": cols, "rows": rows})
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.conn.Write(t.ctx, websocket.MessageText, b)
}

// Close ends the terminal (the shell and the processes it started).
func (t *Terminal) Close() error {
	defer t.cancel()
	err := t.conn.Close(websocket.StatusNormalClosure, "")
	if websocket.CloseStatus(err) == websocket.StatusNormalClosure || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
