package console

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LogLen is how many log lines the tail keeps per function.
const LogLen = 500

// maxLogFunctions bounds the functions the tail keeps lines of; lines of
// functions beyond it are not kept (deleted functions' rings are dropped
// first).
const maxLogFunctions = 1000

// LogLine is one line of a function's log: what the guest logged (source
// "guest") or what the runtime said about one of its invocations.
type LogLine struct {
	Seq     uint64            `json:"seq"`
	TimeMs  int64             `json:"time_ms"`
	Level   string            `json:"level"`
	Message string            `json:"message"`
	Source  string            `json:"source"`
	Attrs   map[string]string `json:"attrs,omitempty"`
}

// LogTail keeps the newest lines this agent logged for each function, for
// the console's live tail. It sees the lines through Handler, a slog
// handler put in front of the agent's, which passes every record on.
type LogTail struct {
	mu   sync.Mutex
	seq  uint64
	fns  map[string]*logRing
	live func(string) bool // nil: every function is kept
}

type logRing struct {
	lines [LogLen]LogLine
	next  int
	n     int
}

// NewLogTail returns an empty tail.
func NewLogTail() *LogTail { return &LogTail{fns: map[string]*logRing{}} }

// Handler wraps next: records carrying a "function" attribute are kept in
// the tail as well as handled by next.
func (t *LogTail) Handler(next slog.Handler) slog.Handler { return &tailHandler{next: next, t: t} }

func (t *LogTail) add(fn string, l LogLine) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.fns[fn]
	if r == nil {
		if len(t.fns) >= maxLogFunctions {
			t.pruneLocked()
			if len(t.fns) >= maxLogFunctions {
				return
			}
		}
		r = &logRing{}
		t.fns[fn] = r
	}
	t.seq++
	l.Seq = t.seq
	r.lines[r.next] = l
	r.next = (r.next + 1) % LogLen
	r.n = min(r.n+1, LogLen)
}

func (t *LogTail) pruneLocked() {
	if t.live == nil {
		return
	}
	for fn := range t.fns {
		if !t.live(fn) {
			delete(t.fns, fn)
		}
	}
}

// After returns the kept lines of fn newer than seq, oldest first, and the
// newest sequence number handed out (to ask from next time).
func (t *LogTail) After(fn string, seq uint64) ([]LogLine, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []LogLine{}
	if r := t.fns[fn]; r != nil {
		first := (r.next - r.n + LogLen) % LogLen
		for i := 0; i < r.n; i++ {
			if l := r.lines[(first+i)%LogLen]; l.Seq > seq {
				out = append(out, l)
			}
		}
	}
	return out, t.seq
}

type tailHandler struct {
	next  slog.Handler
	t     *LogTail
	attrs []slog.Attr
	group bool // under a group, attributes are not the function's
}

func (h *tailHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *tailHandler) Handle(ctx context.Context, r slog.Record) error {
	var fn, source string
	attrs := map[string]string{}
	see := func(a slog.Attr) bool {
		switch a.Key {
		case "function":
			fn = a.Value.String()
		case "source":
			source = a.Value.String()
		case "module":
		default:
			attrs[a.Key] = a.Value.String()
		}
		return true
	}
	if !h.group {
		for _, a := range h.attrs {
			see(a)
		}
		r.Attrs(see)
	}
	if fn != "" {
		if source == "" {
			source = "runtime"
		}
		ts := r.Time
		if ts.IsZero() {
			ts = time.Now()
		}
		h.t.add(fn, LogLine{TimeMs: ts.UnixMilli(), Level: r.Level.String(), Message: r.Message, Source: source, Attrs: attrs})
	}
	return h.next.Handle(ctx, r)
}

func (h *tailHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.next = h.next.WithAttrs(as)
	if !h.group {
		n.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	}
	return &n
}

func (h *tailHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.next, n.group = h.next.WithGroup(name), true
	return &n
}
