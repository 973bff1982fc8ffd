package baytest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TerminalURL is the WebSocket URL of a sandbox's terminal.
func (b *Bay) TerminalURL(id string) string {
	return "ws" + strings.TrimPrefix(b.URL, "http") + "/v1/sandboxes/" + id + "/terminal?cols=100&rows=30"
}

// TerminalRoundTrip opens the sandbox's terminal with APIKey, types input and
// reads the screen until every one of wants has appeared (60 s at most).
func (b *Bay) TerminalRoundTrip(t testing.TB, id, input string, wants ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, b.TerminalURL(id), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + APIKey}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(input)); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	seen := func() bool {
		for _, w := range wants {
			if !strings.Contains(got.String(), w) {
				return false
			}
		}
		return true
	}
	for !seen() {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("terminal read: %v (so far %q)", err, got.String())
		}
		got.Write(data)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}
