package functions

import (
	"bytes"
	"log/slog"
	"testing"
)

// A lazy logger logs what logger.With would have, also through further
// With and WithGroup, and costs nothing for disabled levels.
func TestLazyWith(t *testing.T) {
	var want, got bytes.Buffer
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	args := []any{"function", "f", "version", 3, "invocation", "abc", "key", "k"}
	eager := slog.New(slog.NewTextHandler(&want, opts)).With(args...)
	lazy := lazyWith(slog.New(slog.NewTextHandler(&got, opts)), args...)
	for _, l := range []*slog.Logger{eager, lazy} {
		l.Debug("not logged")
		l.Info("hello", "n", 1)
		l.With("more", true).Warn("again")
		l.WithGroup("g").Error("grouped", "x", 2)
	}
	if got.String() != want.String() {
		t.Fatalf("lazy logger wrote\n%s\nwant\n%s", got.String(), want.String())
	}
}
