package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/stream"
	"github.com/twoway/twoway/internal/wasm"
)

// The product spec, "Limits and hostile guests": a deployment's limits
// (memory, time, output, state per key, concurrency) hold, and a guest
// that loops, bombs its memory, traps, answers too much, or hands the
// host pointers outside its memory gets an error naming the function and
// the limit or import, commits nothing, and leaves the agent serving
// everything else. Modules that are not WebAssembly, lack the exports or
// import what they are not granted are refused at deploy.

const hostilePkg = "internal/functions/testdata/hostile"

// hostileLimits are small limits for the hostile deployments.
var hostileLimits = Limits{TimeoutMs: 300, MemoryPages: 64, MaxOutput: 4096, MaxState: 1024}

// syncBuf is a log destination tests read while the agent writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgentLogging is startAgent with the agent's log in logs.
func startAgentLogging(t testing.TB, b bucket.Bucket, cfg Config, logs io.Writer) *agent {
	t.Helper()
	a := &agent{streams: stream.New(stream.Options{})}
	cfg.Streams = a.streams
	cfg.LeaseDuration = time.Second
	cfg.TimerTick = 50 * time.Millisecond
	a.fns = New(cfg)
	mux := http.NewServeMux()
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	set, err := module.Open(context.Background(), module.Config{Bucket: b, Log: testLogOptions(), HTTP: mux, Logger: logger}, a.streams, a.fns)
	if err != nil {
		t.Fatal(err)
	}
	a.set = set
	a.http = httptest.NewServer(mux)
	t.Cleanup(a.close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := set.Log().WaitEnabled(ctx, "type:302"); err != nil {
		t.Fatal(err)
	}
	return a
}

// send makes an HTTP request and returns the status, headers and body.
func send(t testing.TB, method, url string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// apiErr decodes an error body of the functions API.
func apiErr(t testing.TB, body []byte) APIError {
	t.Helper()
	var e APIError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an error body: %q: %v", body, err)
	}
	return e
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// actorSnap is an actor's committed state and version.
type actorSnap struct {
	value  string
	exists bool
	ver    uint64
}

func snap(t testing.TB, a *agent, fn, key string) actorSnap {
	t.Helper()
	if err := a.fns.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, ok, ver, err := a.fns.ActorState(context.Background(), fn, key)
	if err != nil {
		t.Fatal(err)
	}
	return actorSnap{string(v), ok, ver}
}

// goodWork keeps well-behaved functions busy while hostile ones run: the
// device-twin's HTTP read of d1 (whose state it checks) and keyed
// invocations of "good" (whose counter must go up by one each time).
type goodWork struct {
	mu   sync.Mutex
	oks  []time.Time // when each good answer came
	errs []string
	stop chan struct{}
	done chan struct{}
}

func startGoodWork(t *testing.T, a *agent, twinCount float64) *goodWork {
	g := &goodWork{stop: make(chan struct{}), done: make(chan struct{})}
	ctx := context.Background()
	fail := func(format string, args ...any) {
		g.mu.Lock()
		g.errs = append(g.errs, fmt.Sprintf(format, args...))
		g.mu.Unlock()
	}
	count := 0
	if s := snap(t, a, "good", "g"); s.exists {
		fmt.Sscan(s.value, &count)
	}
	go func() {
		defer close(g.done)
		for i := 0; ; i++ {
			select {
			case <-g.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if i%2 == 0 {
				resp, err := http.Get(a.http.URL + "/fn/device-twin/devices/d1")
				if err != nil {
					fail("GET the twin: %v", err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var st map[string]any
				if resp.StatusCode != 200 || json.Unmarshal(b, &st) != nil || st["count"] != twinCount {
					fail("GET the twin: %d %s", resp.StatusCode, b)
					continue
				}
			} else {
				resp, err := a.fns.Invoke(ctx, "good", "g", true, "", []byte("ok"))
				if err != nil || resp.Status != 200 || string(resp.Body) != fmt.Sprint(count+1) {
					fail("invoke good: %d %q %v (want %d)", resp.Status, resp.Body, err, count+1)
					continue
				}
				count++
			}
			g.mu.Lock()
			g.oks = append(g.oks, time.Now())
			g.mu.Unlock()
		}
	}()
	return g
}

// answeredBetween reports whether a good answer came in [from, to].
func (g *goodWork) answeredBetween(from, to time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, at := range g.oks {
		if !at.Before(from) && !at.After(to) {
			return true
		}
	}
	return false
}

func (g *goodWork) check(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.errs) > 0 {
		t.Fatalf("the good functions failed %d times while hostile ones ran; first: %s", len(g.errs), g.errs[0])
	}
}

func (g *goodWork) finish(t *testing.T) {
	t.Helper()
	close(g.stop)
	<-g.done
	g.check(t)
}

func TestHostileGuests(t *testing.T) {
	ctx := context.Background()
	logs := &syncBuf{}
	// The cache dir makes the many compiles of the same modules (a deploy
	// compiles to check, the first invocation to run) cheap.
	a := startAgentLogging(t, fileBucket(t), Config{Workers: true, CacheDir: t.TempDir()}, logs)
	a.createTopic(t, "telemetry", 2)
	a.createTopic(t, "alerts", 1)
	a.createTopic(t, "hostile-out", 1)
	a.createTopic(t, "hostile-in", 1)
	twin := buildGo(t, "examples/device-twin/go")
	hostile := buildGo(t, hostilePkg)
	deployTwin(t, a, twin, nil)
	for _, temp := range []int{50, 60, 70} {
		a.produce(t, "telemetry", "d1", fmt.Sprintf(`{"temp": %d}`, temp))
	}
	a.waitCaughtUp(t, "device-twin", "telemetry", 20*time.Second)
	deploy := func(name string, lim Limits, subscribe ...string) {
		t.Helper()
		if _, err := a.fns.Deploy(ctx, DeployRequest{Name: name, Module: hostile, Grants: []string{"state", "publish:hostile-out"},
			HTTP: true, Subscribe: subscribe, Limits: lim}); err != nil {
			t.Fatal(err)
		}
	}
	deploy("good", Limits{})
	deploy("hostile", hostileLimits)

	// Each actor has state "1" before the hostile cases.
	if r, err := a.fns.Invoke(ctx, "hostile", "m", true, "", []byte("ok")); err != nil || string(r.Body) != "1" {
		t.Fatalf("ok: %+v %v", r, err)
	}
	if code, _, body := send(t, "POST", a.http.URL+"/v1/functions/hostile/invoke?key=h", []byte("ok")); code != 200 || string(body) != "1" {
		t.Fatalf("ok over HTTP: %d %q", code, body)
	}
	before := map[string]actorSnap{"m": snap(t, a, "hostile", "m"), "h": snap(t, a, "hostile", "h")}
	for k, s := range before {
		if s.value != "1" {
			t.Fatalf("actor %s: %+v", k, s)
		}
	}

	g := startGoodWork(t, a, 3)
	nothingCommitted := func(t *testing.T, cmd string) {
		t.Helper()
		for k, want := range before {
			if got := snap(t, a, "hostile", k); got != want {
				t.Fatalf("%s: actor %s is %+v, was %+v: the failed invocation committed", cmd, k, got, want)
			}
		}
		if recs := a.readAll(t, "hostile-out"); len(recs) != 0 {
			t.Fatalf("%s: %d records published by failed invocations (first %q)", cmd, len(recs), recs[0].Value)
		}
	}

	for _, tc := range []struct {
		cmd  string
		want []string // in the error, each way it is invoked
		oob  string   // the import an *OutOfBoundsError names
	}{
		{cmd: "loop", want: []string{"function hostile: twoway_handle ran past its time limit of 300ms"}},
		{cmd: "grow", want: []string{"function hostile: twoway_handle failed (at its memory limit of 64 pages, 4 MiB", "out of memory"}},
		{cmd: "trap", want: []string{"function hostile: twoway_handle failed", `stderr: "panic: asked to trap"`}},
		{cmd: "state-then-trap", want: []string{"function hostile: twoway_handle failed", `stderr: "panic: asked to trap after writing state"`}},
		{cmd: "huge-output", want: []string{"function hostile: its output of 8204 bytes is over the limit of 4096 bytes (max_output_bytes)"}},
		{cmd: "oob-state-set", oob: "state_set", want: []string{"function hostile: twoway_handle failed: twoway_v1.state_set was given bytes 4294901760 to 4294901824, outside the guest's memory of"}},
		{cmd: "oob-publish", oob: "publish", want: []string{"function hostile: twoway_handle failed: twoway_v1.publish was given bytes 4294901760 to 4295950336, outside the guest's memory of"}},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			start := time.Now()
			// Module.Invoke, keyed.
			_, err := a.fns.Invoke(ctx, "hostile", "m", true, "", []byte(tc.cmd))
			if err == nil || !errors.Is(err, ErrInvocation) || !containsAll(err.Error(), tc.want) {
				t.Fatalf("Invoke: %v\nwant an invocation error saying %q", err, tc.want)
			}
			if tc.oob != "" {
				var oob *wasm.OutOfBoundsError
				if !errors.As(err, &oob) || oob.Import != tc.oob {
					t.Fatalf("Invoke: %v is not an *OutOfBoundsError of %s", err, tc.oob)
				}
			}
			t.Logf("Invoke: %s", firstLine(err.Error()))
			// The HTTP API, keyed, and the HTTP trigger, unkeyed.
			for _, url := range []string{"/v1/functions/hostile/invoke?key=h", "/fn/hostile/"} {
				code, hdr, body := send(t, "POST", a.http.URL+url, []byte(tc.cmd))
				e := apiErr(t, body)
				if code != 500 || e.Code != CodeInvocationFailed || hdr.Get("Twoway-Error") != CodeInvocationFailed || !containsAll(e.Message, tc.want) {
					t.Fatalf("POST %s: %d %s\nwant 500 invocation_failed saying %q", url, code, body, tc.want)
				}
			}
			end := time.Now()
			nothingCommitted(t, tc.cmd)
			g.check(t)
			if end.Sub(start) > 250*time.Millisecond && !g.answeredBetween(start, end) {
				t.Fatalf("no good function answered in the %v the hostile one ran", end.Sub(start))
			}
		})
	}

	// Over max_state_bytes: state_set returns TOO_LARGE (-4) to the guest,
	// which answers 200 anyway; nothing is written, and the agent's log
	// says why, naming the function and the limit.
	t.Run("big-state", func(t *testing.T) {
		r, err := a.fns.Invoke(ctx, "hostile", "m", true, "", []byte("big-state"))
		if err != nil || r.Status != 200 || string(r.Body) != "state_set: -4" {
			t.Fatalf("Invoke: %+v %v, want 200 \"state_set: -4\"", r, err)
		}
		code, _, body := send(t, "POST", a.http.URL+"/v1/functions/hostile/invoke?key=h", []byte("big-state"))
		if code != 200 || string(body) != "state_set: -4" {
			t.Fatalf("POST invoke: %d %q", code, body)
		}
		nothingCommitted(t, "big-state")
		l := logs.String()
		i := strings.Index(l, "state_set over the limit")
		if i < 0 || !containsAll(l[i:], []string{"function=hostile", "bytes=2000", "limit=1024"}) {
			t.Fatalf("no log line naming the function and the state limit:\n%s", l)
		}
	})

	t.Run("deploy-refused", func(t *testing.T) {
		deployRefusals(t, a)
		g.check(t)
	})

	// max_concurrency: invocations past it wait their turn, on this
	// function only.
	t.Run("concurrency", func(t *testing.T) {
		deploy("narrow", Limits{MaxConcurrency: 2})
		start := time.Now()
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				if code, _, body := send(t, "POST", a.http.URL+"/fn/narrow/", []byte("slow")); code != 200 || string(body) != "slow" {
					t.Errorf("slow: %d %q", code, body)
				}
			})
		}
		wg.Wait()
		// 6 calls of 150 ms, 2 at a time: at least 3 rounds.
		if d := time.Since(start); d < 440*time.Millisecond {
			t.Fatalf("6 calls of 150ms with max_concurrency 2 took %v", d)
		}
		g.check(t)
	})

	g.finish(t)
	// The hostile function itself still works, on the state it had.
	for _, k := range []string{"m", "h"} {
		if r, err := a.fns.Invoke(ctx, "hostile", k, true, "", []byte("ok")); err != nil || string(r.Body) != "2" {
			t.Fatalf("ok on %s after the hostile cases: %+v %v", k, r, err)
		}
	}
	// So do the twin's subscription and HTTP trigger.
	a.produce(t, "telemetry", "d1", `{"temp": 40}`)
	a.waitCaughtUp(t, "device-twin", "telemetry", 20*time.Second)
	if st := a.state(t, "device-twin", "d1"); st["count"] != 4.0 || st["min"] != 40.0 {
		t.Fatalf("twin d1 after the hostile cases: %v", st)
	}
	if code, body := get(t, a.http.URL+"/fn/device-twin/devices/d1"); code != 200 || !strings.Contains(body, `"count":4`) {
		t.Fatalf("GET twin d1: %d %s", code, body)
	}

	// Subscribed: a record whose invocation fails is retried, then
	// dead-lettered with the failure in the header twoway.error; the
	// other records of its partition are processed, in order.
	t.Run("subscribed", func(t *testing.T) {
		deploy("hostile-sub", hostileLimits, "hostile-in")
		cmds := []string{"ok", "trap", "ok", "oob-state-set", "loop", "huge-output", "ok"}
		for _, c := range cmds {
			a.produce(t, "hostile-in", "a", c)
		}
		a.waitCaughtUp(t, "hostile-sub", "hostile-in", 20*time.Second)
		if s := snap(t, a, "hostile-sub", "a"); s.value != "3" {
			t.Fatalf("actor a: %+v, want 3 (one per ok record)", s)
		}
		if recs := a.readAll(t, "hostile-out"); len(recs) != 0 {
			t.Fatalf("failed invocations published %d records", len(recs))
		}
		want := []struct {
			cmd    string
			offset string
			why    string
		}{
			{"trap", "1", `function hostile-sub: twoway_handle failed (stderr: "panic: asked to trap")`},
			{"oob-state-set", "3", "function hostile-sub: twoway_handle failed: twoway_v1.state_set was given bytes 4294901760 to 4294901824, outside the guest's memory"},
			{"loop", "4", "function hostile-sub: twoway_handle ran past its time limit of 300ms"},
			{"huge-output", "5", "function hostile-sub: its output of 8204 bytes is over the limit of 4096 bytes"},
		}
		dlq := a.readAll(t, DLQTopic("hostile-sub"))
		if len(dlq) != len(want) {
			t.Fatalf("%d dead letters, want %d", len(dlq), len(want))
		}
		for i, w := range want {
			r := dlq[i]
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if string(r.Value) != w.cmd || string(r.Key) != "a" || h["twoway.offset"] != w.offset || h["twoway.topic"] != "hostile-in" ||
				h["twoway.function"] != "hostile-sub" || !strings.Contains(h["twoway.error"], w.why) {
				t.Fatalf("dead letter %d: %q=%q %v\nwant %s at offset %s with twoway.error saying %q", i, r.Key, r.Value, h, w.cmd, w.offset, w.why)
			}
			t.Logf("dead letter %s: twoway.error: %s", w.cmd, firstLine(h["twoway.error"]))
		}
	})
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// A hand-assembled module: the given sections after the header.
func wasmBytes(sections ...[]byte) []byte {
	b := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	for _, s := range sections {
		b = append(b, s...)
	}
	return b
}

func section(id byte, items ...[]byte) []byte {
	var c []byte
	c = append(c, byte(len(items)))
	for _, it := range items {
		c = append(c, it...)
	}
	return append([]byte{id, byte(len(c))}, c...)
}

func wname(s string) []byte { return append([]byte{byte(len(s))}, s...) }

// deployRefusals: modules that cannot run are refused at deploy, through
// Deploy and through PUT /v1/functions/{name}, with a message naming the
// function and what is wrong; nothing is deployed.
func deployRefusals(t *testing.T, a *agent) {
	ctx := context.Background()
	var (
		types = section(1,
			[]byte{0x60, 0x01, 0x7f, 0x01, 0x7f},       // 0: (i32) -> i32
			[]byte{0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7e}, // 1: (i32, i32) -> i64
		)
		memory    = section(5, []byte{0x00, 0x01}) // one memory, min 1 page
		allocOnly = section(3, []byte{0x00})
		both      = section(3, []byte{0x00}, []byte{0x01})
		codeAlloc = section(10, []byte{0x04, 0x00, 0x41, 0x00, 0x0b})
		codeBoth  = section(10, []byte{0x04, 0x00, 0x41, 0x00, 0x0b}, []byte{0x04, 0x00, 0x42, 0x00, 0x0b})
		expMem    = append(wname("memory"), 0x02, 0x00)
		expAlloc  = append(wname("twoway_alloc"), 0x00, 0x00)
		expHandle = append(wname("twoway_handle"), 0x00, 0x01)
	)
	twinGrants := []string{"state", "timers", "config", "log"} // no publish:alerts
	for _, tc := range []struct {
		name   string
		module []byte
		grants []string
		status int
		code   string
		want   string // in Deploy's error
		http   string // in the HTTP error, if not want
	}{
		{name: "junk", module: []byte("#!/bin/sh\necho this is not WebAssembly\n"), status: 400, code: CodeBadRequest,
			want: "function junk: not a valid WebAssembly module"},
		{name: "nothing", module: []byte{}, status: 400, code: CodeBadRequest,
			want: "function nothing: not a valid WebAssembly module", http: "function nothing: no module in the deploy body"},
		{name: "empty", module: wasmBytes(), status: 400, code: CodeBadRequest,
			want: "function empty: the module does not export twoway_alloc"},
		{name: "no-handle", module: wasmBytes(types, allocOnly, memory, section(7, expMem, expAlloc), codeAlloc), status: 400, code: CodeBadRequest,
			want: "function no-handle: the module does not export twoway_handle"},
		{name: "no-memory", module: wasmBytes(types, both, memory, section(7, expAlloc, expHandle), codeBoth), status: 400, code: CodeBadRequest,
			want: `function no-memory: the module does not export its memory as "memory"`},
		{name: "foreign", module: wasmBytes(section(1, []byte{0x60, 0x00, 0x00}), section(2, append(append(wname("env"), wname("f")...), 0x00, 0x00))),
			status: 400, code: CodeBadRequest, want: "function foreign: imports env.f, which twoway does not provide"},
		{name: "twin-ungranted", module: buildGo(t, "examples/device-twin/go"), grants: twinGrants, status: 403, code: CodeNotGranted,
			want: "function twin-ungranted imports twoway_v1.publish, which needs the grant publish:TOPIC (--grant publish:TOPIC)"},
		{name: "hostile-ungranted", module: buildGo(t, hostilePkg), grants: []string{"state"}, status: 403, code: CodeNotGranted,
			want: "function hostile-ungranted imports twoway_v1.publish, which needs the grant publish:TOPIC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.fns.Deploy(ctx, DeployRequest{Name: tc.name, Module: tc.module, Grants: tc.grants, Limits: hostileLimits})
			sentinel := ErrInvalid
			if tc.status == 403 {
				sentinel = ErrNotGranted
			}
			if err == nil || !errors.Is(err, sentinel) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Deploy: %v\nwant %v saying %q", err, sentinel, tc.want)
			}
			t.Logf("Deploy: %s", firstLine(err.Error()))
			body, _ := json.Marshal(map[string]any{"module": tc.module, "grants": tc.grants})
			code, _, resp := send(t, "PUT", a.http.URL+"/v1/functions/"+tc.name, body)
			want := tc.want
			if tc.http != "" {
				want = tc.http
			}
			if e := apiErr(t, resp); code != tc.status || e.Code != tc.code || !strings.Contains(e.Message, want) {
				t.Fatalf("PUT: %d %s\nwant %d %s saying %q", code, resp, tc.status, tc.code, want)
			}
			if _, ok := a.fns.Get(tc.name); ok {
				t.Fatal("deployed")
			}
			if code, body := get(t, a.http.URL+"/v1/functions/"+tc.name); code != 404 {
				t.Fatalf("GET the refused function: %d %s", code, body)
			}
		})
	}
}
