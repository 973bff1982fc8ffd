package capability

import (
	"context"
	"time"

	"github.com/shipyard/shipyard/internal/bay/runtime"
)

// Stream asks for an execution's output as it is produced.
type Stream struct {
	// KillOnDisconnect ends the execution when the caller's context ends;
	// by default it runs to its end (or timeout) and is recorded in history
	// whether or not anyone still listens.
	KillOnDisconnect bool
	// Sink receives the stream: Open when the runtime has accepted the call
	// (errors before it are the call's error, with nothing streamed), then
	// each output event (stdout, stderr, display, exception) in order, on
	// the calling goroutine. It must not block for long: Ship's stream, and
	// so the command's output, waits for it.
	runtime.Sink
}

// context is the context the execution runs in.
func (st *Stream) context(ctx context.Context) context.Context {
	if st == nil || st.KillOnDisconnect {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// PythonStream runs code like Python, passing its output to st.On as it
// is produced.
func (s *Service) PythonStream(ctx context.Context, owner, sandboxID, code string, timeout int, meta Meta, st Stream, now time.Time) (*PythonResult, error) {
	return s.python(ctx, owner, sandboxID, code, timeout, meta, &st, now)
}

// ShellStream runs a command like Shell, passing its output to st.On as it
// is produced.
func (s *Service) ShellStream(ctx context.Context, owner, sandboxID, command string, timeout int, cwd string, meta Meta, st Stream, now time.Time) (*ShellResult, error) {
	return s.shell(ctx, owner, sandboxID, command, timeout, cwd, meta, &st, now)
}
