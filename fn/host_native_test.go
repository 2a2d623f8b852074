//go:build !wasip1

package fn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// withMemHost gives a test a fresh in-memory host.
func withMemHost(t *testing.T) *memHost {
	h := newMemHost()
	old := current
	current = h
	t.Cleanup(func() { current = old })
	return h
}

// logCapture collects slog.Default's records for a test.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, r)
	c.mu.Unlock()
	return nil
}
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCapture) WithGroup(string) slog.Handler      { return c }

// lines is the records as "message k=v ...".
func (c *logCapture) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.recs {
		s := r.Message
		r.Attrs(func(a slog.Attr) bool {
			if a.Key != "at" {
				s += " " + a.String()
			}
			return true
		})
		out = append(out, s)
	}
	return out
}

func captureLog(t *testing.T) *logCapture {
	c := &logCapture{}
	old := slog.Default()
	slog.SetDefault(slog.New(c))
	t.Cleanup(func() { slog.SetDefault(old) })
	return c
}

func TestMemHostCommit(t *testing.T) {
	withHandlers(t)
	withMemHost(t)
	logs := captureLog(t)
	HandleRecord(func(ctx context.Context, r Record) error {
		old, _, err := State()
		if err != nil {
			return err
		}
		if err := SetState(append(old, r.Value...)); err != nil {
			return err
		}
		if v, _, _ := State(); string(v) != string(old)+string(r.Value) {
			t.Errorf("own write not seen: %q", v)
		}
		if v, _, _ := StateOf(Key()); string(v) != string(old) {
			t.Errorf("StateOf own key sees the uncommitted write: %q", v)
		}
		if err := Publish("out", r.Key, r.Value); err != nil {
			return err
		}
		if string(r.Value) == "fail" {
			return errors.New("failed")
		}
		return nil
	})
	rec := func(key, value string) int {
		status, _, _ := dispatch(t, &event{kind: kindRecord, key: key, record: Record{Key: []byte(key), Value: []byte(value)}})
		return status
	}
	if rec("a", "1") != 200 || rec("a", "2") != 200 || rec("a", "fail") != 500 || rec("b", "x") != 200 {
		t.Fatal("statuses")
	}
	for key, want := range map[string]string{"a": "12", "b": "x"} {
		if v, found, err := StateOf(key); string(v) != want || !found || err != nil {
			t.Errorf("state %s: %q %v %v", key, v, found, err)
		}
	}
	want := []string{"fn: publish topic=out key=a value=1", "fn: publish topic=out key=a value=2", "fn: publish topic=out key=b value=x"}
	if got := logs.lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log\n got %q\nwant %q", got, want)
	}

	// Unkeyed: own state needs an actor; other actors' state is readable.
	HandleInvoke(func(ctx context.Context, method string, body []byte) ([]byte, error) {
		if _, _, err := State(); !errors.Is(err, ErrNoActor) {
			t.Errorf("State: %v", err)
		}
		if err := SetState(nil); !errors.Is(err, ErrNoActor) {
			t.Errorf("SetState: %v", err)
		}
		if err := SetTimer("t", Now(), nil); !errors.Is(err, ErrNoActor) {
			t.Errorf("SetTimer: %v", err)
		}
		if err := Publish("", nil, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("Publish to no topic: %v", err)
		}
		v, _, err := StateOf("a")
		return v, err
	})
	if status, _, body := dispatch(t, &event{kind: kindInvoke}); status != 200 || body != "12" {
		t.Errorf("invoke: %d %q", status, body)
	}

	// DeleteState commits a deletion.
	HandleInvoke(func(ctx context.Context, method string, body []byte) ([]byte, error) { return nil, DeleteState() })
	dispatch(t, &event{kind: kindInvoke, key: "a"})
	if _, found, _ := StateOf("a"); found {
		t.Error("state a not deleted")
	}
}

func TestMemHostTimers(t *testing.T) {
	withHandlers(t)
	withMemHost(t)
	captureLog(t)
	fired := make(chan string, 10)
	HandleTimer(func(ctx context.Context, tm Timer) error {
		fired <- Key() + " " + tm.Name + " " + string(tm.Payload)
		return nil
	})
	HandleInvoke(func(ctx context.Context, method string, body []byte) ([]byte, error) {
		switch method {
		case "set":
			return nil, SetTimer(string(body), Now().Add(20*time.Millisecond), []byte("p-"+string(body)))
		case "cancel":
			return nil, CancelTimer(string(body))
		case "set-fail":
			SetTimer(string(body), Now(), nil)
			return nil, errors.New("no")
		}
		return nil, nil
	})
	call := func(key, method, name string) (int, string) {
		status, _, body := dispatch(t, &event{kind: kindInvoke, key: key, method: method, body: []byte(name)})
		return status, body
	}
	call("d1", "set", "a")
	call("d1", "set", "b")
	call("d2", "set", "a")
	if status, _ := call("d1", "cancel", "b"); status != 200 {
		t.Errorf("cancel b: %d", status)
	}
	if status, body := call("d1", "cancel", "nope"); status != 500 || !strings.Contains(body, "not found") {
		t.Errorf("cancel nope: %d %q", status, body)
	}
	call("d3", "set-fail", "x") // discarded
	got := map[string]bool{}
	for range 2 {
		select {
		case s := <-fired:
			got[s] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("timers not fired: %v", got)
		}
	}
	if !got["d1 a p-a"] || !got["d2 a p-a"] {
		t.Errorf("fired %v", got)
	}
	select {
	case s := <-fired:
		t.Errorf("unexpected timer %s", s)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestConfigEnv(t *testing.T) {
	withMemHost(t)
	if got := configEnv("offline_after"); got != "TWOWAY_CONFIG_OFFLINE_AFTER" {
		t.Errorf("configEnv: %s", got)
	}
	if got := configEnv("a.b-C9"); got != "TWOWAY_CONFIG_A_B_C9" {
		t.Errorf("configEnv: %s", got)
	}
	t.Setenv("TWOWAY_CONFIG_THRESHOLD", "90")
	if v, ok := Config("threshold"); v != "90" || !ok {
		t.Errorf("Config: %q %v", v, ok)
	}
	if v, ok := Config("unset_for_sure"); v != "" || ok {
		t.Errorf("Config unset: %q %v", v, ok)
	}
}

func TestServeLocal(t *testing.T) {
	withHandlers(t)
	withMemHost(t)
	logs := captureLog(t)
	HandleHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		if _, _, err := State(); !errors.Is(err, ErrNoActor) {
			t.Errorf("State over HTTP: %v", err)
		}
		Publish("seen", nil, []byte(r.URL.Path))
		w.Header().Set("X-Q", r.URL.Query().Get("q"))
		if r.URL.Path == "/fail" {
			w.WriteHeader(503)
		}
		io.WriteString(w, "hi")
	}))
	srv := httptest.NewServer(http.HandlerFunc(serveLocal))
	defer srv.Close()
	get := func(path string) (int, string, http.Header) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	if status, body, h := get("/ok?q=1"); status != 200 || body != "hi" || h.Get("X-Q") != "1" {
		t.Errorf("ok: %d %q %v", status, body, h)
	}
	if status, body, _ := get("/panic"); status != 500 || body != "panic: boom" {
		t.Errorf("panic: %d %q", status, body)
	}
	if status, _, _ := get("/fail"); status != 503 {
		t.Errorf("fail: %d", status)
	}
	// The failed request's publish is discarded.
	if got := logs.lines(); len(got) != 1 || got[0] != "fn: publish topic=seen key=<nil> value=/ok" {
		t.Errorf("log %q", got)
	}
}

func TestFetchNative(t *testing.T) {
	withMemHost(t)
	captureLog(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", r.Method+" "+string(b)+" "+r.Header.Get("X-In"))
		w.WriteHeader(202)
		io.WriteString(w, "done")
	}))
	defer srv.Close()
	req, _ := http.NewRequest("PUT", srv.URL+"/p", strings.NewReader("body"))
	req.Header.Set("X-In", "v")
	res, err := (&http.Client{Transport: Transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 202 || string(b) != "done" || res.Header.Get("X-Got") != "PUT body v" {
		t.Errorf("%d %q %v", res.StatusCode, b, res.Header)
	}
	if _, err := (&http.Client{Transport: Transport}).Get("http://127.0.0.1:1/"); !errors.Is(err, ErrFailed) {
		t.Errorf("unreachable: %v", err)
	}
}
