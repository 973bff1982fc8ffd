package shipyard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

// fakeBay stands in for a Bay so that the examples with an Output run
// anywhere; point shipyard.New at a real Bay (make run) instead.
func fakeBay() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-1")
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/sandboxes":
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id":"sandbox-0123456789ab","status":"idle","profile":"python-default","cargo_id":"ws-1","capabilities":["python","shell","filesystem"],"created_at":"2026-12-01T10:00:00","expires_at":null,"idle_expires_at":null,"containers":[]}`)
		case "POST /v1/sandboxes/sandbox-0123456789ab/python/exec":
			if r.Header.Get("Accept") == "text/event-stream" {
				w.Header().Set("Content-Type", "text/event-stream")
				for i := range 3 {
					fmt.Fprintf(w, "event: stdout\ndata: {\"text\":\"%d\\n\"}\n\n", i)
					w.(http.Flusher).Flush()
				}
				io.WriteString(w, "event: result\ndata: {\"success\":true,\"output\":\"0\\n1\\n2\\n\",\"execution_id\":\"exec-1\",\"execution_time_ms\":12}\n\n")
				return
			}
			io.WriteString(w, `{"success":true,"output":"2\n","error":null,"data":{"execution_count":1,"output":{"text":"","images":[]}},"execution_id":"exec-1","execution_time_ms":4}`)
		case "GET /v1/sandboxes/sandbox-missing":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"code":"not_found","message":"Sandbox not found: sandbox-missing","request_id":"req-1"}}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"detail":"Not Found"}`)
		}
	}))
}

func Example() {
	bay := fakeBay()
	defer bay.Close()
	ctx := context.Background()

	c, err := shipyard.New(bay.URL, "sk-my-key")
	if err != nil {
		log.Fatal(err)
	}
	sb, err := c.CreateSandbox(ctx, shipyard.CreateSandboxRequest{Profile: "python-default"})
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.ExecPython(ctx, sb.ID, shipyard.PythonExecRequest{Code: "print(1+1)"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sb.ID, res.Success, strings.TrimSpace(res.Output))
	// Output: sandbox-0123456789ab true 2
}

// Output is streamed as Server-Sent Events while the code runs.
func ExampleClient_StreamPython() {
	bay := fakeBay()
	defer bay.Close()
	ctx := context.Background()
	c, _ := shipyard.New(bay.URL, "sk-my-key")

	s, err := c.StreamPython(ctx, "sandbox-0123456789ab", shipyard.PythonExecRequest{
		Code: "import time\nfor i in range(3):\n    print(i)\n    time.sleep(1)",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for ev := range s.Events() {
		switch ev.Type {
		case shipyard.EventStdout:
			fmt.Print("stdout: ", ev.Text)
		case shipyard.EventResult:
			fmt.Println("done:", s.Result().ExecutionID)
		}
	}
	if err := s.Err(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// stdout: 0
	// stdout: 1
	// stdout: 2
	// done: exec-1
}

// Bay's errors are *APIError values, matched by code with errors.Is.
func ExampleAPIError() {
	bay := fakeBay()
	defer bay.Close()
	c, _ := shipyard.New(bay.URL, "sk-my-key")

	_, err := c.GetSandbox(context.Background(), "sandbox-missing")
	var ae *shipyard.APIError
	if errors.As(err, &ae) {
		fmt.Println(ae.Status, ae.Code, ae.RequestID)
	}
	fmt.Println(errors.Is(err, shipyard.ErrNotFound), errors.Is(err, shipyard.ErrConflict))
	// Output:
	// 404 not_found req-1
	// true false
}

// A background process outlives the client: start it, follow its output
// until it ends, then read its exit code.
func ExampleClient_FollowProcess() {
	ctx := context.Background()
	c, _ := shipyard.New("http://127.0.0.1:8114", os.Getenv("SHIPYARD_ACCESS_TOKEN"))
	p, err := c.StartProcess(ctx, "sandbox-0123456789ab", shipyard.StartProcessRequest{
		Command: "python3 -m http.server 8000",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	last, err := c.FollowProcess(ctx, "sandbox-0123456789ab", p.ProcessID, os.Stdout, shipyard.FollowOptions{})
	if errors.Is(err, context.DeadlineExceeded) {
		// Still serving: stop it.
		_, err = c.SignalProcess(context.Background(), "sandbox-0123456789ab", p.ProcessID, "TERM")
	}
	if err != nil {
		log.Fatal(err)
	}
	_ = last
}

// Files stream both ways: nothing is held in memory whole.
func ExampleClient_Upload() {
	ctx := context.Background()
	c, _ := shipyard.New("http://127.0.0.1:8114", os.Getenv("SHIPYARD_ACCESS_TOKEN"))
	f, err := os.Open("dataset.csv")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if _, err := c.Upload(ctx, "sandbox-0123456789ab", "data/dataset.csv", f); err != nil {
		log.Fatal(err)
	}
	out, _ := os.Create("result.csv")
	defer out.Close()
	if _, err := c.DownloadTo(ctx, "sandbox-0123456789ab", "data/result.csv", out); err != nil {
		log.Fatal(err)
	}
}

// A terminal is an io.ReadWriteCloser: keys in, screen out.
func ExampleClient_OpenTerminal() {
	ctx := context.Background()
	c, _ := shipyard.New("http://127.0.0.1:8114", os.Getenv("SHIPYARD_ACCESS_TOKEN"))
	t, err := c.OpenTerminal(ctx, "sandbox-0123456789ab", shipyard.TerminalOptions{Cols: 120, Rows: 40})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	go io.Copy(os.Stdout, t)
	io.WriteString(t, "ls -la\r")
	_ = t.Resize(100, 30)
	io.WriteString(t, "exit\r")
}
