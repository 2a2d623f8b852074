package functions

import (
	"context"
	"log/slog"
)

// lazyWith is logger.With(args...) without its cost until a record is
// logged: slog's built-in handlers format the attributes at With, and
// every invocation gets a logger (function, version, invocation, key)
// that it seldom uses.
func lazyWith(logger *slog.Logger, args ...any) *slog.Logger {
	return slog.New(&lazyHandler{base: logger.Handler(), args: args})
}

type lazyHandler struct {
	base slog.Handler
	args []any
}

func (h *lazyHandler) real() slog.Handler { return slog.New(h.base).With(h.args...).Handler() }

func (h *lazyHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.base.Enabled(ctx, l) }

func (h *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.real().Handle(ctx, r)
}

func (h *lazyHandler) WithAttrs(as []slog.Attr) slog.Handler { return h.real().WithAttrs(as) }

func (h *lazyHandler) WithGroup(name string) slog.Handler { return h.real().WithGroup(name) }
