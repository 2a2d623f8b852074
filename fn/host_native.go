//go:build !wasip1

package fn

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Outside twoway (go build, go run, go test) the SDK runs against an
// in-memory host, so a function is also a plain Go program: state is a map
// by actor key, effects commit when an invocation succeeds (as in twoway),
// Publish logs the record, SetTimer arms a time.AfterFunc that calls the
// timer handler, Config reads TWOWAY_CONFIG_<NAME> and Log goes to
// slog.Default. Calls outside any invocation are unkeyed and their effects
// apply at once.

var current host = newMemHost()

type timerKey struct{ actor, name string }

type memTimer struct {
	t   *time.Timer
	gen uint64
}

type memHost struct {
	mu      sync.Mutex
	state   map[string][]byte
	timers  map[timerKey]memTimer
	gen     uint64
	metrics map[string]float64
	inv     *memInvocation // nil outside an invocation
}

// memInvocation holds an invocation's effects until it commits.
type memInvocation struct {
	key       string
	stateSet  bool   // state written (or deleted) by this invocation
	state     []byte // nil: deleted
	published []memRecord
	timerOps  []timerOp
}

type memRecord struct {
	topic      string
	key, value []byte
}

type timerOp struct {
	name    string
	cancel  bool
	atMs    int64
	payload []byte
}

func newMemHost() *memHost {
	return &memHost{state: map[string][]byte{}, timers: map[timerKey]memTimer{}, metrics: map[string]float64{}}
}

func clone(b []byte) []byte { return append([]byte{}, b...) }

func (h *memHost) begin(key string) {
	h.mu.Lock()
	h.inv = &memInvocation{key: key}
	h.mu.Unlock()
}

func (h *memHost) end(ok bool) {
	h.mu.Lock()
	inv := h.inv
	h.inv = nil
	if !ok || inv == nil {
		h.mu.Unlock()
		return
	}
	if inv.stateSet {
		if inv.state == nil {
			delete(h.state, inv.key)
		} else {
			h.state[inv.key] = inv.state
		}
	}
	for _, op := range inv.timerOps {
		h.applyTimer(inv.key, op)
	}
	h.mu.Unlock()
	for _, r := range inv.published {
		logPublish(r)
	}
}

func logPublish(r memRecord) {
	key := any(nil)
	if r.key != nil {
		key = string(r.key)
	}
	slog.Info("fn: publish", "topic", r.topic, "key", key, "value", string(r.value))
}

// applyTimer arms or cancels a timer; h.mu is held.
func (h *memHost) applyTimer(actor string, op timerOp) {
	k := timerKey{actor, op.name}
	if old, ok := h.timers[k]; ok {
		old.t.Stop()
		delete(h.timers, k)
	}
	if op.cancel {
		slog.Debug("fn: timer cancelled", "key", actor, "name", op.name)
		return
	}
	h.gen++
	gen := h.gen
	at := time.UnixMilli(op.atMs)
	t := Timer{Name: op.name, Due: at, Payload: op.payload}
	h.timers[k] = memTimer{gen: gen, t: time.AfterFunc(time.Until(at), func() { h.fire(k, gen, t) })}
	slog.Debug("fn: timer set", "key", actor, "name", op.name, "at", at)
}

var localIDs atomic.Uint64

func localID() string { return "local-" + strconv.FormatUint(localIDs.Add(1), 10) }

func (h *memHost) fire(k timerKey, gen uint64, t Timer) {
	h.mu.Lock()
	if cur, ok := h.timers[k]; !ok || cur.gen != gen {
		h.mu.Unlock()
		return // replaced or cancelled meanwhile
	}
	delete(h.timers, k)
	h.mu.Unlock()
	ev := &event{kind: kindTimer, key: k.actor, invocation: localID(), timer: t}
	status, _, body := invoke(ev.key, ev.invocation, ev.run)
	if status >= 400 {
		slog.Error("fn: timer handler failed", "key", k.actor, "name", t.Name, "status", status, "error", string(body))
	}
}

// actor is the current invocation, or nil (and NO_ACTOR) when there is no
// keyed one; h.mu is held.
func (h *memHost) actor() *memInvocation {
	if h.inv == nil || h.inv.key == "" {
		return nil
	}
	return h.inv
}

func (h *memHost) log(level Level, msg string) {
	slog.Default().Log(context.Background(), slogLevel(level), msg)
}

func (h *memHost) nowMs() int64 { return time.Now().UnixMilli() }

func (h *memHost) stateGet(key string) ([]byte, int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if key == "" {
		inv := h.actor()
		if inv == nil {
			return nil, codeNoActor
		}
		if inv.stateSet {
			if inv.state == nil {
				return nil, codeNotFound
			}
			return clone(inv.state), int32(len(inv.state))
		}
		key = inv.key
	}
	v, ok := h.state[key]
	if !ok {
		return nil, codeNotFound
	}
	return clone(v), int32(len(v))
}

func (h *memHost) stateSet(value []byte) int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	inv := h.actor()
	if inv == nil {
		return codeNoActor
	}
	inv.stateSet, inv.state = true, clone(value)
	return 0
}

func (h *memHost) stateDelete() int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	inv := h.actor()
	if inv == nil {
		return codeNoActor
	}
	inv.stateSet, inv.state = true, nil
	return 0
}

func (h *memHost) publish(topic string, key, value []byte) int32 {
	if topic == "" {
		return codeInvalid
	}
	r := memRecord{topic: topic, value: clone(value)}
	if key != nil {
		r.key = clone(key)
	}
	h.mu.Lock()
	if h.inv != nil {
		h.inv.published = append(h.inv.published, r)
		h.mu.Unlock()
		return 0
	}
	h.mu.Unlock()
	logPublish(r)
	return 0
}

func (h *memHost) timerSet(name string, atMs int64, payload []byte) int32 {
	if name == "" {
		return codeInvalid
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	inv := h.actor()
	if inv == nil {
		return codeNoActor
	}
	inv.timerOps = append(inv.timerOps, timerOp{name: name, atMs: atMs, payload: clone(payload)})
	return 0
}

func (h *memHost) timerCancel(name string) int32 {
	if name == "" {
		return codeInvalid
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	inv := h.actor()
	if inv == nil {
		return codeNoActor
	}
	_, exists := h.timers[timerKey{inv.key, name}]
	for _, op := range inv.timerOps {
		if op.name == name {
			exists = !op.cancel
		}
	}
	if !exists {
		return codeNotFound
	}
	inv.timerOps = append(inv.timerOps, timerOp{name: name, cancel: true})
	return 0
}

// configEnv is the environment variable holding config value name outside
// twoway: TWOWAY_CONFIG_ and the name upper-cased, every character other
// than a letter or digit replaced by _ ("offline_after":
// TWOWAY_CONFIG_OFFLINE_AFTER).
func configEnv(name string) string {
	var b strings.Builder
	b.WriteString("TWOWAY_CONFIG_")
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (h *memHost) configGet(name string) ([]byte, int32) {
	if name == "" {
		return nil, codeInvalid
	}
	v, ok := os.LookupEnv(configEnv(name))
	if !ok {
		return nil, codeNotFound
	}
	return []byte(v), int32(len(v))
}

func (h *memHost) metricAdd(name string, delta float64) int32 {
	if name == "" {
		return codeInvalid
	}
	h.mu.Lock()
	h.metrics[name] += delta
	v := h.metrics[name]
	h.mu.Unlock()
	slog.Debug("fn: counter", "name", name, "value", v)
	return 0
}

func (h *memHost) metricSet(name string, value float64) int32 {
	if name == "" {
		return codeInvalid
	}
	h.mu.Lock()
	h.metrics[name] = value
	h.mu.Unlock()
	slog.Debug("fn: gauge", "name", name, "value", value)
	return 0
}

// read has no topics to read outside twoway: every topic is unknown.
func (h *memHost) read(topic string, partition int32, offset int64, max int32) ([]byte, int32) {
	slog.Warn("fn: read: there are no topics outside twoway", "topic", topic)
	return nil, codeNotFound
}

// httpFetch sends the request with http.DefaultTransport.
func (h *memHost) httpFetch(b []byte) ([]byte, int32) {
	method, url, hdr, body, err := decodeFetch(b)
	if err != nil {
		return nil, codeInvalid
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		slog.Error("fn: http fetch", "url", url, "error", err)
		return nil, codeInvalid
	}
	if host := hdr.Get("Host"); host != "" {
		req.Host = host
		hdr.Del("Host")
	}
	req.Header = hdr
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		slog.Error("fn: http fetch", "url", url, "error", err)
		return nil, codeFailed
	}
	defer res.Body.Close()
	rbody, err := io.ReadAll(res.Body)
	if err != nil {
		slog.Error("fn: http fetch", "url", url, "error", err)
		return nil, codeFailed
	}
	out := encodeResponse(res.StatusCode, res.Header, rbody)
	return out, int32(len(out))
}

// Logger is slog.Default() outside twoway.
func Logger() *slog.Logger { return slog.Default() }

// ListenAndServe serves the HTTP handler (HandleHTTP) on addr as a plain Go
// server, each request an unkeyed invocation as in twoway (the request's
// path is the whole path: there is no /fn/{name} in front). It only runs
// outside twoway.
func ListenAndServe(addr string) error {
	slog.Info("fn: serving HTTP", "addr", addr)
	return http.ListenAndServe(addr, http.HandlerFunc(serveLocal))
}

// serveLocal runs one request through the HTTP handler as an invocation,
// buffering the response as inside twoway.
func serveLocal(w http.ResponseWriter, r *http.Request) {
	status, h, body := invoke("", localID(), func() (int, http.Header, []byte) {
		if httpHandler == nil {
			return notImplemented("HTTP")
		}
		rw := newResponseWriter(r.Method)
		httpHandler.ServeHTTP(rw, r)
		return rw.result()
	})
	for name, vs := range h {
		w.Header()[name] = vs
	}
	w.WriteHeader(status)
	w.Write(body) // an error is the client's: nobody to tell
}
