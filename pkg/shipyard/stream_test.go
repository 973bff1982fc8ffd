package shipyard

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestStreamEvents(t *testing.T) {
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" {
			w.WriteHeader(406)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		switch r.URL.Path {
		case "/v1/sandboxes/s/python/exec":
			io.WriteString(w, "event: stdout\ndata: {\"text\":\"0\\n\"}\n\n: ping\n\n")
			fl.Flush()
			<-release
			io.WriteString(w, "event: stderr\r\ndata: {\"text\":\"warn\"}\r\n\r\n")
			io.WriteString(w, "event: display\ndata: {\"data\":{\"text/plain\":\"'x'\",\"image/png\":\"iVBO\"}}\n\n")
			io.WriteString(w, "event: future\ndata: {}\n\n")
			io.WriteString(w, "event: exception\ndata: {\"ename\":\"ValueError\",\"evalue\":\"bad\",\"traceback\":[\"tb1\",\"tb2\"]}\n\n")
			io.WriteString(w, "event: result\ndata: {\"success\":false,\"output\":\"0\\n\",\"execution_id\":\"e1\",\"execution_time_ms\":7}\n\n")
		case "/v1/sandboxes/s/shell/exec":
			io.WriteString(w, "event: stdout\ndata: {\"text\":\"a\"}\n\n")
			io.WriteString(w, "event: error\ndata: {\"error\":{\"code\":\"timeout\",\"message\":\"too slow\",\"request_id\":\"rq\"}}\n\n")
		}
	}))
	defer hs.Close()
	c, _ := New(hs.URL, "")
	ctx := context.Background()
	s, err := c.StreamPython(ctx, "s", PythonExecRequest{Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	// The first event arrives while the server still holds the rest.
	if !s.Next() || s.Event().Type != EventStdout || s.Event().Text != "0\n" {
		t.Fatalf("first event %+v, %v", s.Event(), s.Err())
	}
	close(release)
	var types []string
	for ev := range s.Events() {
		types = append(types, ev.Type)
		if ev.Type == EventDisplay && string(ev.Display["image/png"]) != `"iVBO"` {
			t.Fatalf("display %s", ev.Data)
		}
		if ev.Type == EventException && ev.Exception.Ename != "ValueError" {
			t.Fatalf("exception %+v", ev.Exception)
		}
	}
	if got := strings.Join(types, ","); got != "stderr,display,exception,result" {
		t.Fatalf("events %s", got)
	}
	if s.Err() != nil || s.Result() == nil || s.Result().ExecutionID != "e1" || s.Result().ExecutionTimeMs != 7 {
		t.Fatalf("result %+v err %v", s.Result(), s.Err())
	}

	sh, err := c.StreamShell(ctx, "s", ShellExecRequest{Command: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	_, err = sh.Copy(&out, &errOut)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != CodeTimeout || ae.RequestID != "rq" || ae.Status != 200 || out.String() != "a" {
		t.Fatalf("error event: %v %+v out %q", err, ae, out.String())
	}
}

// A stream cut before its result is an error, not a silent success.
func TestStreamCut(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: stdout\ndata: {\"text\":\"a\"}\n\n")
	}))
	defer hs.Close()
	c, _ := New(hs.URL, "")
	s, _ := c.StreamShell(context.Background(), "s", ShellExecRequest{Command: "x"})
	if _, err := s.Copy(io.Discard, io.Discard); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut stream: %v", err)
	}
}

// Cancelling the context ends a stream that waits for output.
func TestStreamCancel(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer hs.Close()
	c, _ := New(hs.URL, "")
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.StreamShell(ctx, "s", ShellExecRequest{Command: "x"})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	if s.Next() || !errors.Is(s.Err(), context.Canceled) {
		t.Fatalf("after cancel: %v", s.Err())
	}
}

// A Bay that does not stream answers JSON: one result event, output at the end.
func TestStreamFallback(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"success":false,"output":"hi\n","error":"oops","exit_code":1,"execution_id":"e"}`)
	}))
	defer hs.Close()
	c, _ := New(hs.URL, "")
	s, _ := c.StreamShell(context.Background(), "s", ShellExecRequest{Command: "x"})
	var out, errOut strings.Builder
	res, err := s.Copy(&out, &errOut)
	if err != nil || out.String() != "hi\n" || errOut.String() != "oops\n" || *res.ExitCode != 1 || s.Streamed() {
		t.Fatalf("fallback: %q %q %+v %v", out.String(), errOut.String(), res, err)
	}
}
