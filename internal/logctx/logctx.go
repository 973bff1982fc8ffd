// Package logctx carries request-scoped log fields (request id, sandbox id) in a
// context and adds them to every slog record logged with that context.
package logctx

import (
	"context"
	"log/slog"
)

type key int

const (
	requestIDKey key = iota
	sandboxIDKey
)

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	v, _ := ctx.Value(requestIDKey).(string)
	return v
}

// WithSandboxID returns ctx carrying the sandbox id.
func WithSandboxID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, sandboxIDKey, id)
}

// SandboxID returns the sandbox id in ctx, or "".
func SandboxID(ctx context.Context) string {
	v, _ := ctx.Value(sandboxIDKey).(string)
	return v
}

// Handler wraps a slog.Handler and adds request_id and sandbox_id from the context.
type Handler struct{ slog.Handler }

// Handle adds the context fields to r.
func (h Handler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if id := SandboxID(ctx); id != "" {
		r.AddAttrs(slog.String("sandbox_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the wrapper.
func (h Handler) WithAttrs(a []slog.Attr) slog.Handler { return Handler{h.Handler.WithAttrs(a)} }

// WithGroup keeps the wrapper.
func (h Handler) WithGroup(n string) slog.Handler { return Handler{h.Handler.WithGroup(n)} }
