package mcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
)

// TestInProcess: status, headers and a body larger than the pipe's buffer
// pass intact; the caller's credentials replace the request's.
func TestInProcess(t *testing.T) {
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 200) // 3200 bytes
	const chunks = 1000                                    // ~3 MiB, many times bodyPipeSize
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Auth", r.Header.Get("Authorization"))
		w.Header().Set("X-Remote", r.RemoteAddr)
		w.WriteHeader(http.StatusTeapot)
		for range chunks {
			if _, err := w.Write(chunk); err != nil {
				t.Errorf("write: %v", err)
				return
			}
		}
	})
	hc := &http.Client{Transport: InProcess(h)}
	ctx := withCaller(context.Background(), caller{header: http.Header{"Authorization": {"Bearer good"}}, remoteAddr: "10.1.2.3:4"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://bay.internal/x", nil)
	req.Header.Set("Authorization", "Bearer forged")
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusTeapot || res.Header.Get("X-Auth") != "Bearer good" || res.Header.Get("X-Remote") != "10.1.2.3:4" {
		t.Fatalf("status %d, headers %v", res.StatusCode, res.Header)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Repeat(chunk, chunks); !bytes.Equal(body, want) {
		t.Fatalf("body: %d bytes, want %d", len(body), len(want))
	}
}

// TestInProcessClose: a caller that stops reading and closes the body makes
// the handler's writes fail, so it ends (goleak checks that it did).
func TestInProcessClose(t *testing.T) {
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1024)
		for {
			if _, err := w.Write(buf); err != nil {
				done <- err
				return
			}
		}
	})
	res, err := (&http.Client{Transport: InProcess(h)}).Get("http://bay.internal/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 10000)); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if err := <-done; !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("handler's write after close: %v", err)
	}
}

// TestInProcessPanic: a handler that panics mid-body cuts the body short
// with an error, not a clean EOF.
func TestInProcessPanic(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	})
	res, err := (&http.Client{Transport: InProcess(h)}).Get("http://bay.internal/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if string(body) != "partial" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("body %q, err %v", body, err)
	}
}
