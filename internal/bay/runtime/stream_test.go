package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

// sseShip answers a stream of the given raw SSE text, flushing after each piece.
func sseShip(pieces ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "not asked", 400)
			return
		}
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		if _, ok := in["kill_on_disconnect"]; !ok {
			http.Error(w, "kill_on_disconnect not passed", 400)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, p := range pieces {
			_, _ = w.Write([]byte(p))
			w.(http.Flusher).Flush()
		}
	}
}

func TestShellStream(t *testing.T) {
	tests := []struct {
		name    string
		pieces  []string
		events  string // type=data;...
		code    int
		errCode errs.Code
	}{
		{name: "events then result", pieces: []string{
			": ping\n\n",
			"event: stdout\ndata: {\"text\":\"a\\n\"}\n\n",
			"event: stderr\r\ndata: {\"text\":\"b\"}\r\n\r\n", // CRLF lines are SSE too
			"event: stdout\ndata: {\"te", "xt\":\"c\"}\n\n",   // split across writes
			"event: result\ndata: {\"success\":true,\"return_code\":0,\"stdout\":\"a\\nc\"}\n\n",
		}, events: `stdout={"text":"a\n"};stderr={"text":"b"};stdout={"text":"c"}`},
		{name: "ends without a result", pieces: []string{"event: stdout\ndata: {\"text\":\"a\"}\n\n"},
			events: `stdout={"text":"a"}`, errCode: errs.ShipError},
		{name: "error event", pieces: []string{"event: error\ndata: {\"detail\":\"boom\"}\n\n"}, errCode: errs.ShipError},
		{name: "bad result", pieces: []string{"event: result\ndata: nope\n\n"}, errCode: errs.ShipError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, tg := ship(t, sseShip(tt.pieces...))
			var got []string
			opened := false
			res, err := c.ShellStream(context.Background(), tg, "x", 5, "", true, Sink{
				Open:  func() { opened = true },
				Event: func(ev Event) { got = append(got, ev.Type+"="+string(ev.Data)) },
			})
			if g := strings.Join(got, ";"); g != tt.events {
				t.Errorf("events %s\nwant   %s", g, tt.events)
			}
			if !opened {
				t.Error("not opened")
			}
			if tt.errCode != "" {
				e, ok := errs.As(err)
				if !ok || e.Code != tt.errCode {
					t.Fatalf("err %v, want %s", err, tt.errCode)
				}
				return
			}
			if err != nil || !res.Success || res.Stdout != "a\nc" {
				t.Fatalf("%+v %v", res, err)
			}
		})
	}
}

// A Ship that answers plain JSON (no streaming) still gives the result.
func TestStreamFallsBackToJSON(t *testing.T) {
	c, tg := ship(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"success":true,"execution_count":1,"output":{"text":"2"},"error":null}`)
	})
	res, err := c.PythonStream(context.Background(), tg, "1+1", 5, false, Sink{})
	if err != nil || res.Text() != "2" {
		t.Fatalf("%+v %v", res, err)
	}
}

// A Ship error before the stream is the usual mapped error, and nothing opens.
func TestStreamErrorBeforeOpen(t *testing.T) {
	c, tg := ship(t, answer(422, "bad"))
	opened := false
	_, err := c.PythonStream(context.Background(), tg, "1+1", 5, false, Sink{Open: func() { opened = true }})
	if e, ok := errs.As(err); !ok || e.Code != errs.Validation || opened {
		t.Fatalf("%v opened=%v", err, opened)
	}
}

// An event over the cap is refused without reading it all.
func TestStreamEventCap(t *testing.T) {
	c, tg := ship(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("event: stdout\ndata: \""))
		chunk := []byte(strings.Repeat("x", 1<<20))
		for range 20 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	start := time.Now()
	_, err := c.ShellStream(context.Background(), tg, "x", 5, "", false, Sink{})
	if e, ok := errs.As(err); !ok || e.Code != errs.ShipError || !strings.Contains(e.Message, "too large") {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}
