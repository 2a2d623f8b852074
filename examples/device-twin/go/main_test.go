//go:build !wasip1

package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twoway/twoway/fn"
)

// The events are encoded by hand as twoway does (docs/FUNCTIONS.md, ABI
// version 1) and run through fn.Dispatch against the SDK's in-memory host;
// its effects are observed in its log (Publish logs the record at commit,
// SetTimer logs "fn: timer set" at debug) and through fn.StateOf.

type enc struct{ b []byte }

func (e *enc) u32(v uint32)   { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *enc) i64(v int64)    { e.b = binary.LittleEndian.AppendUint64(e.b, uint64(v)) }
func (e *enc) bytes(p []byte) { e.u32(uint32(len(p))); e.b = append(e.b, p...) }
func (e *enc) str(s string)   { e.bytes([]byte(s)) }

func header(kind uint32, key string) *enc {
	e := &enc{}
	e.u32(1)
	e.u32(kind)
	e.str(key)
	e.str("test-invocation")
	return e
}

func recordEvent(device string, offset int64, value string) []byte {
	e := header(2, device)
	e.str("telemetry")
	e.u32(0)
	e.i64(offset)
	e.i64(time.Now().UnixMilli())
	e.bytes([]byte(device))
	e.bytes([]byte(value))
	e.u32(0)
	return e.b
}

func timerEvent(device string) []byte {
	e := header(3, device)
	e.str("offline")
	e.i64(time.Now().UnixMilli())
	e.bytes(nil)
	return e.b
}

func httpEvent(method, path string) []byte {
	e := header(1, "")
	e.str(method)
	e.str(path)
	e.str("")
	e.u32(0)
	e.bytes(nil)
	return e.b
}

type response struct {
	status int
	header map[string]string
	body   string
}

func decode(t *testing.T, b []byte) response {
	t.Helper()
	u32 := func() uint32 {
		if len(b) < 4 {
			t.Fatalf("short response")
		}
		v := binary.LittleEndian.Uint32(b)
		b = b[4:]
		return v
	}
	str := func() string {
		n := u32()
		s := string(b[:n])
		b = b[n:]
		return s
	}
	r := response{status: int(u32()), header: map[string]string{}}
	for range u32() {
		name := str()
		r.header[name] = str()
	}
	r.body = str()
	return r
}

// effects collects what the in-memory host logs.
type effects struct {
	mu        sync.Mutex
	published []string // "topic key value"
	timers    []timerSet
}

type timerSet struct {
	key, name string
	at        time.Time
}

func (e *effects) Enabled(context.Context, slog.Level) bool { return true }
func (e *effects) WithAttrs([]slog.Attr) slog.Handler       { return e }
func (e *effects) WithGroup(string) slog.Handler            { return e }
func (e *effects) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]slog.Value{}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
	e.mu.Lock()
	defer e.mu.Unlock()
	switch r.Message {
	case "fn: publish":
		e.published = append(e.published, attrs["topic"].String()+" "+attrs["key"].String()+" "+attrs["value"].String())
	case "fn: timer set":
		e.timers = append(e.timers, timerSet{attrs["key"].String(), attrs["name"].String(), attrs["at"].Time()})
	}
	return nil
}

func (e *effects) take() ([]string, []timerSet) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, tm := e.published, e.timers
	e.published, e.timers = nil, nil
	return p, tm
}

func watch(t *testing.T) *effects {
	e := &effects{}
	old := slog.Default()
	slog.SetDefault(slog.New(e))
	t.Cleanup(func() { slog.SetDefault(old) })
	return e
}

func jsonEqual(t *testing.T, what, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: %q is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: %s, want %s", what, got, want)
	}
}

// alert splits a published "alerts KEY VALUE" and checks its topic and key.
func alert(t *testing.T, published, device string) string {
	t.Helper()
	topic, rest, _ := strings.Cut(published, " ")
	key, value, _ := strings.Cut(rest, " ")
	if topic != "alerts" || key != device {
		t.Errorf("published %q, want to alerts with key %s", published, device)
	}
	return value
}

var runs = map[string]int{}

// device is name, then name-2, name-3 ... when the test runs again in the
// same process (go test -count): the in-memory state persists.
func device(name string) string {
	runs[name]++
	if runs[name] == 1 {
		return name
	}
	return fmt.Sprintf("%s-%d", name, runs[name])
}

func TestTelemetry(t *testing.T) {
	fx := watch(t)
	d1 := device("d1")
	before := time.Now()
	r := decode(t, fn.Dispatch(recordEvent(d1, 7, `{"temp": 85}`)))
	if r.status != 200 {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	state, found, err := fn.StateOf(d1)
	if !found || err != nil {
		t.Fatalf("state: %v %v", found, err)
	}
	jsonEqual(t, "state", string(state), `{"count":1,"min":85,"max":85,"last":85}`)
	published, timers := fx.take()
	if len(published) != 1 {
		t.Fatalf("published %q", published)
	}
	jsonEqual(t, "alert", alert(t, published[0], d1), `{"device":"`+d1+`","temp":85,"offset":7}`)
	if len(timers) != 1 || timers[0].key != d1 || timers[0].name != "offline" ||
		timers[0].at.Before(before.Add(5*time.Minute-time.Second)) || timers[0].at.After(time.Now().Add(5*time.Minute)) {
		t.Errorf("timers %+v, want offline at now+5m", timers)
	}

	// Below the threshold: no alert; the twin and the timer are updated.
	r = decode(t, fn.Dispatch(recordEvent(d1, 8, `{"temp": 20}`)))
	if r.status != 200 {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	state, _, _ = fn.StateOf(d1)
	jsonEqual(t, "state", string(state), `{"count":2,"min":20,"max":85,"last":20}`)
	published, timers = fx.take()
	if len(published) != 0 || len(timers) != 1 {
		t.Errorf("published %q timers %+v", published, timers)
	}
	r = decode(t, fn.Dispatch(recordEvent(d1, 9, `{"temp": 90.5}`)))
	state, _, _ = fn.StateOf(d1)
	jsonEqual(t, "state", string(state), `{"count":3,"min":20,"max":90.5,"last":90.5}`)
	published, _ = fx.take()
	if r.status != 200 || len(published) != 1 {
		t.Fatalf("status %d published %q", r.status, published)
	}
	jsonEqual(t, "alert", alert(t, published[0], d1), `{"device":"`+d1+`","temp":90.5,"offset":9}`)
}

func TestBadTelemetry(t *testing.T) {
	fx := watch(t)
	bad := device("bad")
	for _, v := range []string{`{"temp": "hot"}`, `{"tmp": 1}`, `{"temp": null}`, `[85]`, `85`, `null`, `not json`, ``} {
		r := decode(t, fn.Dispatch(recordEvent(bad, 1, v)))
		if r.status != 400 || r.body == "" {
			t.Errorf("value %q: status %d %q, want 400 with a message", v, r.status, r.body)
		}
	}
	if _, found, _ := fn.StateOf(bad); found {
		t.Error("a bad record changed the state")
	}
	if published, timers := fx.take(); len(published)+len(timers) != 0 {
		t.Errorf("a bad record had effects: %q %+v", published, timers)
	}
}

func TestConfig(t *testing.T) {
	fx := watch(t)
	t.Setenv("TWOWAY_CONFIG_THRESHOLD", "10")
	t.Setenv("TWOWAY_CONFIG_OFFLINE_AFTER", "1h30m")
	start := time.Now()
	decode(t, fn.Dispatch(recordEvent("cfg", 3, `{"temp": 20}`)))
	published, timers := fx.take()
	if len(published) != 1 || len(timers) != 1 {
		t.Fatalf("published %q timers %+v", published, timers)
	}
	if d := timers[0].at.Sub(start); d < 90*time.Minute-time.Second || d > 90*time.Minute+time.Second {
		t.Errorf("timer in %v, want 1h30m", d)
	}
}

func TestOfflineTimer(t *testing.T) {
	fx := watch(t)
	r := decode(t, fn.Dispatch(timerEvent("d9")))
	published, _ := fx.take()
	if r.status != 200 || len(published) != 1 {
		t.Fatalf("status %d published %q", r.status, published)
	}
	jsonEqual(t, "alert", alert(t, published[0], "d9"), `{"device":"d9","status":"offline"}`)
	if _, found, _ := fn.StateOf("d9"); found {
		t.Error("the timer created state")
	}

	// The in-memory host fires timers too: a record arms offline, which
	// publishes when it fires.
	t.Setenv("TWOWAY_CONFIG_OFFLINE_AFTER", "20ms")
	t.Setenv("TWOWAY_CONFIG_THRESHOLD", "1000")
	decode(t, fn.Dispatch(recordEvent("d10", 1, `{"temp": 1}`)))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if published, _ := fx.take(); len(published) > 0 {
			jsonEqual(t, "alert", alert(t, published[0], "d10"), `{"device":"d10","status":"offline"}`)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the offline timer did not fire")
}

func TestHTTP(t *testing.T) {
	watch(t)
	h1 := device("h1")
	decode(t, fn.Dispatch(recordEvent(h1, 1, `{"temp": 21.5}`)))
	r := decode(t, fn.Dispatch(httpEvent("GET", "/devices/"+h1)))
	if r.status != 200 || r.header["Content-Type"] != "application/json" {
		t.Errorf("GET h1: %+v", r)
	}
	jsonEqual(t, "GET h1", r.body, `{"count":1,"min":21.5,"max":21.5,"last":21.5}`)

	for _, c := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/devices/nope", 404, `{"error":"no device nope"}`},
		{"GET", "/", 404, `{"error":"not found"}`},
		{"GET", "/devices", 404, `{"error":"not found"}`},
		{"GET", "/devices/h1/more", 404, `{"error":"not found"}`},
		{"POST", "/devices/h1", 405, `{"error":"method not allowed"}`},
		{"DELETE", "/devices/h1", 405, `{"error":"method not allowed"}`},
	} {
		r := decode(t, fn.Dispatch(httpEvent(c.method, c.path)))
		if r.status != c.status || r.header["Content-Type"] != "application/json" {
			t.Errorf("%s %s: %+v", c.method, c.path, r)
			continue
		}
		jsonEqual(t, c.method+" "+c.path, r.body, c.body)
	}
}
