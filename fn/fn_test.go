package fn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// recHost is a host that records the SDK's calls.
type recHost struct {
	calls  []string
	state  map[string][]byte // by actor key; "" is the own actor
	config map[string]string
	codes  map[string]int32 // a forced code by operation name
	now    int64
	fetch  func(req []byte) ([]byte, int32)
}

func newRecHost(t *testing.T) *recHost {
	h := &recHost{state: map[string][]byte{}, config: map[string]string{}, codes: map[string]int32{}, now: 1_000_000}
	old := current
	current = h
	t.Cleanup(func() { current = old })
	return h
}

func (h *recHost) rec(op string, format string, args ...any) int32 {
	h.calls = append(h.calls, op+" "+fmt.Sprintf(format, args...))
	return h.codes[op]
}

func nullable(b []byte) string {
	if b == nil {
		return "<null>"
	}
	return fmt.Sprintf("%q", b)
}

func (h *recHost) begin(key string)            { h.rec("begin", "%q", key) }
func (h *recHost) end(ok bool)                 { h.rec("end", "%v", ok) }
func (h *recHost) log(level Level, msg string) { h.rec("log", "%d %s", level, msg) }
func (h *recHost) nowMs() int64                { h.rec("now_ms", ""); return h.now }
func (h *recHost) stateGet(key string) ([]byte, int32) {
	if c := h.rec("state_get", "%q", key); c < 0 {
		return nil, c
	}
	v, ok := h.state[key]
	if !ok {
		return nil, codeNotFound
	}
	return v, int32(len(v))
}
func (h *recHost) stateSet(v []byte) int32 {
	c := h.rec("state_set", "%q", v)
	if c == 0 {
		h.state[""] = v
	}
	return c
}
func (h *recHost) stateDelete() int32 { return h.rec("state_delete", "") }
func (h *recHost) publish(topic string, key, value []byte) int32 {
	return h.rec("publish", "%s %s %q", topic, nullable(key), value)
}
func (h *recHost) timerSet(name string, atMs int64, payload []byte) int32 {
	return h.rec("timer_set", "%s %d %q", name, atMs, payload)
}
func (h *recHost) timerCancel(name string) int32 { return h.rec("timer_cancel", "%s", name) }
func (h *recHost) configGet(name string) ([]byte, int32) {
	if c := h.rec("config_get", "%s", name); c < 0 {
		return nil, c
	}
	v, ok := h.config[name]
	if !ok {
		return nil, codeNotFound
	}
	return []byte(v), int32(len(v))
}
func (h *recHost) metricAdd(name string, d float64) int32 {
	return h.rec("metric_add", "%s %g", name, d)
}
func (h *recHost) metricSet(name string, v float64) int32 {
	return h.rec("metric_set", "%s %g", name, v)
}
func (h *recHost) read(topic string, p int32, off int64, max int32) ([]byte, int32) {
	return nil, h.rec("read", "%s %d %d %d", topic, p, off, max)
}
func (h *recHost) httpFetch(req []byte) ([]byte, int32) {
	if c := h.rec("http_fetch", "%d bytes", len(req)); c < 0 {
		return nil, c
	}
	return h.fetch(req)
}

// withHandlers clears the handlers for a test and restores them after.
func withHandlers(t *testing.T) {
	a, b, c, d := httpHandler, recordHandler, timerHandler, invokeHandler
	httpHandler, recordHandler, timerHandler, invokeHandler = nil, nil, nil, nil
	t.Cleanup(func() { httpHandler, recordHandler, timerHandler, invokeHandler = a, b, c, d })
}

func decodeTestResponse(t *testing.T, b []byte) (int, http.Header, []byte) {
	t.Helper()
	status, h, body, err := decodeResponse(b)
	if err != nil {
		t.Fatalf("response %v: %v", b, err)
	}
	return status, h, body
}

func dispatch(t *testing.T, ev *event) (int, http.Header, string) {
	t.Helper()
	status, h, body := decodeTestResponse(t, Dispatch(encodeEvent(ev)))
	return status, h, string(body)
}

func checkCalls(t *testing.T, h *recHost, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(h.calls, want) {
		t.Errorf("host calls\n got %q\nwant %q", h.calls, want)
	}
	h.calls = nil
}

func TestHTTP(t *testing.T) {
	withHandlers(t)
	h := newRecHost(t)
	var got *http.Request
	var gotBody string
	HandleHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Add("X-Out", "1")
		w.Header().Add("X-Out", "2")
		w.Header().Set("Content-Type", "text/csv")
		w.WriteHeader(http.StatusCreated)
		w.Header().Set("X-Late", "ignored") // after WriteHeader, as in net/http
		fmt.Fprint(w, "a,b")
	}))
	status, hdr, body := dispatch(t, &event{kind: kindHTTP, invocation: "i1", method: "PUT", path: "/devices/d%201",
		query: "x=1&y=a%20b", body: []byte("in"),
		headers: []field{{"Host", "example.com"}, {"Accept", "a"}, {"Accept", "b"}}})
	if status != 201 || body != "a,b" || !reflect.DeepEqual(hdr, http.Header{"X-Out": {"1", "2"}, "Content-Type": {"text/csv"}}) {
		t.Errorf("response %d %v %q", status, hdr, body)
	}
	if got.Method != "PUT" || got.URL.Path != "/devices/d%201" || got.URL.RawQuery != "x=1&y=a%20b" ||
		got.URL.Query().Get("y") != "a b" || got.Host != "example.com" || got.Header.Get("Host") != "" ||
		!reflect.DeepEqual(got.Header["Accept"], []string{"a", "b"}) || gotBody != "in" || got.ContentLength != 2 ||
		got.RequestURI != "/devices/d%25201?x=1&y=a%20b" || got.Context() == nil {
		t.Errorf("request %+v %q", got, gotBody)
	}
	checkCalls(t, h, `begin ""`, "end true")

	// A ServeMux routes on the path and fills PathValue.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /devices/{id}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "id=", r.PathValue("id")) })
	HandleHTTP(mux)
	if status, hdr, body := dispatch(t, &event{kind: kindHTTP, method: "GET", path: "/devices/d7"}); status != 200 || body != "id=d7" ||
		hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("mux: %d %v %q", status, hdr, body)
	}
	if status, hdr, _ := dispatch(t, &event{kind: kindHTTP, method: "DELETE", path: "/devices/d7"}); status != 405 || hdr.Get("Allow") == "" {
		t.Errorf("mux 405: %d %v", status, hdr)
	}
	if status, _, _ := dispatch(t, &event{kind: kindHTTP, method: "GET", path: "/other"}); status != 404 {
		t.Errorf("mux 404: %d", status)
	}
	checkCalls(t, h, `begin ""`, "end true", `begin ""`, "end false", `begin ""`, "end false")
}

func TestHTTPResponseDefaults(t *testing.T) {
	withHandlers(t)
	newRecHost(t)
	for _, c := range []struct {
		name, method string
		h            http.HandlerFunc
		status       int
		header       http.Header
		body         string
	}{
		{"nothing", "GET", func(w http.ResponseWriter, r *http.Request) {}, 200, http.Header{}, ""},
		{"sniffed", "GET", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }, 200,
			http.Header{"Content-Type": {"text/html; charset=utf-8"}}, "<html>"},
		{"no sniff when unset on purpose", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			w.Write([]byte("x"))
		}, 200, http.Header{}, "x"},
		{"head", "HEAD", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("body")) }, 200, http.Header{}, ""},
		{"1xx ignored", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(103)
			w.WriteHeader(202)
			w.WriteHeader(500)
		}, 202, http.Header{}, ""},
		{"no body on 204", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(204)
			if _, err := w.Write([]byte("x")); err != http.ErrBodyNotAllowed {
				panic(err)
			}
		}, 204, http.Header{}, ""},
		{"bad code", "GET", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(42) }, 500, http.Header{}, "panic: invalid WriteHeader code 42"},
	} {
		HandleHTTP(c.h)
		status, h, body := dispatch(t, &event{kind: kindHTTP, method: c.method, path: "/"})
		if status != c.status || body != c.body || !reflect.DeepEqual(h, c.header) {
			t.Errorf("%s: %d %#v %q, want %d %#v %q", c.name, status, h, body, c.status, c.header, c.body)
		}
	}
}

func TestHandlersAndErrors(t *testing.T) {
	withHandlers(t)
	h := newRecHost(t)
	rec := &event{kind: kindRecord, key: "d1", invocation: "r1", record: Record{Topic: "t", Offset: 7, Timestamp: time.UnixMilli(3), Key: []byte("d1"), Value: []byte("v")}}
	tim := &event{kind: kindTimer, key: "d1", invocation: "t1", timer: Timer{Name: "n", Due: time.UnixMilli(5), Payload: []byte("p")}}
	inv := &event{kind: kindInvoke, key: "k", invocation: "v1", method: "Echo", body: []byte("b")}
	for _, ev := range []*event{rec, tim, inv, {kind: kindHTTP, method: "GET", path: "/"}} {
		if status, _, body := dispatch(t, ev); status != 501 || !strings.HasPrefix(body, "fn: no ") {
			t.Errorf("kind %d without handler: %d %q", ev.kind, status, body)
		}
	}
	if status, _, body := dispatch(t, &event{kind: 77}); status != 501 || body != "unknown event kind 77" {
		t.Errorf("kind 77: %d %q", status, body)
	}
	h.calls = nil

	var result error
	var gotRecord Record
	var gotTimer Timer
	HandleRecord(func(ctx context.Context, r Record) error {
		gotRecord = r
		if Key() != "d1" || InvocationID() != "r1" {
			t.Errorf("Key %q InvocationID %q", Key(), InvocationID())
		}
		return result
	})
	HandleTimer(func(ctx context.Context, tm Timer) error { gotTimer = tm; return result })
	HandleInvoke(func(ctx context.Context, method string, body []byte) ([]byte, error) {
		return append([]byte(method+":"), body...), result
	})
	for _, c := range []struct {
		err    error
		status int
		body   string
	}{
		{nil, 200, ""},
		{errors.New("try again"), 500, "try again"},
		{Permanent(errors.New("bad input")), 400, "bad input"},
		{fmt.Errorf("wrapped: %w", Permanent(errors.New("bad"))), 400, "wrapped: bad"},
	} {
		result = c.err
		for _, ev := range []*event{rec, tim} {
			if status, _, body := dispatch(t, ev); status != c.status || body != c.body {
				t.Errorf("kind %d, %v: %d %q", ev.kind, c.err, status, body)
			}
		}
		wantBody := c.body
		if c.err == nil {
			wantBody = "Echo:b"
		}
		if status, _, body := dispatch(t, inv); status != c.status || body != wantBody {
			t.Errorf("invoke, %v: %d %q", c.err, status, body)
		}
		ok := c.status < 400
		checkCalls(t, h, `begin "d1"`, fmt.Sprint("end ", ok), `begin "d1"`, fmt.Sprint("end ", ok), `begin "k"`, fmt.Sprint("end ", ok))
	}
	if !reflect.DeepEqual(gotRecord, rec.record) || !reflect.DeepEqual(gotTimer, tim.timer) {
		t.Errorf("record %+v timer %+v", gotRecord, gotTimer)
	}
	if Key() != "" || InvocationID() != "" {
		t.Errorf("after the invocation: Key %q InvocationID %q", Key(), InvocationID())
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
}

func TestPanic(t *testing.T) {
	withHandlers(t)
	h := newRecHost(t)
	HandleRecord(func(ctx context.Context, r Record) error {
		if string(r.Value) == "panic" {
			panic("boom")
		}
		return nil
	})
	HandleHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Partial", "1")
		w.Write([]byte("partial"))
		panic(errors.New("handler broke"))
	}))
	if status, _, body := dispatch(t, &event{kind: kindRecord, key: "d", record: Record{Value: []byte("panic")}}); status != 500 || body != "panic: boom" {
		t.Errorf("record panic: %d %q", status, body)
	}
	if status, hdr, body := dispatch(t, &event{kind: kindHTTP, method: "GET", path: "/"}); status != 500 || body != "panic: handler broke" || len(hdr) != 0 {
		t.Errorf("http panic: %d %v %q", status, hdr, body)
	}
	if status, _, _ := dispatch(t, &event{kind: kindRecord, key: "d", record: Record{Value: []byte("fine")}}); status != 200 {
		t.Errorf("after a panic: %d", status)
	}
	checkCalls(t, h, `begin "d"`, "end false", `begin ""`, "end false", `begin "d"`, "end true")
}

func TestEffects(t *testing.T) {
	withHandlers(t)
	h := newRecHost(t)
	h.state["other"] = []byte("theirs")
	h.config["threshold"] = "90"
	HandleInvoke(func(ctx context.Context, method string, body []byte) ([]byte, error) {
		if v, found, err := State(); v != nil || found || err != nil {
			t.Errorf("State before: %q %v %v", v, found, err)
		}
		must(t, SetState([]byte("mine")))
		if v, found, err := State(); string(v) != "mine" || !found || err != nil {
			t.Errorf("State after: %q %v %v", v, found, err)
		}
		if v, found, err := StateOf("other"); string(v) != "theirs" || !found || err != nil {
			t.Errorf("StateOf: %q %v %v", v, found, err)
		}
		must(t, DeleteState())
		must(t, Publish("alerts", []byte("d1"), []byte("v")))
		must(t, Publish("alerts", nil, []byte("v")))
		must(t, Publish("alerts", []byte{}, nil))
		must(t, SetTimer("offline", Now().Add(5*time.Minute), nil))
		must(t, CancelTimer("offline"))
		if v, ok := Config("threshold"); v != "90" || !ok {
			t.Errorf("Config: %q %v", v, ok)
		}
		if v, ok := Config("unset"); v != "" || ok {
			t.Errorf("Config unset: %q %v", v, ok)
		}
		Log(LevelWarn, "careful")
		Counter("hits").Add(2)
		Gauge("temp").Set(21.5)
		return nil, nil
	})
	if status, _, body := dispatch(t, &event{kind: kindInvoke, key: "d1", method: "m"}); status != 200 || body != "" {
		t.Fatalf("%d %q", status, body)
	}
	checkCalls(t, h, `begin "d1"`,
		`state_get ""`, `state_set "mine"`, `state_get ""`, `state_get "other"`, "state_delete ",
		`publish alerts "d1" "v"`, `publish alerts <null> "v"`, `publish alerts "" ""`,
		"now_ms ", `timer_set offline 1300000 ""`, "timer_cancel offline",
		"config_get threshold", "config_get unset", "log 2 careful", "metric_add hits 2", "metric_set temp 21.5",
		"end true")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Error(err)
	}
}

func TestEffectErrors(t *testing.T) {
	h := newRecHost(t)
	for code, want := range map[int32]error{
		codeNotFound: ErrNotFound, codeDenied: ErrDenied, codeInvalid: ErrInvalid,
		codeTooLarge: ErrTooLarge, codeNoActor: ErrNoActor, codeFailed: ErrFailed,
	} {
		for _, op := range []string{"state_set", "state_delete", "publish", "timer_set", "timer_cancel"} {
			h.codes[op] = code
		}
		for _, err := range []error{SetState(nil), DeleteState(), Publish("alerts", nil, nil), SetTimer("t", Now(), nil), CancelTimer("t")} {
			if !errors.Is(err, want) {
				t.Errorf("code %d: %v, want %v", code, err, want)
			}
		}
	}
	h.codes["publish"] = codeDenied
	if err := Publish("secret", nil, nil); err.Error() != `fn: publish to "secret": denied: the deployment does not grant it` {
		t.Errorf("message: %v", err)
	}
	h.codes["state_get"] = codeNoActor
	if _, _, err := State(); !errors.Is(err, ErrNoActor) || err.Error() != "fn: get state: needs an actor: the invocation is unkeyed" {
		t.Errorf("State: %v", err)
	}
	h.codes["state_get"] = codeNotFound
	if v, found, err := StateOf("x"); v != nil || found || err != nil {
		t.Errorf("StateOf not found: %q %v %v", v, found, err)
	}
	h.codes["config_get"] = codeDenied
	if v, ok := Config("x"); ok || v != "" {
		t.Errorf("Config denied: %q %v", v, ok)
	}
	h.codes["state_set"] = -42
	err := SetState(nil)
	if err.Error() != "fn: set state: host error -42" || errors.Unwrap(err) != nil {
		t.Errorf("unknown code: %v", err)
	}
}

func TestLogger(t *testing.T) {
	h := newRecHost(t)
	l := slog.New(newHostHandler()).With("device", "d1").WithGroup("g")
	l.Debug("quiet")
	l.Info("reading", "temp", 85.5, "note", "two words")
	l.Warn("")
	l.Error("broken", slog.Group("x", "y", 1))
	checkCalls(t, h,
		`log 0 quiet device=d1`,
		`log 1 reading device=d1 g.temp=85.5 g.note="two words"`,
		`log 2 device=d1`,
		`log 3 broken device=d1 g.x.y=1`)
}

func TestTransport(t *testing.T) {
	h := newRecHost(t)
	h.fetch = func(req []byte) ([]byte, int32) {
		method, url, hdr, body, err := decodeFetch(req)
		if err != nil || method != "POST" || url != "http://api.example.com/x?q=1" || string(body) != "ping" ||
			hdr.Get("Content-Type") != "text/plain" || hdr.Get("Host") != "" {
			t.Errorf("request %q %q %v %q %v", method, url, hdr, body, err)
		}
		out := encodeResponse(0, http.Header{"X-Reply": {"yes"}}, []byte("pong"))
		return out, int32(len(out))
	}
	c := &http.Client{Transport: Transport}
	res, err := c.Post("http://api.example.com/x?q=1", "text/plain", strings.NewReader("ping"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Status != "200 OK" || res.Header.Get("X-Reply") != "yes" || string(b) != "pong" {
		t.Errorf("response %+v %q", res, b)
	}
	checkCalls(t, h, fmt.Sprintf("http_fetch %d bytes", len(encodeFetch("POST", "http://api.example.com/x?q=1",
		http.Header{"Content-Type": {"text/plain"}}, []byte("ping")))))

	h.codes["http_fetch"] = codeDenied
	if _, err := c.Get("http://other.example.com/"); !errors.Is(err, ErrDenied) {
		t.Errorf("denied: %v", err)
	}
	h.codes["http_fetch"] = 0
	h.fetch = func([]byte) ([]byte, int32) { return []byte{1, 2}, 2 }
	if _, err := c.Get("http://api.example.com/"); err == nil || !strings.Contains(err.Error(), "malformed response") {
		t.Errorf("malformed: %v", err)
	}
	if b := encodeFetch("GET", "u", nil, nil); !bytes.Equal(b, []byte{3, 0, 0, 0, 'G', 'E', 'T', 1, 0, 0, 0, 'u', 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("encodeFetch %v", b)
	}
}
