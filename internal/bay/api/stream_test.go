package api

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/runtime"
)

func TestWantsStream(t *testing.T) {
	for _, tt := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"application/json"}, false},
		{[]string{"text/event-stream"}, true},
		{[]string{"application/json, Text/Event-Stream;q=0.9"}, true},
		{[]string{"text/html", "text/event-stream"}, true},
		{[]string{"text/event-streamx"}, false},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		for _, a := range tt.accept {
			r.Header.Add("Accept", a)
		}
		if got := wantsStream(r); got != tt.want {
			t.Errorf("%q: %v", tt.accept, got)
		}
	}
}

// TestEventStream: nothing is written before open; events are one line of
// JSON each, flushed as sent; pings fill silence; events after close are dropped.
func TestEventStream(t *testing.T) {
	sent := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := newEventStream(w, 150*time.Millisecond)
		sink := s.sink()
		sink.Event(runtime.Event{Type: "stdout", Data: []byte(`{"text":"dropped: not open"}`)})
		sink.Open()
		sink.Event(runtime.Event{Type: "stdout", Data: []byte("{\n \"text\": \"a\\nb\"\n}")}) // compacted to one line
		sink.Event(runtime.Event{Type: "result", Data: []byte(`{}`)})                         // not an output event: not passed on
		sink.Event(runtime.Event{Type: "stderr", Data: []byte(`not json`)})                   // dropped
		<-sent
		time.Sleep(400 * time.Millisecond)
		s.event("result", map[string]any{"success": true, "html": "<b>"})
		s.close()
		s.event("stdout", map[string]string{"text": "after close"})
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("headers %v", res.Header)
	}
	r := bufio.NewReader(res.Body)
	// The first event arrives before the handler goes on (flushed, not buffered).
	first := ""
	for range 3 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		first += l
	}
	close(sent)
	if first != "event: stdout\ndata: {\"text\":\"a\\nb\"}\n\n" {
		t.Fatalf("first event %q", first)
	}
	rest, _ := io.ReadAll(r)
	want := "event: result\ndata: {\"html\":\"<b>\",\"success\":true}\n\n"
	if !strings.HasSuffix(string(rest), want) || !strings.Contains(string(rest), ": ping\n\n") || strings.Contains(string(rest), "after close") {
		t.Fatalf("rest %q", rest)
	}
}
