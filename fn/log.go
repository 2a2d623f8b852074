package fn

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// hostHandler is the slog.Handler of Logger inside twoway: each record is
// one line through the log import, "message key=value ...", its level
// mapped to the ABI's (time and level are the host's to add).
type hostHandler struct {
	out   *lineBuffer
	inner slog.Handler // a TextHandler writing into out.buf, with the attrs and groups
}

type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newHostHandler() *hostHandler {
	out := &lineBuffer{}
	inner := slog.NewTextHandler(&out.buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &hostHandler{out: out, inner: inner}
}

func (h *hostHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *hostHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	h.out.buf.Reset()
	err := h.inner.Handle(ctx, r)
	attrs := bytes.TrimRight(h.out.buf.Bytes(), "\n")
	line := r.Message
	if len(attrs) > 0 {
		if line != "" {
			line += " "
		}
		line += string(attrs)
	}
	h.out.mu.Unlock()
	current.log(abiLevel(r.Level), line)
	return err
}

func (h *hostHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &hostHandler{out: h.out, inner: h.inner.WithAttrs(attrs)}
}

func (h *hostHandler) WithGroup(name string) slog.Handler {
	return &hostHandler{out: h.out, inner: h.inner.WithGroup(name)}
}

func abiLevel(l slog.Level) Level {
	switch {
	case l < slog.LevelInfo:
		return LevelDebug
	case l < slog.LevelWarn:
		return LevelInfo
	case l < slog.LevelError:
		return LevelWarn
	}
	return LevelError
}

func slogLevel(l Level) slog.Level {
	switch l {
	case LevelDebug:
		return slog.LevelDebug
	case LevelWarn:
		return slog.LevelWarn
	case LevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}
