package process

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestLogRead(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		writes    []string
		offset    int64
		max       int
		ended     bool
		data      string
		from      int64
		next      int64
		truncated bool
	}{
		{name: "all", size: 16, writes: []string{"hello ", "world"}, max: 100, data: "hello world", next: 11},
		{name: "from an offset", size: 16, writes: []string{"hello ", "world"}, offset: 6, max: 100, data: "world", from: 6, next: 11},
		{name: "capped by max", size: 16, writes: []string{"hello world"}, offset: 2, max: 4, data: "llo ", from: 2, next: 6},
		{name: "past the end", size: 16, writes: []string{"abc"}, offset: 10, max: 100, data: "", from: 3, next: 3},
		{name: "dropped bytes", size: 8, writes: []string{"0123456789", "abcd"}, offset: 0, max: 100, data: "6789abcd", from: 6, next: 14, truncated: true},
		{name: "wrapped, read inside", size: 8, writes: []string{"01234", "56789", "ab"}, offset: 7, max: 4, data: "789a", from: 7, next: 11},
		{name: "one write larger than the log", size: 4, writes: []string{"abcdefgh"}, max: 100, data: "efgh", from: 4, next: 8, truncated: true},
		{name: "incomplete rune waits", size: 16, writes: []string{"a\xe2\x82"}, max: 100, data: "a", next: 1},
		{name: "incomplete rune at the end of a finished stream is read", size: 16, writes: []string{"a\xe2\x82"}, max: 100, ended: true, data: "a\xe2\x82", next: 3},
		{name: "cut by max inside a rune", size: 16, writes: []string{"ab€c"}, max: 4, ended: true, data: "ab", next: 2},
		{name: "truncation inside a rune skips its rest", size: 5, writes: []string{"x€€"}, max: 100, ended: true, data: "€", from: 4, next: 7, truncated: true},
		{name: "max below a rune still progresses", size: 16, writes: []string{"€€"}, max: 1, data: "€", next: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLog(tt.size)
			for _, w := range tt.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("write: %d %v", n, err)
				}
			}
			c := l.Read(tt.offset, tt.max, tt.ended)
			if string(c.Data) != tt.data || c.Offset != tt.from || c.Next != tt.next || c.Truncated != tt.truncated {
				t.Fatalf("got %q from %d next %d truncated %v; want %q from %d next %d truncated %v",
					c.Data, c.Offset, c.Next, c.Truncated, tt.data, tt.from, tt.next, tt.truncated)
			}
		})
	}
}

// TestLogReadsReassemble: whatever the write and read sizes, reading from
// each next offset returns the stream exactly, once.
func TestLogReadsReassemble(t *testing.T) {
	var want bytes.Buffer
	l := NewLog(1 << 20)
	for i := range 5000 {
		s := strings.Repeat("é€x", i%7) + "\n"
		want.WriteString(s)
		_, _ = l.Write([]byte(s))
	}
	var got bytes.Buffer
	for off := int64(0); ; {
		c := l.Read(off, 1000, true)
		if len(c.Data) == 0 {
			break
		}
		got.Write(c.Data)
		off = c.Next
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("reassembled %d bytes, want %d", got.Len(), want.Len())
	}
}

func TestLogConcurrent(t *testing.T) {
	l := NewLog(64)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				_, _ = l.Write([]byte("0123456789"))
				l.Read(0, 50, false)
			}
		}()
	}
	wg.Wait()
	if c := l.Read(0, 100, true); c.Written != 40000 || len(c.Data) != 64 || !c.Truncated {
		t.Fatalf("%+v", c)
	}
}

func TestReadOutputMergesStreams(t *testing.T) {
	r, _ := newRunner(t, nil)
	info, err := r.Start(context.Background(), Spec{Command: "echo out; sleep 0.2; echo err >&2; sleep 0.2; echo out2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Wait(context.Background(), info.ProcessID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	in, c, err := r.ReadOutput(info.ProcessID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Data) != "out\nerr\nout2\n" || c.Next != 13 || in.Status != StatusCompleted {
		t.Fatalf("%q next %d status %s", c.Data, c.Next, in.Status)
	}
	if _, c, _ = r.ReadOutput(info.ProcessID, 4, 1000); string(c.Data) != "err\nout2\n" {
		t.Fatalf("from 4: %q", c.Data)
	}
	if _, _, err := r.ReadOutput("nope", 0, 10); err == nil {
		t.Fatal("unknown process read")
	}
}

func TestSignal(t *testing.T) {
	r, _ := newRunner(t, nil)
	ctx := context.Background()
	tests := []struct {
		name    string
		command string
		signals []string
		status  string
	}{
		{name: "TERM kills", command: "sleep 30", signals: []string{"TERM"}, status: StatusKilled},
		{name: "handled signal leaves it running", command: "trap 'echo got' USR1; while true; do sleep 0.05; done", signals: []string{"sigusr1"}, status: StatusRunning},
		{name: "INT to the whole group", command: "sleep 30 & sleep 30; wait", signals: []string{"INT"}, status: StatusKilled},
		{name: "KILL", command: "trap '' TERM; sleep 30", signals: []string{"KILL"}, status: StatusKilled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := r.Start(ctx, Spec{Command: tt.command})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // let bash set its traps
			for _, s := range tt.signals {
				sig, err := ParseSignal(s)
				if err != nil {
					t.Fatal(err)
				}
				if info, err = r.Signal(ctx, info.ProcessID, sig); err != nil {
					t.Fatal(err)
				}
			}
			if tt.status != StatusRunning {
				info, _, _ = r.Wait(ctx, info.ProcessID, 5*time.Second)
			}
			if info.Status != tt.status {
				t.Fatalf("status %s, want %s (%+v)", info.Status, tt.status, info)
			}
			if err := r.Remove(ctx, info.ProcessID); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := ParseSignal("STOP"); err == nil {
		t.Fatal("STOP accepted")
	}
	if _, err := r.Signal(ctx, "nope", syscall.SIGTERM); err == nil {
		t.Fatal("unknown process signalled")
	}
}

func TestRemove(t *testing.T) {
	r, dir := newRunner(t, nil)
	ctx := context.Background()
	info, err := r.Start(ctx, Spec{Command: "(sleep 30; touch " + dir + "/child-survived) & sleep 30"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, info.ProcessID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Get(info.ProcessID); err == nil {
		t.Fatal("removed process still listed")
	}
	if r.Running() != 0 || len(r.List()) != 0 {
		t.Fatalf("running %d, listed %d", r.Running(), len(r.List()))
	}
	// The group's orphans are reaped by whoever adopts them: allow a moment.
	for deadline := time.Now().Add(3 * time.Second); syscall.Kill(-info.Pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("process group still alive after remove")
		}
	}
	if err := r.Remove(ctx, info.ProcessID); err == nil {
		t.Fatal("second remove succeeded")
	}
	// A finished one is forgotten too, and the finished list stays consistent.
	done, _ := r.Start(ctx, Spec{Command: "true"})
	_, _, _ = r.Wait(ctx, done.ProcessID, 5*time.Second)
	if err := r.Remove(ctx, done.ProcessID); err != nil {
		t.Fatal(err)
	}
	if r.Running() != 0 || len(r.finished) != 0 {
		t.Fatalf("running %d, finished %v", r.Running(), r.finished)
	}
}

func TestRunOnOutputStreamsAsProduced(t *testing.T) {
	r, _ := newRunner(t, nil)
	type chunk struct {
		stream, text string
		at           time.Duration
	}
	var mu sync.Mutex
	var chunks []chunk
	start := time.Now()
	res, err := r.Run(context.Background(), Spec{Command: "echo one; sleep 0.5; echo two >&2; sleep 0.5; echo three",
		OnOutput: func(stream string, p []byte) {
			mu.Lock()
			chunks = append(chunks, chunk{stream, string(p), time.Since(start)})
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	if res.Stdout != "one\nthree" || res.Stderr != "two" {
		t.Fatalf("result %+v", res)
	}
	want := []chunk{{"stdout", "one\n", 0}, {"stderr", "two\n", 0}, {"stdout", "three\n", 0}}
	if len(chunks) != len(want) {
		t.Fatalf("chunks %+v", chunks)
	}
	for i, w := range want {
		if chunks[i].stream != w.stream || chunks[i].text != w.text {
			t.Fatalf("chunk %d: %+v", i, chunks[i])
		}
	}
	if chunks[0].at > total-800*time.Millisecond {
		t.Fatalf("first chunk at %v of %v: not streamed", chunks[0].at, total)
	}
}
