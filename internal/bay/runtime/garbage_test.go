package runtime

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

// A runtime answering garbage (not JSON, cut short, the wrong shape) is a
// clear 502 ship_error with a fixed message, never a decoder's text.
func TestGarbageAnswerIsAShipError(t *testing.T) {
	for _, tc := range []struct{ name, ctype, body string }{
		{"html", "text/html", "<html><body>502 Bad Gateway</body></html>"},
		{"cut short", "application/json", `{"success": true, "output": "tr`},
		{"binary", "application/octet-stream", "\x00\xff\xfe garbage"},
		{"wrong shape", "application/json", `[1, 2, 3]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, tg := ship(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				_, _ = w.Write([]byte(tc.body))
			})
			var out map[string]any
			err := c.call(context.Background(), tg, http.MethodPost, "/ipython/exec", time.Second, false, 1<<20, map[string]any{}, &out)
			e, ok := errs.As(err)
			if !ok || e.Code != errs.ShipError || e.Message != "Ship returned an invalid response" {
				t.Fatalf("got %v", err)
			}
			if NoAnswer(err) {
				t.Fatal("a garbage answer taken for no answer (the runtime would be replaced)")
			}
		})
	}
}
